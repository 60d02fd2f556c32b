"""Fair, bounded work: past its queue a request is a 429 with Retry-After, never a late answer."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import httpx
import pytest

from app.admission import Admission
from app.errors import OverloadedError
from tests.app.service_process import free_port, running_service


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
