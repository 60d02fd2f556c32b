"""Who runs the jobs, on both engines: the lease in the database (replicas of several hosts) and
the fence on the job rows that keeps a runner that lost its lease from writing them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.database import Database, utc_now
from app.jobs.election import RUNNER_LEASE, DatabaseElection, FileElection
from app.jobs.manager import JobManager
from app.jobs.protocol import DataSummary, JobSpec
from app.jobs.store import JobRecord, JobStore
from app.ownership import process_start
from app.schema import leases
from tests.app.jobs.conftest import BASE, prepare, wait_until


@pytest.fixture
def database(database_url: str | None, tmp_path: Path):
    database = Database(database_url or tmp_path / "registry.sqlite3")
    yield database
    database.close()


def test_one_holder_at_a_time_and_another_takes_over_an_expired_lease(database: Database):
    # The first renews once an hour: as if its renewals stalled (cut off from the database).
    first = DatabaseElection(database, "host-a~1~1", lease_seconds=2.0, renew_seconds=3600)
    second = DatabaseElection(database, "host-b~2~2", lease_seconds=2.0, renew_seconds=3600)
    assert first.acquire()
    assert first.held()
    assert not second.acquire()
    time.sleep(2.2)
    assert not first.held()  # it knows by its own clock, before anyone else may take over
    assert second.acquire()
    assert holder(database) == "host-b~2~2"  # and the lease is the second's in the database
    first.release()  # a release by one that no longer holds it changes nothing
    assert holder(database) == "host-b~2~2"
    assert second.held()
    second.release()


def test_a_renewed_lease_stays_with_its_holder(database: Database):
    first = DatabaseElection(database, "host-a~1~1", lease_seconds=2.0, renew_seconds=0.2)
    second = DatabaseElection(database, "host-b~2~2", lease_seconds=2.0)
    assert first.acquire()
    time.sleep(4.0)  # twice the lease: renewed by its thread meanwhile
    assert first.held()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def holder(database: Database) -> str | None:
    row = database.fetch_one(select(leases.c.holder).where(leases.c.name == RUNNER_LEASE))
    return row["holder"] if row is not None else None


def test_a_released_lease_is_taken_at_once(database: Database):
    first = DatabaseElection(database, "host-a~1~1", lease_seconds=60)
    second = DatabaseElection(database, "host-b~2~2", lease_seconds=60)
    assert first.acquire()
    assert not second.acquire()
    first.release()  # a clean stop
    assert not first.held()
    assert second.acquire()
    second.release()
    assert first.acquire()  # released, it may be taken again
    first.release()


def test_the_file_election_is_one_holder_per_data_dir(tmp_path: Path):
    first, second = FileElection(tmp_path / "jobs.lock"), FileElection(tmp_path / "jobs.lock")
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


@pytest.fixture
def record(make_manager, registry, tokenizers) -> JobRecord:
    prepared = prepare(make_manager(max_running=0), registry, tokenizers)
    return JobRecord(
        id=prepared.spec.job_id,
        model=prepared.spec.model,
        status="queued",
        create_model=False,
        settings=prepared.settings,
        data=DataSummary.from_dict(prepared.data.to_dict()),
        spec=JobSpec.from_dict(prepared.spec.to_dict()),
        created_at=utc_now(),
    )


def test_a_claimed_job_is_written_only_by_its_runner(database: Database, record: JobRecord):
    store = JobStore(database)
    store.save(record)  # recorded by a replica that does not run jobs: no runner yet
    assert store.claim(record.id, "host-a~1~1")
    assert not store.claim(record.id, "host-b~2~2")  # starting: claimed once
    record.status = "running"
    record.revision = 1
    assert store.save(record, "host-a~1~1")
    store.take_over("host-b~2~2")  # host-a's lease expired; host-b runs the jobs now
    record.status = "succeeded"  # host-a, not knowing yet, tries to conclude the job
    record.revision = 2
    assert not store.save(record, "host-a~1~1")
    stored = store.get(record.id)
    assert stored is not None
    assert (stored.status, stored.revision) == ("running", 1)
    record.status = "queued"  # host-b requeues it to resume
    record.revision = 3
    assert store.save(record, "host-b~2~2")
    assert store.claim(record.id, "host-b~2~2")
    assert not store.claim(record.id, "host-a~1~1")


def test_a_job_another_runner_took_over_cannot_be_claimed_by_the_old_one(
    database: Database, record: JobRecord
):
    store = JobStore(database)
    store.save(record, "host-a~1~1")  # queued by the runner itself
    store.take_over("host-b~2~2")
    assert not store.claim(record.id, "host-a~1~1")
    assert store.claim(record.id, "host-b~2~2")


class SwitchableElection:
    """An election the test decides: held until ``holding`` is set False (the lease lost)."""

    def __init__(self) -> None:
        self.holding = True

    def acquire(self) -> bool:
        return self.holding

    def held(self) -> bool:
        return self.holding

    def release(self) -> None:
        self.holding = False


def test_a_runner_that_loses_its_lease_stops_and_the_next_resumes_its_job(
    layout, registry, tokenizers, make_manager
) -> None:
    first = JobManager(layout.jobs, JobStore(layout.database), registry, "cpu", threads=1)
    first.runner = "first-host~1~1"  # another process than the next runner (same pid here)
    election = SwitchableElection()
    first.start(election)
    try:
        prepared = prepare(first, registry, tokenizers, epochs=10_000, max_steps=400)
        job_id = first.submit(prepared).id
        running = wait_until(first, job_id, lambda record: record.progress.get("step", 0) > 5)
        worker = running.worker_pid
        election.holding = False  # another process has the lease now
        deadline = time.monotonic() + 10
        while first.runs_jobs and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not first.runs_jobs
        assert first.get(job_id).status == "running"  # left as it was, for the next runner
        assert first.job_dir(job_id).is_dir()  # its files too: the next runner resumes there
        deadline = time.monotonic() + 10
        while process_start(worker) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_start(worker) is None  # its worker was stopped
        second = make_manager()  # the next runner: load() takes over
        done = wait_until(second, job_id, lambda record: record.finished)
        assert done.status == "succeeded", done.error
        assert done.restarts == 1
        assert done.resumed_from_step is not None
        assert len([v for v in registry.versions(BASE) if v.source.get("job_id") == job_id]) == 1
    finally:
        first.close()
