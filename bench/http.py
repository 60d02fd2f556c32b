"""HTTP throughput and latency of seqlab's small requests against bare FastAPI endpoints.

Measured: requests per second and p50 / p99 latency, with ``wrk`` holding ``--connections``
(default 16) keep-alive connections open for ``--duration`` seconds, for one small JSON POST to
each of three routes:

* ``/tokenize``: ``{"text": "我爱学习自然语言处理"}`` (jieba, on the event loop);
* ``/embed``: ``{"model": "lesson-rnn", "text": "我爱学习自然语言处理"}`` (its rows);
* ``/rnn/forward``: the tensor form, ``nn.RNN(4, 5, num_layers=2)`` seeded with 0 over a
  3×2×4 input (the README's example without the weights).

Baseline: ``bench.bare_app``, a FastAPI app whose ``async def`` handler for the same path
parses the same JSON body and answers with the very bytes (status, content type, body,
``Seqlab-Model`` header) that seqlab gave to that request, recorded at the start of the run.
The ratio seqlab / bare says what seqlab's validation, dependencies, middleware and
computation cost on top of the floor of any FastAPI endpoint; the goal is ≥ 0.7×.

Both servers run at once, each under ``uvicorn`` (1 worker, ``--no-access-log``, loopback, a
free port; uvloop and httptools, uvicorn's defaults when installed) in its own process group,
pinned with ``taskset`` to CPU 0; seqlab gets a fresh ``SEQLAB_DATA_DIR`` (so only the
``demo`` model) and both must answer ``GET /ready`` with 200 before anything is measured.
``--device`` sets seqlab's ``SEQLAB_DEVICE`` (default: unset, so ``auto``: CUDA where there is
one); the device seqlab reports in ``GET /info`` is printed.
``wrk`` (one thread) is pinned to CPU 1, so client and server never share a core; the
server's own CPU use during each run is printed (100 % = the one core it has). Each
(endpoint, server) pair first gets an untimed 2-second warm-up; then ``--rounds`` rounds run,
alternating seqlab / bare and bare / seqlab, and the round with the most requests per second
is kept for each. Every answer must be 2xx (wrk's status error count must be 0). The share
of the CPUs that *other* processes used during each run is printed, with a warning above 10 %.

Run from the repository root:
``python -m bench.http [--duration 10] [--connections 16] [--device cuda]``.
Needs ``wrk`` (``apt-get install wrk``) and ``taskset`` (util-linux).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    benchmark_parser,
    format_share,
    format_table,
    machine_description,
    others_cpu_share,
    process_usage,
    require_at_least_one,
    round_order,
    sample_cpu,
    spread,
    usage_between,
    warn_if_contended,
)
from bench.servers import SOFTWARE, Server, post, start_server, stop_server

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"
SERVER_CPU = "0"
CLIENT_CPU = "1"
WARMUP_SECONDS = 2
GOAL_RATIO = 0.7
SEQLAB = "seqlab"
BARE = "bare"
SERVERS = (SEQLAB, BARE)
TEXT = "我爱学习自然语言处理"
RNN_INPUT = [
    [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]],
    [[0.9, 1.0, 1.1, 1.2], [1.3, 1.4, 1.5, 1.6]],
    [[1.7, 1.8, 1.9, 2.0], [2.1, 2.2, 2.3, 2.4]],
]
# Headers of seqlab's answer that the bare app sends back too (uvicorn adds date and server,
# Starlette content-length, for both alike).
COPIED_HEADERS = ("content-type", "seqlab-model")


@dataclass(frozen=True)
class Endpoint:
    path: str
    body: dict

    @property
    def body_bytes(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


ENDPOINTS = [
    Endpoint("/tokenize", {"text": TEXT}),
    Endpoint("/embed", {"model": "lesson-rnn", "text": TEXT}),
    Endpoint(
        "/rnn/forward",
        {
            "rnn": {"input_size": 4, "hidden_size": 5, "num_layers": 2, "seed": 0},
            "input": RNN_INPUT,
        },
    ),
]


@dataclass(frozen=True)
class Result:
    """One timed wrk run against one server and endpoint."""

    server: str
    path: str
    round_number: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_share: float | None
    others_cpu_share: float | None

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds


# --- the canned answers --------------------------------------------------------------------


def record_answers(seqlab: Server) -> dict[str, dict]:
    """seqlab's answer to each request: what the bare app will send back."""
    canned = {}
    for endpoint in ENDPOINTS:
        status, headers, body = post(seqlab.url + endpoint.path, endpoint.body_bytes)
        if status != 200:
            sys.exit(f"error: seqlab answered {status} to {endpoint.path}: {body[:500]!r}")
        canned[endpoint.path] = {
            "status": status,
            "headers": {name: headers[name] for name in COPIED_HEADERS if name in headers},
            "body": body.decode("utf-8"),
        }
    return canned


def reported_device(seqlab: Server) -> str:
    """The device seqlab computes on, as its ``GET /info`` says."""
    with urllib.request.urlopen(seqlab.url + "/info", timeout=10) as answer:
        return str(json.load(answer).get("device", "unknown"))


def check_bare_answers(bare: Server, canned: dict[str, dict]) -> None:
    for endpoint in ENDPOINTS:
        status, _, body = post(bare.url + endpoint.path, endpoint.body_bytes)
        expected = canned[endpoint.path]["body"].encode("utf-8")
        if status != 200 or body != expected:
            sys.exit(f"error: the bare app's answer to {endpoint.path} differs from seqlab's")


# --- wrk -----------------------------------------------------------------------------------


def run_wrk(
    server: Server, endpoint: Endpoint, duration: float, connections: int, round_number: int
) -> Result:
    command = [
        "taskset",
        "-c",
        CLIENT_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        server.url + endpoint.path,
    ]
    environment = os.environ | {"WRK_BODY": endpoint.body_bytes.decode("utf-8")}
    before = sample_cpu(include_children=True)  # wrk: a child, waited for by subprocess.run
    server_before = process_usage(server.process.pid)
    finished = subprocess.run(command, env=environment, capture_output=True, text=True)
    after = sample_cpu(include_children=True)
    server_used = usage_between(server_before, process_usage(server.process.pid))
    match = re.search(r"^WRK_JSON (\{.*\})$", finished.stdout, re.MULTILINE)
    if finished.returncode != 0 or match is None:
        sys.exit(
            f"error: wrk failed ({finished.returncode}):\n{finished.stdout}\n{finished.stderr}"
        )
    summary = json.loads(match.group(1))
    errors = sum(
        summary[key]
        for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    server_share = others_share = None
    if server_used is not None:
        server_share = server_used.cpu_seconds / (after.wall - before.wall)
        # Everything but the server, wrk (a waited-for child) and this process.
        others_share = others_cpu_share(before, after, server_used.cpu_seconds)
    return Result(
        server=server.name,
        path=endpoint.path,
        round_number=round_number,
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1e3,
        p99_ms=summary["p99_us"] / 1e3,
        errors=errors,
        server_cpu_share=server_share,
        others_cpu_share=others_share,
    )


# --- report --------------------------------------------------------------------------------


def rates(results: list[Result], server: str, path: str) -> list[float]:
    """Requests per second of each round of one server on one endpoint."""
    return [r.requests_per_second for r in results if r.server == server and r.path == path]


def best(results: list[Result], server: str, path: str) -> Result:
    candidates = [r for r in results if r.server == server and r.path == path]
    return max(candidates, key=lambda r: r.requests_per_second)


def results_table(results: list[Result], sizes: dict[str, int]) -> str:
    rows = []
    for endpoint in ENDPOINTS:
        ours = best(results, SEQLAB, endpoint.path)
        bare = best(results, BARE, endpoint.path)
        rows.append(
            [
                endpoint.path,
                str(sizes[endpoint.path]),
                f"{ours.requests_per_second:,.0f}",
                f"{ours.p50_ms:.2f}",
                f"{ours.p99_ms:.2f}",
                f"{bare.requests_per_second:,.0f}",
                f"{bare.p50_ms:.2f}",
                f"{bare.p99_ms:.2f}",
                f"{ours.requests_per_second / bare.requests_per_second:.2f}x",
            ]
        )
    headers = [
        "endpoint",
        "body B",
        "seqlab req/s",
        "p50 ms",
        "p99 ms",
        "bare req/s",
        "p50 ms",
        "p99 ms",
        "ratio",
    ]
    return format_table(headers, rows)


# --- main ----------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser("bench.http", __doc__)
    parser.add_argument("--duration", type=float, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per endpoint")
    parser.add_argument(
        "--device",
        default=None,
        help="seqlab's SEQLAB_DEVICE: auto | cpu | cuda | cuda:N (default: unset, i.e. auto)",
    )
    arguments = parser.parse_args(argv)
    require_at_least_one(parser, arguments, ["duration", "connections", "rounds"])
    return arguments


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} is not installed (apt-get install -y wrk util-linux)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("error: needs 2 CPUs (server on CPU 0, wrk on CPU 1)")
    print(machine_description(SOFTWARE))
    print(
        f"wrk 1 thread x {arguments.connections} connections on CPU {CLIENT_CPU}, "
        f"{arguments.duration:g} s per run, {arguments.rounds} alternating round(s) after a "
        f"{WARMUP_SECONDS} s warm-up; each server: uvicorn, 1 worker, CPU {SERVER_CPU}"
    )
    started = time.perf_counter()
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as temporary:
        directory = Path(temporary)
        try:
            seqlab = start_server(
                SEQLAB,
                "app.main:create_app",
                {
                    "SEQLAB_DATA_DIR": str(directory / "data"),
                    "SEQLAB_LOG_LEVEL": "warning",
                    # the demo LM would train beside the measured server
                    "SEQLAB_TRAIN_DEMO_MODEL": "false",
                }
                | ({"SEQLAB_DEVICE": arguments.device} if arguments.device else {}),
                directory,
                cpus=SERVER_CPU,
            )
            servers.append(seqlab)
            print(f"seqlab computes on {reported_device(seqlab)} (GET /info)")
            canned = record_answers(seqlab)
            canned_path = directory / "canned.json"
            canned_path.write_text(json.dumps(canned, ensure_ascii=False), encoding="utf-8")
            bare = start_server(
                BARE,
                "bench.bare_app:create_app",
                {"BENCH_BARE_RESPONSES": str(canned_path)},
                directory,
                cpus=SERVER_CPU,
            )
            servers.append(bare)
            check_bare_answers(bare, canned)
            sizes = {path: len(answer["body"].encode("utf-8")) for path, answer in canned.items()}
            print(
                "answer bodies (bytes, the same from both servers): "
                + ", ".join(f"{path} {size}" for path, size in sizes.items())
                + "\n"
            )
            by_name = {SEQLAB: seqlab, BARE: bare}
            results: list[Result] = []
            for endpoint in ENDPOINTS:
                for name in SERVERS:
                    run_wrk(by_name[name], endpoint, WARMUP_SECONDS, arguments.connections, 0)
                for round_number in range(1, arguments.rounds + 1):
                    for name in round_order(SERVERS, round_number):
                        result = run_wrk(
                            by_name[name],
                            endpoint,
                            arguments.duration,
                            arguments.connections,
                            round_number,
                        )
                        results.append(result)
                        print(
                            f"  round {round_number}  {endpoint.path:<13} {name:<6} "
                            f"{result.requests_per_second:8,.0f} req/s  "
                            f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                            f"errors {result.errors}  server CPU "
                            f"{format_share(result.server_cpu_share)}  others "
                            f"{format_share(result.others_cpu_share)} of CPUs",
                            flush=True,
                        )
                        if result.errors:
                            sys.exit(f"error: {result.errors} failed requests to {endpoint.path}")
        finally:
            for server in servers:
                stop_server(server)

    print(f"\nbest of {arguments.rounds} round(s) (most req/s) per server and endpoint:")
    print(results_table(results, sizes))
    verdicts = []
    for endpoint in ENDPOINTS:
        ratio = (
            best(results, SEQLAB, endpoint.path).requests_per_second
            / best(results, BARE, endpoint.path).requests_per_second
        )
        verdicts.append(f"{endpoint.path} {'met' if ratio >= GOAL_RATIO else 'NOT met'}")
    print(f"\ngoal: seqlab >= {GOAL_RATIO}x the bare endpoint — " + ", ".join(verdicts))
    if arguments.rounds > 1:
        noise = max(
            spread(rates(results, server, endpoint.path), relative_to="largest")
            for server in SERVERS
            for endpoint in ENDPOINTS
        )
        print(f"largest run-to-run spread of req/s over the rounds: {noise:.1%}")
    print(f"total time {time.perf_counter() - started:.0f} s")
    warn_if_contended(max((r.others_cpu_share or 0.0) for r in results))


if __name__ == "__main__":
    main()
