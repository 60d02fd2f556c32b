"""Replicas on PostgreSQL: two ``seqlab serve`` processes on loopback ports sharing one database
and one data dir, as compose.yaml runs them behind a load balancer.

What one replica publishes or deletes, the other learns at once (NOTIFY): the other's poll is
turned off here, so only the notification can tell it. A replica with ``SEQLAB_RUN_JOBS=false``
never trains; one that may takes over a dead runner's jobs once its lease expires, and no
version is ever half-published. (The pair tests of test_workers.py run on PostgreSQL too: a job
submitted to the follower runs once, cancel works from it.)
"""

from __future__ import annotations

import select as io_select
import socket
import threading
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest
from sqlalchemy import select

from app.database import Database
from app.jobs.election import LEASE_SECONDS
from app.ownership import process_start
from app.schema import jobs, versions
from tests.app.conftest import LESSON_MODEL
from tests.app.service_process import ServiceProcess
from tests.app.test_workers import info, job, submit, until

StartService = Callable[..., ServiceProcess]


class FreezableProxy:
    """A TCP proxy to PostgreSQL that can stop forwarding: the network between one replica and
    the database dropping everything, while the TCP connections stay up (the worst case: no
    error, only silence)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                if self.frozen.is_set():
                    time.sleep(0.05)
                    continue
                ready, _, _ = io_select.select([source], [], [], 0.05)
                if ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    sink.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self.listener.close()


NO_POLL = {"SEQLAB_REGISTRY_SYNC_SECONDS": "0"}


@pytest.fixture
def replicas(start_service: StartService, postgres_url: str) -> Callable[..., ServiceProcess]:
    def start(**settings: str) -> ServiceProcess:
        return start_service({"SEQLAB_DATABASE_URL": postgres_url, **NO_POLL, **settings})

    return start


def served(service: ServiceProcess, name: str) -> bool:
    answer = httpx.post(
        f"{service.base}/predict", json={"model": name, "text": "我爱", "k": 3}, timeout=10
    )
    return answer.status_code == 200


def waiting(service: ServiceProcess) -> httpx.Response | None:
    """The service's /ready answer once it says what it waits for."""
    try:
        answer = httpx.get(f"{service.base}/ready", timeout=10)
    except httpx.TransportError:
        return None
    return answer if answer.status_code == 503 and answer.json().get("error") else None


def test_a_model_made_on_one_replica_is_served_by_the_other_without_polling(replicas):
    first, second = replicas(), replicas(SEQLAB_RUN_JOBS="false")
    model = {**LESSON_MODEL, "name": "shared"}
    assert httpx.post(f"{first.base}/models", json=model, timeout=30).status_code == 201
    # Within a second in practice (bench/replicas.py measures it); the bound here is only for a
    # loaded machine: with the poll off, nothing but the notification can make this true.
    until(lambda: served(second, "shared"), timeout=10)
    assert httpx.get(f"{second.base}/models/shared", timeout=10).json()["version"] == 1
    assert info(second)["database"]["notifications"] >= 1

    assert httpx.delete(f"{first.base}/models/shared", timeout=30).status_code == 204
    until(lambda: not served(second, "shared"), timeout=10)
    assert httpx.get(f"{second.base}/models/shared", timeout=10).status_code == 404


def test_a_new_version_trained_on_one_replica_is_served_by_the_other(replicas):
    replicas()  # runs the jobs
    server = replicas(SEQLAB_RUN_JOBS="false")
    before = httpx.get(f"{server.base}/models/lesson-rnn", timeout=10).json()["version"]
    submitted = submit(server, epochs=1)  # accepted by the replica that serves only
    done = until(lambda: (j := job(server, submitted["job_id"]))["status"] == "succeeded" and j)
    assert done["version"] == before + 1
    until(
        lambda: (
            httpx.get(f"{server.base}/models/lesson-rnn", timeout=10).json()["version"]
            == before + 1
        ),
        timeout=10,
    )


def test_a_replica_that_may_not_run_jobs_leaves_them_queued_for_one_that_may(replicas):
    server = replicas(SEQLAB_RUN_JOBS="false")
    assert info(server)["jobs"]["runs_jobs"] is False
    submitted = submit(server, epochs=1)
    time.sleep(2)  # several of its adoption rounds: it must not take the job up
    assert job(server, submitted["job_id"])["status"] == "queued"
    runner = replicas()
    assert info(runner)["jobs"]["runs_jobs"] is True
    until(lambda: job(server, submitted["job_id"])["status"] == "succeeded")
    assert info(server)["jobs"]["runs_jobs"] is False


def test_when_the_runner_dies_a_standby_resumes_its_job_and_publishes_once(
    replicas, postgres_url: str
):
    runner = replicas()
    standby = replicas()  # may run jobs: takes over once the runner's lease has expired
    assert info(standby)["jobs"]["runs_jobs"] is False
    submitted = submit(standby, epochs=200, max_steps=400)
    job_id = submitted["job_id"]
    until(lambda: job(standby, job_id)["progress"]["step"] > 20)
    runner.kill(group=True)  # the machine and everything on it, training worker too
    killed_at = time.monotonic()
    assert until(lambda: info(standby)["jobs"]["runs_jobs"], timeout=LEASE_SECONDS + 20)
    assert time.monotonic() - killed_at >= LEASE_SECONDS * 0.5  # it waited for the lease
    done = until(
        lambda: (j := job(standby, job_id))["status"] in ("succeeded", "failed") and j,
        timeout=120,
    )
    assert done["status"] == "succeeded", done
    assert done["restarts"] >= 1
    assert done["interrupted"]
    assert done["resumed_from_step"] is not None  # from the state saved in the shared dir

    database = Database(postgres_url)
    try:
        rows = database.fetch_all(select(versions).where(versions.c.name == "lesson-rnn"))
        (job_row,) = database.fetch_all(select(jobs).where(jobs.c.id == job_id))
    finally:
        database.close()
    assert all(row["status"] == "ready" for row in rows)  # nothing half-published
    published = [row for row in rows if f'"job_id": "{job_id}"' in row["source"]]
    assert len(published) == 1
    assert job_row["version"] == published[0]["version"]
    assert served(standby, "lesson-rnn")


def test_a_replica_started_before_its_database_exists_waits_for_it(
    tmp_path, postgres_server
) -> None:
    name = "seqlab_created_later"
    url = postgres_server.admin_url.rsplit("/", 1)[0] + f"/{name}"
    service = ServiceProcess(tmp_path / "data", {"SEQLAB_DATABASE_URL": url})
    try:
        with pytest.raises(AssertionError, match="never became ready"):
            service.start(timeout=8)
        ready = until(lambda: waiting(service), timeout=30)
        assert ready.status_code == 503
        assert ready.json()["error"].startswith("waiting for the database (postgresql")
        assert "password" not in ready.json()["error"]
        with psycopg.connect(postgres_server.admin_url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        until(lambda: httpx.get(f"{service.base}/ready", timeout=10).status_code == 200, 30)
        assert served(service, "lesson-rnn")
    finally:
        service.stop()


def test_a_runner_cut_off_from_the_database_stops_and_a_standby_resumes_its_job(
    replicas, postgres_url: str
):
    port = int(postgres_url.rsplit(":", 1)[1].split("/")[0])
    proxy = FreezableProxy(port)
    try:
        through_proxy = postgres_url.replace(f":{port}/", f":{proxy.port}/")
        runner = replicas(SEQLAB_DATABASE_URL=through_proxy)
        standby = replicas()
        assert info(runner)["jobs"]["runs_jobs"] is True
        submitted = submit(standby, epochs=200, max_steps=400)
        job_id = submitted["job_id"]
        running = until(lambda: (j := job(standby, job_id))["progress"]["step"] > 20 and j)
        worker = running["worker_pid"]
        proxy.frozen.set()  # the runner hears nothing from the database from now on
        frozen_at = time.monotonic()
        # It gives the role up by its own clock (no answer needed), and stops its worker ...
        until(lambda: not info(runner)["jobs"]["runs_jobs"], timeout=LEASE_SECONDS + 10)
        assert time.monotonic() - frozen_at < LEASE_SECONDS  # before the lease can expire
        until(lambda: process_start(worker) is None, timeout=10)
        # ... and the standby takes the lease once expired and resumes the job.
        assert until(lambda: info(standby)["jobs"]["runs_jobs"], timeout=LEASE_SECONDS + 20)
        done = until(
            lambda: (j := job(standby, job_id))["status"] in ("succeeded", "failed") and j,
            timeout=120,
        )
        assert done["status"] == "succeeded", done
        assert done["resumed_from_step"] is not None
        proxy.frozen.clear()  # the runner hears the database again: it must not undo anything
        time.sleep(3)
        assert job(standby, job_id)["status"] == "succeeded"
        assert info(runner)["jobs"]["runs_jobs"] is False  # the standby holds the lease
        versions = httpx.get(f"{standby.base}/models/lesson-rnn/versions", timeout=10).json()
        assert [v["source"].get("job_id") for v in versions].count(job_id) == 1
    finally:
        proxy.frozen.clear()
        proxy.close()
