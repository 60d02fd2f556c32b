"""Several service processes on one data dir: two ``seqlab serve`` side by side (as
``SEQLAB_WORKERS`` runs them, or two replicas on a shared directory), and ``SEQLAB_WORKERS=2``
itself. Exactly one runs the training jobs; any accepts, shows and cancels them; when the one
that runs them is killed, another takes over and the job is not lost.

The pair runs on both engines: with SQLite the runner is elected by the data dir's flock, with
PostgreSQL (replicas of several hosts) by a lease in the database."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import httpx
import pytest

from tests.app.routers.test_training import QUICK, SMALL_TEXTS
from tests.app.service_process import ServiceProcess

StartService = Callable[..., ServiceProcess]


def until(predicate: Callable[[], object], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def info(service: ServiceProcess) -> dict:
    return httpx.get(f"{service.base}/info", timeout=10).json()


def job(service: ServiceProcess, job_id: str) -> dict:
    answer = httpx.get(f"{service.base}/train/{job_id}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def submit(service: ServiceProcess, **fields) -> dict:
    body = {"model": "lesson-rnn", "texts": SMALL_TEXTS, **QUICK, **fields}
    answer = httpx.post(f"{service.base}/train", json=body, timeout=60)
    assert answer.status_code == 202, answer.text
    return answer.json()


@pytest.fixture
def pair(
    start_service: StartService, database_url: str | None
) -> tuple[ServiceProcess, ServiceProcess]:
    """Two services on one data dir (and one database); the first started runs the jobs."""
    settings = {"SEQLAB_DATABASE_URL": database_url} if database_url else {}
    runner = start_service(settings)
    other = start_service(settings)
    assert info(runner)["jobs"]["runs_jobs"] is True
    assert info(other)["jobs"]["runs_jobs"] is False
    return runner, other


def test_a_job_submitted_to_either_is_run_once_by_the_one_that_runs_jobs(pair):
    runner, other = pair
    versions_before = httpx.get(f"{runner.base}/models/lesson-rnn/versions").json()
    submitted = submit(other, epochs=2)
    done = until(lambda: (j := job(other, submitted["job_id"]))["status"] == "succeeded" and j)
    assert done["version"] == len(versions_before) + 1
    assert job(runner, submitted["job_id"])["status"] == "succeeded"
    versions = httpx.get(f"{other.base}/models/lesson-rnn/versions").json()
    made = [v for v in versions if v["source"].get("job_id") == submitted["job_id"]]
    assert len(made) == 1  # exactly one run published
    listed = httpx.get(f"{other.base}/train").json()["jobs"]
    assert [j["job_id"] for j in listed].count(submitted["job_id"]) == 1
    events = httpx.get(f"{other.base}/train/{submitted['job_id']}/events", timeout=30).text
    assert "event: done" in events


def test_cancel_works_from_the_other_process(pair):
    runner, other = pair
    running = submit(other, epochs=10_000)
    until(lambda: job(runner, running["job_id"])["progress"]["step"] > 0)
    behind = submit(runner, epochs=1)  # the runner's own, queued behind it (max_running 1)
    queued = submit(other, epochs=10_000)
    cancelled = httpx.delete(f"{other.base}/train/{queued['job_id']}", timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    stopped = httpx.delete(f"{other.base}/train/{running['job_id']}", timeout=30)
    assert stopped.status_code == 200, stopped.text
    until(lambda: job(runner, running["job_id"])["status"] == "cancelled", timeout=15)
    again = httpx.delete(f"{other.base}/train/{running['job_id']}", timeout=30)
    assert again.status_code == 409
    assert again.json()["detail"] == f"job {running['job_id']!r} was already cancelled"
    # The job queued on the runner itself was left alone, and runs once the way is free.
    until(lambda: job(other, behind["job_id"])["status"] == "succeeded", timeout=60)
    assert job(runner, queued["job_id"])["status"] == "cancelled"


def test_when_the_runner_is_killed_another_takes_over_and_the_job_goes_on(pair):
    runner, other = pair
    long = submit(other, epochs=10_000, max_seconds=600)
    until(lambda: job(other, long["job_id"])["progress"]["step"] > 0)
    runner.kill(group=False)  # the service alone: its training worker sees it gone and saves
    assert until(lambda: info(other)["jobs"]["runs_jobs"], timeout=30)
    resumed = until(
        lambda: (
            (j := job(other, long["job_id"]))["status"] == "running" and j["restarts"] >= 1 and j
        ),
        timeout=60,
    )
    assert resumed["interrupted"]  # said why it went back
    stopped = httpx.delete(f"{other.base}/train/{long['job_id']}", timeout=30)
    assert stopped.json()["status"] == "cancelled"


def test_seqlab_workers_serves_with_several_processes_and_one_runs_jobs(start_service):
    service = start_service({"SEQLAB_WORKERS": "2"})
    seen: dict[int, bool] = {}

    def both_seen() -> bool:
        with httpx.Client(base_url=service.base, timeout=10) as client:  # a new connection
            answer = client.get("/info").json()
        seen[answer["process"]["pid"]] = answer["jobs"]["runs_jobs"]
        return len(seen) == 2

    until(both_seen, timeout=60)
    assert sorted(seen.values()) == [False, True]
    # A worker that dies is replaced; the port keeps answering meanwhile.
    victim = next(pid for pid, runs in seen.items() if not runs)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        with httpx.Client(base_url=service.base, timeout=10) as client:
            answer = client.get("/ready")
            pid = client.get("/info").json()["process"]["pid"]
        return answer.status_code == 200 and pid not in seen

    until(replaced, timeout=60)
    for _ in range(2):  # whichever worker takes it, the job runs and answers
        body = {"model": "lesson-rnn", "texts": SMALL_TEXTS, **QUICK, "wait": True}
        answer = httpx.post(f"{service.base}/train", json=body, timeout=120)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "succeeded"
