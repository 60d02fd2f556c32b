"""Fair, bounded work: past its queue a request is a 429 with Retry-After, never a late answer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from app.admission import Admission
from app.errors import OverloadedError

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def test_past_the_queue_a_request_is_refused_at_once_and_in_order_otherwise():
    shed: list[tuple[str, str]] = []
    admission = Admission(
        "inference", running=1, queued=2, deadline=5.0, on_shed=lambda *r: shed.append(r)
    )
    order: list[int] = []
    refused: list[OverloadedError] = []
    release = anyio.Event()

    async def work(number: int) -> None:
        try:
            async with admission.slot():
                order.append(number)
                if number == 0:
                    await release.wait()
        except OverloadedError as error:
            refused.append(error)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for number in range(5):
                group.start_soon(work, number)
                await anyio.sleep(0.01)  # arrive in this order
            assert admission.waiting == 2
            release.set()

    anyio.run(main)
    assert order == [0, 1, 2]  # the running one, then the two queued, first come first served
    assert len(refused) == 2
    assert all(error.retry_after >= 1 for error in refused)
    assert "2 waiting" in refused[0].detail
    assert shed == [("inference", "queue_full")] * 2


def test_a_request_that_waited_past_its_deadline_is_not_computed():
    admission = Admission("upload", running=1, queued=4, deadline=0.05)
    computed: list[int] = []
    refused: list[OverloadedError] = []

    async def slow() -> None:
        async with admission.slot():
            await anyio.sleep(0.3)

    async def late() -> None:
        try:
            async with admission.slot():
                computed.append(1)
        except OverloadedError as error:
            refused.append(error)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(slow)
            await anyio.sleep(0.01)
            group.start_soon(late)

    anyio.run(main)
    assert computed == []
    assert "waited 0.05 s" in refused[0].detail


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_service(tmp_path: Path, port: int, settings: dict[str, str]) -> Iterator[str]:
    """A real uvicorn serving the app on ``port`` with these SEQLAB_* settings, until ready;
    its base URL. Stopped (its process group) at the end."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEQLAB_")},
        "SEQLAB_DATA_DIR": str(tmp_path / "data"),
        "SEQLAB_TRAIN_DEMO_MODEL": "false",
        "SEQLAB_LOG_LEVEL": "warning",
        **settings,
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "app.main:create_app",
            "--port",
            str(port),
            "--no-access-log",
        ],
        cwd=REPO_ROOT,
        env=environment,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_an_overloaded_service_sheds_with_429_and_health_answers_throughout(tmp_path):
    settings = {"SEQLAB_INFERENCE_THREADS": "1", "SEQLAB_MAX_QUEUED_INFERENCE": "2"}
    with running_service(tmp_path, free_port(), settings) as base:
        # Each is ~a quarter million characters of jieba: far over what runs inline.
        bulk = {"texts": ["我爱学习自然语言处理，今天天气很好。" * 400] * 32}

        def heavy(_: int) -> httpx.Response:
            return httpx.post(f"{base}/tokenize", json=bulk, timeout=60)

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = pool.map(heavy, range(12))
            time.sleep(0.2)  # all twelve have arrived
            health = httpx.get(f"{base}/health", timeout=60)
            answers = list(answers)
        assert health.status_code == 200
        statuses = [answer.status_code for answer in answers]
        assert set(statuses) <= {200, 429}, statuses
        assert statuses.count(200) >= 1
        assert statuses.count(429) >= 1
        for answer in answers:
            if answer.status_code == 429:
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert int(answer.headers["Retry-After"]) >= 1
                assert answer.json()["type"] == "urn:seqlab:problem:overloaded"
                assert answer.json()["work"] == "inference"
        metrics = httpx.get(f"{base}/metrics").text
        assert 'seqlab_requests_shed_total{kind="inference",reason="queue_full"}' in metrics
        info = httpx.get(f"{base}/info").json()
        assert info["admission"]["inference"] == {
            "running": 1,
            "queued": 2,
            "deadline_seconds": 5.0,
        }
