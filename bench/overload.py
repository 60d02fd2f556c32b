"""A service under load, with a training job running, and far past its capacity.

Two phases against one ``seqlab serve`` (with its connection limits), pinned to CPU 0 with its
training worker; the load generator (``bench.load``) and a ``GET /health`` probe run on CPU 1:

1. **Soak**: a training job runs alone for ``--idle-seconds`` (its steps per second, idle), then
   ``--soak-connections`` connections (default 32) send a mix of inference requests for
   ``--soak-seconds`` (default 60) while it goes on: requests per second, p50 / p99 per route,
   errors (the goal is 0), and the job's steps per second against idle.
2. **Overload**: ``--overload-connections`` (default 256) for ``--overload-seconds`` (default
   20), with the job still running: per route the share answered 200 and 429, the p99 of the
   200s, and ``/health``'s p99 (goal: < 100 ms) — a container health check must not restart a
   service that is merely busy.

The mix, cycled by every connection: small requests answered on the event loop
(``/tokenize``, ``/embed``, ``/rnn/forward`` in the tensor form, ``/predict``) and large ones
that run in threads behind the admission queues (a bulk ``/tokenize`` of 8 × 2,000 characters,
``/score`` of 2 texts). The model is the job's own: a small LSTM trained first on the bundled
西游记 sample, so every route has something real to answer with.

Run from the repository root: ``python -m bench.overload``. Needs ``taskset`` (util-linux).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    REPOSITORY_ROOT,
    benchmark_parser,
    format_table,
    machine_description,
)
from bench.load import HealthProbe, LoadRequest, RouteResult, percentile, run_load
from bench.servers import HOST, SOFTWARE, Server, start_server, stop_server
from bench.servers import post as post_json

SERVER_CPU = "0"
CLIENT_CPU = 1
SAMPLE = REPOSITORY_ROOT / "app" / "samples" / "xiyouji.txt"
MODEL = "overload"


def _post(server: Server, path: str, body: dict) -> dict:
    status, _, answer = post_json(f"{server.url}{path}", json.dumps(body).encode(), timeout=600)
    if status >= 300:
        sys.exit(f"error: {path} answered {status}: {answer[:500]!r}")
    return json.loads(answer)


def _get(server: Server, path: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}{path}", timeout=60) as answer:
        return json.loads(answer.read())


def _lines() -> list[str]:
    return [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


def _mix(lines: list[str]) -> list[LoadRequest]:
    text = lines[10][:40]
    bulk = [line[:2000].ljust(2000, "。") for line in lines[20:28]]
    tensor = {
        "input": [[[0.1 * (i + j + k) for k in range(4)] for j in range(2)] for i in range(3)],
        "rnn": {"input_size": 4, "hidden_size": 5, "num_layers": 2, "seed": 0},
    }

    def request(route: str, path: str, body: dict) -> LoadRequest:
        return LoadRequest(route, path, json.dumps(body, ensure_ascii=False).encode())

    return [
        request("tokenize", "/tokenize", {"text": text}),
        request("embed", "/embed", {"model": MODEL, "text": text}),
        request("rnn/forward", "/rnn/forward", tensor),
        request("predict", "/predict", {"model": MODEL, "text": text, "k": 5}),
        request("tokenize bulk", "/tokenize", {"texts": bulk}),
        request("score", "/score", {"model": MODEL, "texts": [line[:100] for line in lines[:2]]}),
    ]


def _train_model(server: Server, lines: list[str]) -> None:
    _post(
        server,
        "/train",
        {
            "model": MODEL,
            "texts": lines[:300],
            "create": {"embedding_dim": 64, "hidden_size": 128, "cell": "lstm", "seed": 0},
            "epochs": 1,
            "max_seconds": 20,
            "wait": True,
        },
    )


def _start_job(server: Server, lines: list[str], seconds: float) -> str:
    answer = _post(
        server,
        "/train",
        {"model": MODEL, "texts": lines[:600], "epochs": 1000, "max_seconds": seconds},
    )
    return answer["job_id"]


def _job_step(server: Server, job_id: str | None) -> tuple[int, float]:
    if job_id is None:
        return 0, time.monotonic()
    job = _get(server, f"/train/{job_id}")
    return job["progress"]["step"], time.monotonic()


def _steps_per_second(start: tuple[int, float], end: tuple[int, float]) -> float:
    return (end[0] - start[0]) / (end[1] - start[1])


def _milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _route_rows(results: dict[str, RouteResult], seconds: float) -> list[list[str]]:
    rows = []
    for route, result in results.items():
        answered = result.answered
        rows.append(
            [
                route,
                f"{answered / seconds:.0f}",
                f"{result.count(200, 299) / max(1, answered):.0%}",
                f"{result.count(429, 429) / max(1, answered):.0%}",
                str(result.count(500, 599) + result.errors),
                _milliseconds(percentile(result.ok_latencies, 0.5)),
                _milliseconds(percentile(result.ok_latencies, 0.99)),
            ]
        )
    return rows


def _shed_counts(server: Server) -> dict[str, float]:
    """``seqlab_requests_shed_total`` by class of work and reason, from /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/metrics", timeout=60) as answer:
        text = answer.read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("seqlab_requests_shed_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels[len("seqlab_requests_shed_total") :]] = float(value)
    return counts


def _phase(
    server: Server, requests: list[LoadRequest], connections: int, seconds: float
) -> tuple[dict[str, RouteResult], HealthProbe]:
    before = _shed_counts(server)
    with HealthProbe(HOST, server.port) as probe:
        results = run_load(HOST, server.port, requests, connections, seconds)
    after = _shed_counts(server)
    shed = {key: int(after[key] - before.get(key, 0)) for key in after}
    print(f"429s by class and reason: {shed}")
    return results, probe


def _report(
    title: str, results: dict[str, RouteResult], probe: HealthProbe, seconds: float
) -> None:
    print(f"\n{title}")
    headers = ["route", "answers/s", "200", "429", "5xx+errors", "p50 200 ms", "p99 200 ms"]
    print(format_table(headers, _route_rows(results, seconds)))
    total = sum(result.answered for result in results.values())
    print(
        f"all routes: {total / seconds:.0f} answers/s; /health: {len(probe.latencies)} probes, "
        f"p50 {_milliseconds(percentile(probe.latencies, 0.5))} ms, "
        f"p99 {_milliseconds(percentile(probe.latencies, 0.99))} ms, "
        f"max {_milliseconds(max(probe.latencies, default=None))} ms, "
        f"failures {probe.failures}"
    )


def main() -> None:
    parser = benchmark_parser(__name__, __doc__)
    parser.add_argument("--idle-seconds", type=float, default=15)
    parser.add_argument("--soak-seconds", type=float, default=60)
    parser.add_argument("--soak-connections", type=int, default=32)
    parser.add_argument("--overload-seconds", type=float, default=20)
    parser.add_argument("--overload-connections", type=int, default=256)
    parser.add_argument(
        "--routes", help="comma-separated routes of the mix to keep (default: all)", default=""
    )
    parser.add_argument("--no-job", action="store_true", help="no training job beside the load")
    arguments = parser.parse_args()
    os.sched_setaffinity(0, {CLIENT_CPU})
    print(machine_description(SOFTWARE))
    lines = _lines()
    requests = _mix(lines)
    if arguments.routes:
        kept = set(arguments.routes.split(","))
        requests = [request for request in requests if request.route in kept]
    with tempfile.TemporaryDirectory(prefix="seqlab-overload-") as scratch:
        environment = {
            "SEQLAB_DATA_DIR": str(Path(scratch) / "data"),
            "SEQLAB_DEVICE": "cpu",
            "SEQLAB_TRAIN_DEMO_MODEL": "false",
            "SEQLAB_LOG_LEVEL": "warning",
        }
        server = start_server(
            "seqlab", "", environment, Path(scratch), cpus=SERVER_CPU, seqlab_serve=True
        )
        try:
            _train_model(server, lines)
            job_id, idle_rate = None, None
            if not arguments.no_job:
                job_id, idle_rate = _start_job_and_measure(server, lines, arguments)
            soak_start = _job_step(server, job_id)
            soak, soak_probe = _phase(
                server, requests, arguments.soak_connections, arguments.soak_seconds
            )
            soak_end = _job_step(server, job_id)
            overload, overload_probe = _phase(
                server, requests, arguments.overload_connections, arguments.overload_seconds
            )
        finally:
            stop_server(server)
    beside = "a training job running" if job_id else "no training job"
    _report(
        f"soak: {arguments.soak_connections} connections, {arguments.soak_seconds:g} s, {beside}",
        soak,
        soak_probe,
        arguments.soak_seconds,
    )
    if idle_rate is not None:
        soak_rate = _steps_per_second(soak_start, soak_end)
        print(
            f"training job: {idle_rate:.1f} steps/s idle, {soak_rate:.1f} steps/s during the "
            f"soak ({soak_rate / idle_rate:.2f}x)"
        )
    _report(
        f"overload: {arguments.overload_connections} connections, "
        f"{arguments.overload_seconds:g} s, {beside}",
        overload,
        overload_probe,
        arguments.overload_seconds,
    )


def _start_job_and_measure(
    server: Server, lines: list[str], arguments: argparse.Namespace
) -> tuple[str, float]:
    """A training job for the whole run, and its steps per second with no load beside it."""
    total_seconds = (
        arguments.idle_seconds + arguments.soak_seconds + arguments.overload_seconds + 60
    )
    job_id = _start_job(server, lines, total_seconds)
    while _get(server, f"/train/{job_id}")["status"] != "running":
        time.sleep(0.2)
    time.sleep(2)  # past its first steps
    idle_start = _job_step(server, job_id)
    time.sleep(arguments.idle_seconds)
    return job_id, _steps_per_second(idle_start, _job_step(server, job_id))


if __name__ == "__main__":
    main()
