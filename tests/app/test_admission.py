"""Fair, bounded work: past its queue a request is a 429 with Retry-After, never a late answer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
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
    settings = {"SEQLAB_SEGMENTATION_THREADS": "1", "SEQLAB_MAX_QUEUED_SEGMENTATION": "2"}
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
                assert answer.json()["work"] == "segmentation"
        metrics = httpx.get(f"{base}/metrics").text
        assert 'seqlab_requests_shed_total{kind="segmentation",reason="queue_full"}' in metrics
        info = httpx.get(f"{base}/info").json()
        assert info["admission"]["segmentation"] == {
            "running": 1,
            "queued": 2,
            "deadline_seconds": 5.0,
        }
        assert info["admission"]["small"] == {"max_in_flight": 32}


def _small_request(text: str) -> bytes:
    body = json.dumps({"text": text}).encode()
    return (
        b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


def _read_answers(connection: socket.socket, count: int) -> list[tuple[int, dict, bytes]]:
    """``count`` answers from a kept-alive connection: status, headers, body."""
    reader = connection.makefile("rb")
    answers = []
    for _ in range(count):
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        answers.append((status, headers, reader.read(int(headers["content-length"]))))
    return answers


@pytest.mark.slow
def test_past_the_small_request_bound_a_429_comes_at_the_door_and_health_still_answers(
    start_service,
):
    service = start_service({"SEQLAB_MAX_SMALL_REQUESTS": "2"})
    connections = [
        socket.create_connection(("127.0.0.1", service.port), timeout=30) for _ in range(20)
    ]
    health = socket.create_connection(("127.0.0.1", service.port), timeout=30)
    time.sleep(0.3)  # all accepted
    assert service.process is not None
    # Stopped, the service finds all twenty requests (and a health check) waiting at once.
    os.kill(service.process.pid, signal.SIGSTOP)
    try:
        for connection in connections:
            connection.sendall(_small_request("我爱学习自然语言处理"))
        health.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
    finally:
        os.kill(service.process.pid, signal.SIGCONT)
    answers = [_read_answers(connection, 1)[0] for connection in connections]
    assert _read_answers(health, 1)[0][:1] == (200,)
    statuses = [status for status, _, _ in answers]
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) >= 2
    assert statuses.count(429) >= 10
    for status, headers, body in answers:
        if status == 429:
            problem = json.loads(body)
            assert headers["content-type"] == "application/problem+json"
            assert headers["retry-after"] == "1"
            assert problem["type"] == "urn:seqlab:problem:overloaded"
            assert problem["work"] == "small"
            assert problem["instance"] == "/tokenize"
            assert "connection" not in headers  # the connection stays open
    # Refused connections serve their next request as usual.
    for connection in connections[:3]:
        connection.sendall(_small_request("我爱机器学习"))
        assert _read_answers(connection, 1)[0][0] == 200
    metrics = httpx.get(f"{service.base}/metrics").text
    assert 'seqlab_requests_shed_total{kind="small",reason="too_many"}' in metrics
    for connection in [*connections, health]:
        connection.close()


@pytest.mark.slow
def test_pipelined_requests_are_answered_in_order(start_service):
    service = start_service({"SEQLAB_MAX_SMALL_REQUESTS": "1"})
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as connection:
        # A small request, a health check and two more small ones in one write, with a
        # bound of one: the three small ones are answered one after the other, in order.
        connection.sendall(
            _small_request("我爱学习")
            + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            + _small_request("自然语言")
            + _small_request("处理")
        )
        answers = _read_answers(connection, 4)
    first, health, third, fourth = answers
    assert first[0] == 200
    assert json.loads(first[2])["tokens"] == [["我", "爱", "学习"]]
    assert (health[0], json.loads(health[2])) == (200, {"status": "ok"})
    # Each waited its turn and was counted then, when the one before had been answered.
    assert (third[0], json.loads(third[2])["tokens"]) == (200, [["自然语言"]])
    assert (fourth[0], json.loads(fourth[2])["tokens"]) == (200, [["处理"]])


def _in_flight(base: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("seqlab_small_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("no seqlab_small_requests_in_flight")


@pytest.mark.slow
def test_a_connection_lost_with_requests_waiting_their_turn_gives_their_places_back(start_service):
    service = start_service({"SEQLAB_MAX_SMALL_REQUESTS": "2"})
    assert service.process is not None
    connection = socket.create_connection(("127.0.0.1", service.port), timeout=30)
    time.sleep(0.2)
    os.kill(service.process.pid, signal.SIGSTOP)
    try:
        # Three pipelined small requests, and the client gone before any is answered: the
        # first runs, the second waits its turn (counted in the gate), the third is refused.
        connection.sendall(b"".join(_small_request(text) for text in ("我爱", "学习", "处理")))
        connection.close()
        time.sleep(0.2)
    finally:
        os.kill(service.process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while _in_flight(service.base) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _in_flight(service.base) == 0
    # Both places are free: two requests at once are both answered.
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(
            pool.map(
                lambda text: httpx.post(f"{service.base}/tokenize", json={"text": text}),
                ["我爱", "学习"],
            )
        )
    assert [answer.status_code for answer in answers] == [200, 200]


@pytest.mark.slow
def test_an_upgrade_request_is_never_counted_at_the_door(start_service):
    service = start_service({"SEQLAB_MAX_SMALL_REQUESTS": "2"})
    body = json.dumps({"text": "我爱"}).encode()
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", service.port), timeout=30) as connection:
            connection.sendall(
                b"POST /tokenize HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )
            connection.settimeout(2)
            with contextlib.suppress(OSError):
                connection.recv(65536)  # whatever uvicorn makes of it
    assert _in_flight(service.base) == 0
    answers = [httpx.post(f"{service.base}/tokenize", json={"text": "我爱"}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
