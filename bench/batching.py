"""Dynamic batching (app.batching): throughput and p99 with batching on and off.

Measured: requests per second and p50 / p99 latency of ``/predict`` and ``/score`` with
``wrk`` holding 1, 8, 32 and 128 keep-alive connections, every request carrying the next of 32
distinct texts (lines of the bundled 西游记 sample, ≤ 24 characters), against one model: an
LSTM language model (embedding 256, 2 × 512, the sample's vocabulary), created with fixed
seeded weights (the arithmetic of a trained one). Two servers run at once over one data dir,
each ``seqlab serve`` pinned to CPU 0: ``batched`` (the defaults: ``SEQLAB_BATCH_MAX_TOKENS``
4096, ``SEQLAB_BATCH_WAIT_MS`` as given) and ``alone`` (``SEQLAB_BATCH_MAX_TOKENS=0``); both
allow 512 small requests in flight, so 128 connections are measured rather than shed. The
contenders alternate in each round (A B, then B A); the best round of each is kept. For the
batched server, the mean batch size formed in each run is read from ``seqlab_batch_size`` in
``/metrics``.

Run from the repository root:
``python -m bench.batching [--duration 5] [--rounds 2] [--wait-ms 0] [--device cuda]``.
Needs ``wrk`` and ``taskset``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    benchmark_parser,
    format_share,
    format_table,
    machine_description,
    require_at_least_one,
    round_order,
    warn_if_contended,
)
from bench.http import SERVER_CPU, WARMUP_SECONDS, Endpoint, Result, run_wrk
from bench.servers import SOFTWARE, Server, post, start_server, stop_server

SAMPLE = Path(__file__).resolve().parent.parent / "app" / "samples" / "xiyouji.txt"
CONNECTIONS = (1, 8, 32, 128)
BATCHED, ALONE = "batched", "alone"
MODEL = "bench-lstm"
TEXTS = 32


def sample_texts() -> list[str]:
    lines = [line.strip() for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    chosen = [line[:24] for line in lines if len(line) >= 12][10 : 10 + TEXTS]
    assert len(set(chosen)) == TEXTS
    return chosen


def create_model(server: Server) -> None:
    body = {
        "name": MODEL,
        "texts": SAMPLE.read_text(encoding="utf-8").splitlines(),
        "embedding_dim": 256,
        "hidden_size": 512,
        "num_layers": 2,
        "cell": "lstm",
        "seed": 0,
    }
    status, _, answer = post(f"{server.url}/models", json.dumps(body).encode(), timeout=300)
    if status != 201:
        sys.exit(f"error: creating the model answered {status}: {answer[:500]!r}")


def batch_sizes(server: Server) -> tuple[float, float]:
    """(batches, requests) so far over every operation, from seqlab_batch_size."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    batches = sum(float(v) for v in re.findall(r"seqlab_batch_size_count\{[^}]*\} (\S+)", text))
    requests = sum(float(v) for v in re.findall(r"seqlab_batch_size_sum\{[^}]*\} (\S+)", text))
    return batches, requests


def best(
    results: list[tuple[Result, float | None]], name: str, path: str, connections: int
) -> tuple[Result, float | None]:
    """The run with the most requests per second of one server at one point."""
    runs = [
        (result, mean)
        for result, mean in results
        if result.server == name and result.path == path and result.round_number == connections
    ]
    return max(runs, key=lambda run: run[0].requests_per_second)


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser("bench.batching", __doc__)
    parser.add_argument("--duration", type=float, default=5, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per point")
    parser.add_argument("--wait-ms", type=float, default=0.0, help="SEQLAB_BATCH_WAIT_MS")
    parser.add_argument("--device", default=None, help="SEQLAB_DEVICE (default: auto)")
    parser.add_argument(
        "--connections", type=int, nargs="+", default=list(CONNECTIONS), help="wrk connections"
    )
    arguments = parser.parse_args(argv)
    require_at_least_one(parser, arguments, ["duration", "rounds"])
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} is not installed (apt-get install -y wrk util-linux)")
    print(machine_description(SOFTWARE))
    texts = sample_texts()
    started = time.perf_counter()
    servers: dict[str, Server] = {}
    results: list[tuple[Result, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as temporary:
        directory = Path(temporary)
        common = {
            "SEQLAB_DATA_DIR": str(directory / "data"),
            "SEQLAB_LOG_LEVEL": "warning",
            "SEQLAB_TRAIN_DEMO_MODEL": "false",
            "SEQLAB_MAX_SMALL_REQUESTS": "512",
            "SEQLAB_MAX_QUEUED_INFERENCE": "512",
        } | ({"SEQLAB_DEVICE": arguments.device} if arguments.device else {})
        try:
            batched = {"SEQLAB_BATCH_WAIT_MS": str(arguments.wait_ms)}
            servers[BATCHED] = start_server(
                BATCHED, "", common | batched, directory, cpus=SERVER_CPU, seqlab_serve=True
            )
            create_model(servers[BATCHED])
            servers[ALONE] = start_server(
                ALONE,
                "",
                common | {"SEQLAB_BATCH_MAX_TOKENS": "0"},
                directory,
                cpus=SERVER_CPU,
                seqlab_serve=True,
            )
            with urllib.request.urlopen(f"{servers[BATCHED].url}/info", timeout=10) as answer:
                info = json.load(answer)
            print(f"device {info['device']}; batching {info['batching']}")
            for path in ("/predict", "/score"):
                bodies = directory / f"{path.strip('/')}.jsonl"
                bodies.write_text(
                    "\n".join(
                        json.dumps({"model": MODEL, "text": text}, ensure_ascii=False)
                        for text in texts
                    )
                    + "\n",
                    encoding="utf-8",
                )
                os.environ["WRK_BODIES_FILE"] = str(bodies)  # read by bench/wrk_post.lua
                endpoint = Endpoint(path, {"model": MODEL, "text": texts[0]})
                for name in (BATCHED, ALONE):
                    run_wrk(servers[name], endpoint, WARMUP_SECONDS, 8, 0)
                for connections in arguments.connections:
                    for round_number in range(1, arguments.rounds + 1):
                        for name in round_order((BATCHED, ALONE), round_number):
                            before = batch_sizes(servers[BATCHED])
                            result = run_wrk(
                                servers[name], endpoint, arguments.duration, connections, 0
                            )
                            after = batch_sizes(servers[BATCHED])
                            mean = None
                            if name == BATCHED and after[0] > before[0]:
                                mean = (after[1] - before[1]) / (after[0] - before[0])
                            result = Result(**{**result.__dict__, "round_number": connections})
                            results.append((result, mean))
                            print(
                                f"  {path:<9} c={connections:<4} {name:<8} "
                                f"{result.requests_per_second:8,.0f} req/s  "
                                f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                                f"errors {result.errors}  mean batch "
                                f"{'-' if mean is None else f'{mean:.1f}'}  server CPU "
                                f"{format_share(result.server_cpu_share)}",
                                flush=True,
                            )
        finally:
            os.environ.pop("WRK_BODIES_FILE", None)
            for server in servers.values():
                stop_server(server)

    rows = []
    for path in ("/predict", "/score"):
        for connections in arguments.connections:
            (ours, mean), (alone, _) = (
                best(results, name, path, connections) for name in (BATCHED, ALONE)
            )
            rows.append(
                [
                    path,
                    str(connections),
                    f"{ours.requests_per_second:,.0f}",
                    f"{ours.p99_ms:.1f}",
                    "-" if mean is None else f"{mean:.1f}",
                    f"{alone.requests_per_second:,.0f}",
                    f"{alone.p99_ms:.1f}",
                    f"{ours.requests_per_second / alone.requests_per_second:.2f}x",
                    str(ours.errors + alone.errors),
                ]
            )
    print(f"\nbest of {arguments.rounds} round(s) per point:")
    headers = [
        "route",
        "conns",
        "batched req/s",
        "p99 ms",
        "mean batch",
        "alone req/s",
        "p99 ms",
        "ratio",
        "errors",
    ]
    print(format_table(headers, rows))
    print(f"total time {time.perf_counter() - started:.0f} s")
    warn_if_contended(max((r.others_cpu_share or 0.0) for r, _ in results))


if __name__ == "__main__":
    main()
