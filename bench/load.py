"""An HTTP/1.1 load generator on asyncio, for benchmarks that need what wrk cannot print:
latency and status counts per route, and the 200s apart from the 429s.

``run_load`` holds ``connections`` keep-alive connections for ``seconds``; each sends its
requests one after another (a closed loop, as wrk does), cycling through the given list from
its own offset, so every route is in flight at once. A connection the server closes (a 408, a
503 past the connection limit) is opened again. ``HealthProbe`` times ``GET /health`` at a fixed
rate from a thread of its own, to see whether a busy service still answers it.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoadRequest:
    route: str  # the label the report uses
    path: str
    body: bytes
    method: str = "POST"

    def wire(self, host: str) -> bytes:
        head = (
            f"{self.method} {self.path} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        return head.encode("ascii") + self.body


@dataclass
class RouteResult:
    statuses: Counter[int] = field(default_factory=Counter)
    ok_latencies: list[float] = field(default_factory=list)  # seconds, 2xx answers only
    all_latencies: list[float] = field(default_factory=list)
    errors: int = 0  # connection errors: no answer at all

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    def count(self, low: int, high: int) -> int:
        return sum(n for status, n in self.statuses.items() if low <= status <= high)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of one answer (its body read and dropped) and whether the server closes."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length = 0
    closing = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            closing = True
    await reader.readexactly(length)
    return status, closing


async def _connection_loop(
    host: str,
    port: int,
    requests: list[LoadRequest],
    offset: int,
    stop_at: float,
    results: dict[str, RouteResult],
) -> None:
    index = offset
    reader = writer = None
    while time.monotonic() < stop_at:
        request = requests[index % len(requests)]
        index += 1
        result = results[request.route]
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(request.wire(host))
            status, closing = await asyncio.wait_for(
                _read_answer(reader),  # type: ignore[arg-type]
                timeout=max(0.1, stop_at + 30 - time.monotonic()),
            )
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            result.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
            continue
        elapsed = time.perf_counter() - started
        result.statuses[status] += 1
        result.all_latencies.append(elapsed)
        if 200 <= status < 300:
            result.ok_latencies.append(elapsed)
        if closing:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _run(
    host: str, port: int, requests: list[LoadRequest], connections: int, seconds: float
) -> dict[str, RouteResult]:
    results = {request.route: RouteResult() for request in requests}
    stop_at = time.monotonic() + seconds
    await asyncio.gather(
        *(
            _connection_loop(host, port, requests, offset, stop_at, results)
            for offset in range(connections)
        )
    )
    return results


def run_load(
    host: str, port: int, requests: list[LoadRequest], connections: int, seconds: float
) -> dict[str, RouteResult]:
    """Per route: the statuses and latencies of every answer in ``seconds`` of load."""
    try:
        import uvloop  # uvicorn[standard] brings it: a faster client loop

        return uvloop.run(_run(host, port, requests, connections, seconds))
    except ImportError:
        return asyncio.run(_run(host, port, requests, connections, seconds))


class HealthProbe:
    """``GET /health`` every ``interval`` seconds from a thread, each answer timed."""

    def __init__(self, host: str, port: int, interval: float = 0.05) -> None:
        self.host, self.port, self.interval = host, port, interval
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, name="health-probe", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _probe(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                connection.request("GET", "/health")  # a new connection, as a health check
                answer = connection.getresponse()
                answer.read()
                connection.close()
                if answer.status == 200:
                    self.latencies.append(time.perf_counter() - started)
                else:
                    self.failures += 1
            except OSError:
                self.failures += 1
            self._stop.wait(max(0.0, self.interval - (time.perf_counter() - started)))
