"""Job records in the database, so history survives restarts and every replica reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update

from app.database import Database
from app.jobs.protocol import DataSummary, JobSpec
from app.schema import jobs

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_JSON_COLUMNS = ("settings", "progress", "metrics")


@dataclass
class JobRecord:
    """A job as the service knows it; ``revision`` grows with every change (for SSE)."""

    id: str
    model: str
    status: str
    create_model: bool
    settings: dict[str, Any]
    data: DataSummary
    spec: JobSpec
    created_at: str
    base_version: int | None = None
    version: int | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    worker_pid: int | None = None
    restarts: int = 0  # times it went back to the queue to resume
    interruptions: int = 0  # of those, the unclean ones (a killed worker or service)
    interrupted: str | None = None  # why it last went back
    resumed_from_step: int | None = None  # where its current run took over
    revision: int = 0
    runner: str | None = None  # the process that claimed it (as the store last said)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


UNFINISHED = ("queued", "starting", "running")


class JobStore:
    """The jobs table. A row being run is written only by its ``runner`` (see :meth:`save`)."""

    def __init__(self, database: Path | str | Database) -> None:
        self._database = database if isinstance(database, Database) else Database(database)

    def close(self) -> None:
        self._database.close()

    def all(self) -> list[JobRecord]:
        rows = self._database.fetch_all(select(jobs).order_by(jobs.c.created_at))
        return [_record(row) for row in rows]

    def get(self, job_id: str) -> JobRecord | None:
        row = self._database.fetch_one(select(jobs).where(jobs.c.id == job_id))
        return _record(row) if row is not None else None

    def unfinished(self) -> list[JobRecord]:
        rows = self._database.fetch_all(
            select(jobs).where(jobs.c.status.in_(UNFINISHED)).order_by(jobs.c.created_at)
        )
        return [_record(row) for row in rows]

    def claim(self, job_id: str, runner: str) -> bool:
        """Mark a queued job as starting, run by ``runner``; False when it is no longer queued
        (another process cancelled it meanwhile, or claimed it).

        The row is locked ``FOR UPDATE`` first (PostgreSQL). Not ``SKIP LOCKED``: one elected
        runner claims, so the only other lock on a queued row is a cancel being recorded, whose
        outcome the claim must wait for rather than skip the job (and take it for gone).
        """
        with self._database.transaction() as connection:
            claimable = connection.execute(
                select(jobs.c.id)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.status == "queued",
                    jobs.c.cancel_requested == 0,
                    or_(jobs.c.runner.is_(None), jobs.c.runner == runner),
                )
                .with_for_update()
            ).first()
            if claimable is None:
                return False
            connection.execute(
                update(jobs).where(jobs.c.id == job_id).values(status="starting", runner=runner)
            )
        return True

    def runner_of(self, job_id: str) -> str | None:
        """The process that runs (or last ran) the job, as its row says."""
        row = self._database.fetch_one(select(jobs.c.runner).where(jobs.c.id == job_id))
        return row["runner"] if row is not None else None

    def take_over_job(self, job_id: str, previous: str | None, runner: str) -> bool:
        """Make ``runner`` the runner of one unfinished job, if ``previous`` still is."""
        owned = jobs.c.runner.is_(None) if previous is None else jobs.c.runner == previous
        changed = self._database.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_(UNFINISHED), owned)
            .values(runner=runner)
        )
        return changed > 0

    def take_over(self, runner: str) -> None:
        """Make ``runner`` the runner of every unfinished job: it is taking over from one that
        is gone, and from now on the one gone may no longer write them (:meth:`save`)."""
        self._database.execute(
            update(jobs).where(jobs.c.status.in_(UNFINISHED)).values(runner=runner)
        )

    def cancel_queued(self, job_id: str, finished_at: str) -> bool:
        """Cancel a job that no process has started; False when one has."""
        changed = self._database.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == "queued")
            .values(status="cancelled", finished_at=finished_at, revision=jobs.c.revision + 1)
        )
        return changed > 0

    def request_cancel(self, job_id: str) -> None:
        """Ask the process that runs the job to cancel it."""
        self._database.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=1))

    def cancel_requests(self) -> set[str]:
        rows = self._database.fetch_all(
            select(jobs.c.id).where(jobs.c.cancel_requested == 1, jobs.c.status.in_(UNFINISHED))
        )
        return {row["id"] for row in rows}

    def save(self, record: JobRecord, runner: str | None = None) -> bool:
        """Insert or update the whole row (records are small; writes are rare).

        An upsert, not a replace: a cancel another process requested (``cancel_requested``)
        stays. ``runner`` fences the write: a row another runner has claimed or taken over is
        left alone (False), so a runner that lost its lease without knowing it yet cannot undo
        what the one that took over wrote.
        """
        values: dict[str, Any] = {
            "id": record.id,
            "model": record.model,
            "status": record.status,
            "create_model": int(record.create_model),
            "base_version": record.base_version,
            "version": record.version,
            "error": record.error,
            "created_at": record.created_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "restarts": record.restarts,
            "interruptions": record.interruptions,
            "interrupted": record.interrupted,
            "resumed_from_step": record.resumed_from_step,
            "revision": record.revision,
            "data": json.dumps(record.data.to_dict(), ensure_ascii=False),
            "spec": json.dumps(record.spec.to_dict(), ensure_ascii=False),
        }
        for column in _JSON_COLUMNS:
            values[column] = json.dumps(getattr(record, column), ensure_ascii=False)
        values["runner"] = runner
        statement = self._database.insert(jobs).values(**values)
        fence = None if runner is None else or_(jobs.c.runner.is_(None), jobs.c.runner == runner)
        statement = statement.on_conflict_do_update(
            index_elements=[jobs.c.id],
            set_={column: statement.excluded[column] for column in values if column != "id"},
            where=fence,
        )
        # RETURNING, not rowcount: psycopg reports no row count for an upsert.
        with self._database.transaction() as connection:
            return connection.execute(statement.returning(jobs.c.id)).first() is not None


def _record(row: Any) -> JobRecord:
    data = dict(row)
    data.pop("cancel_requested", None)
    for column in _JSON_COLUMNS:
        data[column] = json.loads(data[column])
    data["data"] = DataSummary.from_dict(json.loads(data["data"]))
    data["spec"] = JobSpec.from_dict(json.loads(data["spec"]))
    data["create_model"] = bool(data["create_model"])
    return JobRecord(**data)
