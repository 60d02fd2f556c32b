"""The job manager without HTTP: queue, worker processes, cancelling, publishing, restarts.

Jobs are prepared as the service prepares them (:func:`app.services.training.prepare_job`)
into the manager's job directory and run in real spawned worker processes. A manager with
``max_running=0`` never starts a job: it stands for a service that stopped with jobs queued.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from app.errors import ConflictError, NotFoundError
from app.jobs import files
from app.jobs.manager import JobManager
from app.jobs.store import JobRecord, JobStore
from app.layout import DataLayout
from app.model_index import utc_now
from app.registry import ModelRegistry
from app.tokenizers import TokenizerCache
from models.training_state import load_training_state
from tests.app.jobs.conftest import (
    BASE,
    JOB_TIMEOUT,
    TINY_MODEL,
    MakeManager,
    prepare,
    wait_until,
)

# The jobs table as the first release with jobs made it: no `starting`, no resume columns.
FIRST_JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
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
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs (model, created_at);
"""


def long_job(manager: JobManager, registry: ModelRegistry, tokenizers: TokenizerCache) -> str:
    """Submit a job that trains until it is stopped (many epochs over the texts)."""
    prepared = prepare(manager, registry, tokenizers, epochs=10_000, max_steps=None)
    return manager.submit(prepared).id


def assert_never_ran(record: JobRecord) -> None:
    assert record.started_at is None
    assert record.worker_pid is None
    assert record.progress.get("step", 0) == 0  # at most the plan, no step taken
    assert record.progress.get("loss") is None
    assert not record.metrics.get("history", {}).get("steps")


def test_a_job_trains_and_publishes_the_next_version_with_its_metrics(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    manager = make_manager()
    prepared = prepare(manager, registry, tokenizers, max_steps=6, log_every=2)
    submitted = manager.submit(prepared)
    assert submitted.status in ("queued", "starting")
    assert submitted.base_version == 1
    done = manager.wait(submitted.id, timeout=JOB_TIMEOUT)
    assert done.status == "succeeded", done.error
    assert done.version == 2
    assert done.worker_pid is None
    assert done.finished_at is not None
    assert done.progress["fraction"] == 1.0
    assert done.metrics["stop_reason"] == "max_steps"
    assert [step["step"] for step in done.metrics["history"]["steps"]] == [2, 4, 6]
    assert not manager.job_dir(done.id).exists()

    published = registry.get(BASE)
    assert published.version == 2
    assert published.metrics["job_id"] == done.id
    assert published.metrics["val_perplexity"] == done.metrics["val_perplexity"]
    assert published.metrics["unigram_perplexity"] == done.data.unigram_perplexity
    assert published.source == {"kind": "train", "base_version": 1, "job_id": done.id}
    # The record survives in the store as it ended.
    stored = {record.id: record for record in manager.store.all()}[done.id]
    assert stored.status == "succeeded"
    assert stored.version == 2


def test_a_queued_job_can_be_cancelled_and_never_runs(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    manager = make_manager(max_running=1)
    first = long_job(manager, registry, tokenizers)
    second = manager.submit(prepare(manager, registry, tokenizers)).id
    assert manager.get(first).status in ("starting", "running")
    assert manager.get(second).status == "queued"

    cancelled = manager.cancel(second)
    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    assert_never_ran(cancelled)
    # Freeing the slot does not start it: it left the queue.
    assert manager.cancel(first).status == "cancelled"
    assert_never_ran(manager.get(second))
    assert [job.id for job in manager.list(status="cancelled")] == [first, second]
    assert [row.version for row in registry.versions(BASE)] == [1]
    assert registry.get(BASE).version == 1
    with pytest.raises(ConflictError, match="already cancelled"):
        manager.cancel(second)


def test_cancelling_a_queued_job_removes_its_prepared_data(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    manager = make_manager(max_running=0)
    job_id = manager.submit(prepare(manager, registry, tokenizers)).id
    assert files.is_prepared(manager.job_dir(job_id))
    manager.cancel(job_id)
    assert not manager.job_dir(job_id).exists()


def test_cancelling_a_running_job_publishes_nothing_and_leaves_no_job_directory(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    manager = make_manager()
    job_id = long_job(manager, registry, tokenizers)
    running = wait_until(manager, job_id, lambda record: record.progress.get("step", 0) > 0)
    assert running.status == "running"
    assert running.worker_pid is not None
    assert files.is_prepared(manager.job_dir(job_id))

    cancelled = manager.cancel(job_id)
    assert cancelled.status == "cancelled"
    assert cancelled.version is None
    assert cancelled.worker_pid is None
    assert not manager.job_dir(job_id).exists()
    assert [row.version for row in registry.versions(BASE)] == [1]
    assert registry.get(BASE).version == 1
    with pytest.raises(ConflictError):
        manager.cancel(job_id)


def test_load_resumes_interrupted_jobs_fails_those_that_may_not_and_runs_queued_ones(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    before = make_manager(max_running=0)  # a service that stopped before running these
    was_running = before.submit(prepare(before, registry, tokenizers, max_steps=2)).id
    no_resume = before.submit(prepare(before, registry, tokenizers, max_steps=2, resume=False)).id
    queued = before.submit(prepare(before, registry, tokenizers, max_steps=2)).id
    data_lost = before.submit(prepare(before, registry, tokenizers, max_steps=2)).id
    # As a service killed in the middle of a job leaves its row: still 'running'.
    for job_id in (was_running, no_resume):
        record = before.get(job_id)
        record.status = "running"
        record.started_at = utc_now()
        before.store.save(record)
    files.discard(before.job_dir(data_lost))

    after = make_manager()  # the restart: a new manager over the same store
    failed = after.get(no_resume)
    assert failed.status == "failed"
    assert failed.error == "interrupted: the service stopped"
    assert failed.finished_at is not None
    assert not after.job_dir(no_resume).exists()
    missing = after.get(data_lost)
    assert missing.status == "failed"
    assert "prepared data is missing" in (missing.error or "")

    resumed = after.wait(was_running, timeout=JOB_TIMEOUT)
    assert resumed.status == "succeeded", resumed.error
    assert (resumed.restarts, resumed.interruptions) == (1, 1)
    assert resumed.interrupted == "the service stopped"
    assert resumed.resumed_from_step == 0  # killed before it saved any state
    ran_after = after.wait(queued, timeout=JOB_TIMEOUT)
    assert ran_after.status == "succeeded", ran_after.error
    assert (ran_after.restarts, ran_after.resumed_from_step) == (0, None)
    assert {resumed.version, ran_after.version} == {2, 3}
    assert [row.version for row in registry.versions(BASE)] == [1, 2, 3]
    stored = {record.id: record.status for record in after.store.all()}
    assert stored == {
        was_running: "succeeded",
        no_resume: "failed",
        queued: "succeeded",
        data_lost: "failed",
    }


def test_a_job_whose_version_was_published_before_the_kill_is_not_run_again(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    before = make_manager()
    done = before.wait(
        before.submit(prepare(before, registry, tokenizers, max_steps=2)).id, JOB_TIMEOUT
    )
    assert done.status == "succeeded", done.error
    # The service was killed between publishing version 2 and recording it in the job's row.
    record = before.get(done.id)
    record.status, record.version, record.finished_at = "running", None, None
    before.store.save(record)

    after = make_manager()
    recovered = after.get(done.id)
    assert recovered.status == "succeeded"
    assert recovered.version == 2
    assert recovered.restarts == 0
    assert recovered.metrics["val_perplexity"] == done.metrics["val_perplexity"]
    assert [row.version for row in registry.versions(BASE)] == [1, 2]


RESUMABLE = {"epochs": 25, "max_steps": None, "checkpoint_every_steps": 7, "log_every": 5}


def _published_weights(registry: ModelRegistry, version: int) -> dict[str, torch.Tensor]:
    return load_file(registry.path(BASE, version) / "model.safetensors")


def _assert_same_weights(registry: ModelRegistry, version: int, expected: int) -> None:
    actual, reference = (
        _published_weights(registry, version),
        _published_weights(registry, expected),
    )
    assert actual.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=1e-6)


def test_a_killed_worker_is_replaced_and_the_job_ends_as_an_uninterrupted_run(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    manager = make_manager()
    reference = prepare(manager, registry, tokenizers, **RESUMABLE)
    killed = prepare(manager, registry, tokenizers, **RESUMABLE)  # both start from version 1
    expected = manager.wait(manager.submit(reference).id, timeout=JOB_TIMEOUT)
    assert expected.status == "succeeded", expected.error
    total = expected.progress["step"]

    job_id = manager.submit(killed).id
    running = wait_until(manager, job_id, lambda record: record.progress.get("step", 0) >= 30)
    assert running.worker_pid is not None
    os.kill(running.worker_pid, signal.SIGKILL)
    done = manager.wait(job_id, timeout=JOB_TIMEOUT)
    assert done.status == "succeeded", done.error
    assert (done.restarts, done.interruptions) == (1, 1)
    assert done.interrupted == "the worker process died (signal 9)"
    assert done.resumed_from_step is not None
    assert 28 <= done.resumed_from_step < total
    assert done.resumed_from_step % 7 == 0
    assert done.progress["step"] == total
    steps = [entry["step"] for entry in done.metrics["history"]["steps"]]
    assert steps == [entry["step"] for entry in expected.metrics["history"]["steps"]]
    torch.testing.assert_close(
        [entry["loss"] for entry in done.metrics["history"]["steps"]],
        [entry["loss"] for entry in expected.metrics["history"]["steps"]],
    )
    assert done.metrics["val_perplexity"] == pytest.approx(expected.metrics["val_perplexity"])
    _assert_same_weights(registry, done.version or 0, expected.version or 0)
    assert not manager.job_dir(job_id).exists()


def test_a_job_interrupted_too_often_fails(
    layout: DataLayout, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    manager = JobManager(
        layout.jobs, JobStore(layout.database), registry, "cpu", threads=1, max_interruptions=0
    )
    manager.load()
    try:
        job_id = long_job(manager, registry, tokenizers)
        running = wait_until(manager, job_id, lambda record: record.progress.get("step", 0) > 0)
        os.kill(running.worker_pid or 0, signal.SIGKILL)
        failed = manager.wait(job_id, timeout=JOB_TIMEOUT)
        assert failed.status == "failed"
        assert failed.error == "interrupted 1 time, at last: the worker process died (signal 9)"
        assert not manager.job_dir(job_id).exists()
    finally:
        manager.close()
        manager.store.close()


def test_a_stopping_service_saves_a_running_job_and_the_next_one_finishes_it(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    first = make_manager()
    reference = prepare(first, registry, tokenizers, **RESUMABLE)
    suspended = prepare(
        first, registry, tokenizers, **{**RESUMABLE, "checkpoint_every_steps": None}
    )
    expected = first.wait(first.submit(reference).id, timeout=JOB_TIMEOUT)
    job_id = first.submit(suspended).id
    wait_until(first, job_id, lambda record: record.progress.get("step", 0) >= 20)
    first.close()
    stopped = first.get(job_id)
    assert stopped.status == "queued"
    assert (stopped.restarts, stopped.interruptions) == (1, 0)
    state = load_training_state(files.states_dir(first.job_dir(job_id)))
    assert state is not None
    assert state.step >= 20  # saved when it stopped: no periodic state was asked for
    assert stopped.interrupted == f"the service stopped (its state was saved at step {state.step})"

    second = make_manager()
    done = second.wait(job_id, timeout=JOB_TIMEOUT)
    assert done.status == "succeeded", done.error
    assert done.resumed_from_step == state.step
    _assert_same_weights(registry, done.version or 0, expected.version or 0)
    # Its history is the uninterrupted run's (the speeds aside): nothing lost, nothing twice.
    history, reference_history = done.metrics["history"], expected.metrics["history"]
    assert [s["step"] for s in history["steps"]] == [s["step"] for s in reference_history["steps"]]
    torch.testing.assert_close(
        [s["loss"] for s in history["steps"]], [s["loss"] for s in reference_history["steps"]]
    )
    assert [e["epoch"] for e in history["epochs"]] == [
        e["epoch"] for e in reference_history["epochs"]
    ]


def test_a_stopping_service_fails_a_job_that_may_not_resume(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    first = make_manager()
    job_id = first.submit(
        prepare(first, registry, tokenizers, epochs=10_000, max_steps=None, resume=False)
    ).id
    wait_until(first, job_id, lambda record: record.progress.get("step", 0) > 0)
    first.close()
    stopped = first.get(job_id)
    assert stopped.status == "failed"
    assert stopped.error == "interrupted: the service stopped"
    assert not first.job_dir(job_id).exists()


def test_a_second_job_creating_the_same_model_is_a_conflict(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    manager = make_manager(max_running=0)
    first = manager.submit(prepare(manager, registry, tokenizers, "fresh", create=TINY_MODEL))
    assert manager.creating("fresh")
    second = prepare(manager, registry, tokenizers, "fresh", create=TINY_MODEL)
    with pytest.raises(ConflictError, match="fresh"):
        manager.submit(second)
    assert not manager.job_dir(second.spec.job_id).exists()
    assert [job.id for job in manager.list(model="fresh")] == [first.id]
    # A job training an existing model does not conflict with another one.
    manager.submit(prepare(manager, registry, tokenizers))
    manager.submit(prepare(manager, registry, tokenizers))
    assert len(manager.list(model=BASE)) == 2


def test_an_unknown_job_is_not_found(make_manager: MakeManager) -> None:
    manager = make_manager(max_running=0)
    with pytest.raises(NotFoundError, match="0123456789abcdef"):
        manager.get("0123456789abcdef")
    with pytest.raises(NotFoundError):
        manager.cancel("0123456789abcdef")
    assert manager.list() == []


def test_a_job_is_starting_until_its_worker_has_loaded_and_reported(
    make_manager: MakeManager, registry: ModelRegistry, tokenizers: TokenizerCache
) -> None:
    manager = make_manager()
    job_id = long_job(manager, registry, tokenizers)
    # A spawned worker imports torch before it can say anything: seconds, not microseconds.
    assert manager.get(job_id).status == "starting"
    assert manager.get(job_id).worker_pid is not None
    running = wait_until(manager, job_id, lambda record: record.status == "running")
    assert running.progress.get("total_steps", 0) > 0 or running.status == "running"
    manager.cancel(job_id)


def test_a_jobs_table_made_before_starting_existed_is_rebuilt_with_its_rows(
    tmp_path: Path,
    make_manager: MakeManager,
    registry: ModelRegistry,
    tokenizers: TokenizerCache,
) -> None:
    prepared = prepare(make_manager(max_running=0), registry, tokenizers)
    database = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(database)
    connection.executescript(FIRST_JOBS_SCHEMA)
    connection.execute(
        "INSERT INTO jobs (id, model, status, create_model, settings, data, spec, created_at) "
        "VALUES ('0123456789abcdef', 'm', 'succeeded', 0, '{}', ?, ?, '2026-11-30T00:00:00Z')",
        (json.dumps(prepared.data.to_dict()), json.dumps(prepared.spec.to_dict())),
    )
    connection.commit()
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute("UPDATE jobs SET status = 'starting'")
    connection.close()
    store = JobStore(database)
    (record,) = store.all()
    assert (record.id, record.status) == ("0123456789abcdef", "succeeded")
    record.status = "starting"
    store.save(record)  # the new CHECK takes it
    assert store.all()[0].status == "starting"
    assert (store.all()[0].restarts, store.all()[0].resumed_from_step) == (0, None)
    store.close()
