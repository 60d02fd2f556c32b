"""seqlab's ``/rnn/forward`` against LitServe 0.2.19 serving the same layer.

Both serve the lesson's layer, ``torch.manual_seed(0); nn.RNN(4, 5, num_layers=2)``, over the
README's 3 × 2 × 4 input: seqlab's tensor form (``{"rnn": {..., "seed": 0}, "input": ...}``,
answering output, hn, their shapes and the seed) and LitServe's ``/predict``
(``bench/peer_litserve_app.py``: ``{"input": ...}`` → output, hn and the shape; one API
server, one inference worker). Both answers are checked to hold the same ``output`` first.
Each server, with
every process it starts, is pinned to CPU 0 (``taskset``), wrk (one thread) to CPU 1; the
contenders alternate A B / B A for ``--rounds`` rounds after a warm-up and the best round of
each is kept; ``--connections`` (default 16) keep-alive connections.

LitServe is not a dependency of seqlab: give an interpreter that has it (``--litserve-python``,
default ``/tmp/litserve-venv/bin/python``; make one with ``python -m venv /tmp/litserve-venv &&
/tmp/litserve-venv/bin/pip install torch==2.13.0 litserve==0.2.19``).

Run from the repository root: ``python -m bench.peer_litserve [--duration 10] [--rounds 3]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    REPOSITORY_ROOT,
    benchmark_parser,
    format_share,
    format_table,
    machine_description,
    round_order,
    warn_if_contended,
)
from bench.http import RNN_INPUT, SERVER_CPU, WARMUP_SECONDS, Endpoint, Result, run_wrk
from bench.servers import SOFTWARE, Server, free_port, post, start_server, stop_server

SEQLAB, LITSERVE = "seqlab", "litserve"
SEQLAB_ENDPOINT = Endpoint(
    "/rnn/forward",
    {"rnn": {"input_size": 4, "hidden_size": 5, "num_layers": 2, "seed": 0}, "input": RNN_INPUT},
)
LITSERVE_ENDPOINT = Endpoint("/predict", {"input": RNN_INPUT})
GOAL = 4.0


def start_litserve(python: str, log_dir: Path) -> Server:
    port = free_port()
    log_path = log_dir / "litserve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            # As a module from the repository root: LitServe's workers import it by that name,
            # and bench/ itself must not be on sys.path (bench/http.py would shadow http).
            ["taskset", "-c", SERVER_CPU, python, "-m", "bench.peer_litserve_app", str(port)],
            cwd=REPOSITORY_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(LITSERVE, process, port, log_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"error: litserve exited:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    stop_server(server)
    sys.exit("error: litserve was not ready within 120 s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser("bench.peer_litserve", __doc__)
    parser.add_argument("--duration", type=float, default=10, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--litserve-python", default="/tmp/litserve-venv/bin/python")
    arguments = parser.parse_args(argv)
    if not Path(arguments.litserve_python).exists():
        sys.exit(f"error: no {arguments.litserve_python}: see this script's docstring")
    print(machine_description(SOFTWARE))
    version = subprocess.run(
        [arguments.litserve_python, "-c", "import litserve; print(litserve.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"litserve {version}; wrk 1 thread x {arguments.connections} connections")
    started = time.perf_counter()
    servers: dict[str, Server] = {}
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-litserve-") as temporary:
        directory = Path(temporary)
        try:
            servers[SEQLAB] = start_server(
                SEQLAB,
                "",
                {
                    "SEQLAB_DATA_DIR": str(directory / "data"),
                    "SEQLAB_LOG_LEVEL": "warning",
                    "SEQLAB_TRAIN_DEMO_MODEL": "false",
                    "SEQLAB_DEVICE": "cpu",
                },
                directory,
                cpus=SERVER_CPU,
                seqlab_serve=True,
            )
            servers[LITSERVE] = start_litserve(arguments.litserve_python, directory)
            endpoints = {SEQLAB: SEQLAB_ENDPOINT, LITSERVE: LITSERVE_ENDPOINT}
            outputs = {}
            for name, endpoint in endpoints.items():
                status, _, body = post(servers[name].url + endpoint.path, endpoint.body_bytes)
                if status != 200:
                    sys.exit(f"error: {name} answered {status}: {body[:300]!r}")
                output = json.loads(body)["output"]
                # seqlab: {"shape", "values"}; LitServe (our encode_response): the nested lists.
                outputs[name] = output["values"] if name == SEQLAB else output
            if outputs[SEQLAB] != outputs[LITSERVE]:
                sys.exit("error: the two servers' outputs differ")
            for name in (SEQLAB, LITSERVE):
                run_wrk(servers[name], endpoints[name], WARMUP_SECONDS, arguments.connections, 0)
            for round_number in range(1, arguments.rounds + 1):
                for name in round_order((SEQLAB, LITSERVE), round_number):
                    result = run_wrk(
                        servers[name],
                        endpoints[name],
                        arguments.duration,
                        arguments.connections,
                        round_number,
                    )
                    results.append(result)
                    print(
                        f"  round {round_number}  {name:<8} "
                        f"{result.requests_per_second:8,.0f} req/s  p50 {result.p50_ms:6.2f} ms"
                        f"  p99 {result.p99_ms:6.2f} ms  errors {result.errors}  server CPU "
                        f"{format_share(result.server_cpu_share)}",
                        flush=True,
                    )
        finally:
            for server in servers.values():
                stop_server(server)
    best = {
        name: max((r for r in results if r.server == name), key=lambda r: r.requests_per_second)
        for name in (SEQLAB, LITSERVE)
    }
    rows = [
        [
            name,
            f"{best[name].requests_per_second:,.0f}",
            f"{best[name].p50_ms:.2f}",
            f"{best[name].p99_ms:.2f}",
            str(sum(r.errors for r in results if r.server == name)),
        ]
        for name in (SEQLAB, LITSERVE)
    ]
    print(f"\nbest of {arguments.rounds} round(s):")
    print(format_table(["server", "req/s", "p50 ms", "p99 ms", "errors"], rows))
    ratio = best[SEQLAB].requests_per_second / best[LITSERVE].requests_per_second
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"\nseqlab / litserve: {ratio:.2f}x (goal >= {GOAL:g}x: {verdict})")
    print(f"total time {time.perf_counter() - started:.0f} s")
    warn_if_contended(max((r.others_cpu_share or 0.0) for r in results))


if __name__ == "__main__":
    main()
