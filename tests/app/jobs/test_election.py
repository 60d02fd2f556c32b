"""Who runs the jobs, on both engines: the lease in the database (replicas of several hosts) and
the fence on the job rows that keeps a runner that lost its lease from writing them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.database import Database, utc_now
from app.jobs.election import DatabaseElection, FileElection
from app.jobs.protocol import DataSummary, JobSpec
from app.jobs.store import JobRecord, JobStore
from tests.app.jobs.test_manager import (  # noqa: F401 - fixtures: a registry and managers
    engine_url,
    layout,
    make_manager,
    prepare,
    registry,
    tokenizers,
)


@pytest.fixture
def database(database_url: str | None, tmp_path: Path):
    database = Database(database_url or tmp_path / "registry.sqlite3")
    yield database
    database.close()


def test_one_holder_at_a_time_and_another_takes_over_an_expired_lease(database: Database):
    first = DatabaseElection(database, "host-a~1~1", lease_seconds=0.5)
    second = DatabaseElection(database, "host-b~2~2", lease_seconds=0.5)
    assert first.acquire()
    assert first.acquire()  # renewed
    assert not second.acquire()
    time.sleep(0.7)  # first stopped renewing (dead, or cut off from the database)
    assert second.acquire()
    assert not first.acquire()  # it must know it lost: its jobs are the second's now


def test_a_released_lease_is_taken_at_once(database: Database):
    first = DatabaseElection(database, "host-a~1~1", lease_seconds=60)
    second = DatabaseElection(database, "host-b~2~2", lease_seconds=60)
    assert first.acquire()
    assert not second.acquire()
    first.release()  # a clean stop
    assert second.acquire()


def test_the_file_election_is_one_holder_per_data_dir(tmp_path: Path):
    first, second = FileElection(tmp_path / "jobs.lock"), FileElection(tmp_path / "jobs.lock")
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


@pytest.fixture
def record(request: pytest.FixtureRequest) -> JobRecord:
    """A job's record, prepared by test_manager's fixtures (imported above)."""
    manager = request.getfixturevalue("make_manager")(max_running=0)
    prepared = prepare(
        manager, request.getfixturevalue("registry"), request.getfixturevalue("tokenizers")
    )
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
