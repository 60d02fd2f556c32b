"""Job records in SQLite, so history survives restarts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.database import Database
from app.jobs.protocol import DataSummary, JobSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'starting', 'running', 'succeeded', 'failed', 'cancelled')),
    create_model INTEGER NOT NULL,
    base_version INTEGER,
    version INTEGER,
    settings TEXT NOT NULL,
    data TEXT NOT NULL,
    spec TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    restarts INTEGER NOT NULL DEFAULT 0,
    interruptions INTEGER NOT NULL DEFAULT 0,
    interrupted TEXT,
    resumed_from_step INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs (model, created_at);
"""
_RESUME_COLUMNS = {
    "restarts": "INTEGER NOT NULL DEFAULT 0",
    "interruptions": "INTEGER NOT NULL DEFAULT 0",
    "interrupted": "TEXT",
    "resumed_from_step": "INTEGER",
    # Several processes on one data dir (SEQLAB_WORKERS): the others read a job's changes
    # (revision) from here, and ask the one that runs jobs to cancel one (cancel_requested).
    "revision": "INTEGER NOT NULL DEFAULT 0",
    "cancel_requested": "INTEGER NOT NULL DEFAULT 0",
}
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

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


class JobStore:
    def __init__(self, database: Path) -> None:
        self._database = Database(database, SCHEMA)
        self._allow_starting()
        self._add_resume_columns()

    def _add_resume_columns(self) -> None:
        """A jobs table made before jobs resumed lacks their four columns."""
        with self._database.transaction() as connection:  # read and alter under one lock
            columns = {row[1] for row in connection.execute("PRAGMA table_info(jobs)")}
            for column, declaration in _RESUME_COLUMNS.items():
                if column not in columns:
                    connection.execute(f"ALTER TABLE jobs ADD COLUMN {column} {declaration}")

    def _allow_starting(self) -> None:
        """A jobs table made before the ``starting`` status has a CHECK that refuses it; SQLite
        cannot alter a CHECK, so the table is rebuilt with every row (its columns, and today's new
        ones at their defaults)."""
        create = SCHEMA.split("CREATE INDEX")[0].replace("IF NOT EXISTS jobs", "jobs_rebuilt")
        with self._database.transaction() as connection:  # read and rebuild under one lock
            row = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()
            if row is None or "'starting'" in row[0]:
                return
            connection.execute(create)
            columns = ", ".join(
                row[1] for row in connection.execute("PRAGMA table_info(jobs)").fetchall()
            )
            connection.execute(f"INSERT INTO jobs_rebuilt ({columns}) SELECT {columns} FROM jobs")
            connection.execute("DROP TABLE jobs")
            connection.execute("ALTER TABLE jobs_rebuilt RENAME TO jobs")
            connection.execute(
                "CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs (model, created_at)"
            )

    def close(self) -> None:
        self._database.close()

    def all(self) -> list[JobRecord]:
        rows = self._database.fetch_all("SELECT * FROM jobs ORDER BY created_at")
        return [_record(row) for row in rows]

    def get(self, job_id: str) -> JobRecord | None:
        row = self._database.fetch_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _record(row) if row is not None else None

    def unfinished(self) -> list[JobRecord]:
        rows = self._database.fetch_all(
            "SELECT * FROM jobs WHERE status IN ('queued', 'starting', 'running') "
            "ORDER BY created_at"
        )
        return [_record(row) for row in rows]

    def claim(self, job_id: str) -> bool:
        """Mark a queued job as starting; False when it is no longer queued (another process
        cancelled it meanwhile)."""
        changed = self._database.execute(
            "UPDATE jobs SET status = 'starting' "
            "WHERE id = ? AND status = 'queued' AND cancel_requested = 0",
            (job_id,),
        )
        return changed > 0

    def cancel_queued(self, job_id: str, finished_at: str) -> bool:
        """Cancel a job that no process has started; False when one has."""
        changed = self._database.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = ?, revision = revision + 1 "
            "WHERE id = ? AND status = 'queued'",
            (finished_at, job_id),
        )
        return changed > 0

    def request_cancel(self, job_id: str) -> None:
        """Ask the process that runs the job to cancel it."""
        self._database.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))

    def cancel_requests(self) -> set[str]:
        rows = self._database.fetch_all(
            "SELECT id FROM jobs WHERE cancel_requested = 1 "
            "AND status IN ('queued', 'starting', 'running')"
        )
        return {row["id"] for row in rows}

    def save(self, record: JobRecord) -> None:
        """Insert or replace the whole row (records are small; writes are rare)."""
        values = {
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
        columns = ", ".join(values)
        placeholders = ", ".join("?" for _ in values)
        # An upsert, not a replace: a cancel another process requested (cancel_requested) stays.
        updates = ", ".join(f"{column} = excluded.{column}" for column in values if column != "id")
        self._database.execute(
            f"INSERT INTO jobs ({columns}) VALUES ({placeholders}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            tuple(values.values()),
        )


def _record(row: Any) -> JobRecord:
    data = dict(row)
    data.pop("cancel_requested", None)
    for column in _JSON_COLUMNS:
        data[column] = json.loads(data[column])
    data["data"] = DataSummary.from_dict(json.loads(data["data"]))
    data["spec"] = JobSpec.from_dict(json.loads(data["spec"]))
    data["create_model"] = bool(data["create_model"])
    return JobRecord(**data)
