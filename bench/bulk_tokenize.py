"""Bulk ``/tokenize`` on every core: segmentation worker processes against threads.

One request is 32 texts of 8,000 characters of 红楼梦 (256,000 characters, ~770 KB of JSON),
the issue's bulk request. Two ``seqlab serve`` run side by side, not pinned, each over a fresh
data dir, at their defaults but for ``SEQLAB_SEGMENTATION_PROCESSES``: **pool** (``0``: one
worker process per core; two requests admitted at once, the next one's chunks queued for the
workers) and **threads** (``1``: segmentation in the request's thread, one request at a time,
as before the pool). For each number of ``--connections`` (default 1 and 4) and each of
``--rounds`` rounds, each service gets ``--seconds`` of closed-loop load (``bench.load``),
interleaved: pool then threads, then threads then pool, and so on. Reported per service and
connections: requests and characters per second (the best round; the spread of the rounds),
p50 latency, and the CPU cores the service used (its process and its worker processes, from
``/proc``); then each against one connection of threads, the RSS of each worker process and of
each service. A connection sends its next request as soon as it has an answer, so the rate is
200s per second of the connections' busy time (the sum of their latencies, 429s included):
at ~1 request a second, counting the answers of a few seconds would be off by a whole request.

Both answers are checked equal (tokens and offsets) before any timing.

    python -m bench.bulk_tokenize [--connections 1 4] [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from bench.common import (
    add_data_dir_argument,
    benchmark_parser,
    format_table,
    machine_busy_seconds,
    machine_description,
    process_stat_fields,
    require_at_least_one,
    require_corpus,
    round_order,
    spread,
)
from bench.load import LoadRequest, percentile, run_load
from bench.servers import HOST, SOFTWARE, Server, start_server, stop_server
from bench.servers import post as post_json

TEXTS = 32
CHARACTERS = 8_000
CONTENDERS = {
    "pool": {"SEQLAB_SEGMENTATION_PROCESSES": "0"},
    "threads": {"SEQLAB_SEGMENTATION_PROCESSES": "1"},
}
POOLED = ("pool",)
WORKERS_TIMEOUT_SECONDS = 60


def bulk_texts(corpus: Path) -> list[str]:
    """32 texts of 8,000 characters: consecutive lines of the novel, joined with newlines."""
    text = corpus.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    texts: list[str] = []
    current = ""
    for line in lines:
        current = f"{current}\n{line}" if current else line
        if len(current) >= CHARACTERS:
            texts.append(current[:CHARACTERS])
            current = ""
            if len(texts) == TEXTS:
                return texts
    raise SystemExit(f"error: {corpus} has fewer than {TEXTS * CHARACTERS:,} characters")


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, their children, …), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = process_stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def workers_of(server: Server) -> list[int]:
    """The segmentation worker processes of a service (``multiprocessing`` spawned them)."""
    workers = []
    for pid in descendants(server.process.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            workers.append(pid)
    return workers


def tree_cpu_seconds(server: Server) -> float:
    """CPU seconds of the service's process and of every process below it, so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in [server.process.pid, *descendants(server.process.pid)]:
        fields = process_stat_fields(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def rss_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for_workers(server: Server, count: int, body: bytes) -> None:
    """Until ``count`` workers exist and the pool answers (a few bulk requests)."""
    deadline = time.monotonic() + WORKERS_TIMEOUT_SECONDS
    while len(workers_of(server)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"error: {server.name} started no segmentation workers")
        time.sleep(0.2)
    time.sleep(3)  # each loads jieba's dictionary (~1 s)
    for _ in range(2):
        post_json(f"{server.url}/tokenize", body, timeout=120)


def main() -> None:
    parser = benchmark_parser("bench.bulk_tokenize", __doc__)
    add_data_dir_argument(parser, "zh-classics/hongloumeng.txt")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    arguments = parser.parse_args()
    require_at_least_one(parser, arguments, ["rounds"])
    texts = bulk_texts(require_corpus(arguments.data_dir / "zh-classics" / "hongloumeng.txt"))
    body = json.dumps({"texts": texts, "offsets": True}, ensure_ascii=False).encode()
    request = LoadRequest("tokenize bulk", "/tokenize", body)
    characters = TEXTS * CHARACTERS
    cores = os.cpu_count() or 1
    print(machine_description(SOFTWARE))
    print(f"body: {TEXTS} texts x {CHARACTERS:,} characters, offsets, {len(body):,} bytes")

    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as scratch:
        root = Path(scratch)
        servers: dict[str, Server] = {}
        try:
            for index, (name, settings) in enumerate(CONTENDERS.items()):
                folder = root / f"service-{index}"
                folder.mkdir()
                servers[name] = start_server(
                    f"service-{index}",
                    "",
                    {
                        "SEQLAB_DATA_DIR": str(folder / "data"),
                        "SEQLAB_DEVICE": "cpu",
                        "SEQLAB_TRAIN_DEMO_MODEL": "false",
                        "SEQLAB_LOG_LEVEL": "warning",
                        **settings,
                    },
                    folder,
                    seqlab_serve=True,
                )
            for name in POOLED:
                wait_for_workers(servers[name], cores, body)
            post_json(f"{servers['threads'].url}/tokenize", body, timeout=120)
            answers = {
                name: post_json(f"{server.url}/tokenize", body, timeout=120)
                for name, server in servers.items()
            }
            if any(status != 200 for status, _, _ in answers.values()):
                raise SystemExit(f"error: {[a[2][:300] for a in answers.values()]}")
            expected = json.loads(answers["threads"][2])
            if any(json.loads(answer[2]) != expected for answer in answers.values()):
                raise SystemExit("error: a pool's answer differs from the threads' answer")
            print("answers equal (tokens and offsets)")

            rates: dict[tuple[str, int], list[float]] = {}
            latencies: dict[tuple[str, int], list[float]] = {}
            used_cores: dict[tuple[str, int], list[float]] = {}
            shed: dict[tuple[str, int], int] = {}
            others: list[float] = []
            for connections in arguments.connections:
                for round_number in range(1, arguments.rounds + 1):
                    for name in round_order(list(CONTENDERS), round_number):
                        server = servers[name]
                        cpu_before, busy_before = tree_cpu_seconds(server), machine_busy_seconds()
                        client_before = time.process_time()
                        began = time.perf_counter()
                        result = run_load(
                            HOST, server.port, [request], connections, arguments.seconds
                        )["tokenize bulk"]
                        wall = time.perf_counter() - began
                        service_cpu = tree_cpu_seconds(server) - cpu_before
                        client_cpu = time.process_time() - client_before
                        busy = machine_busy_seconds()
                        if busy is not None and busy_before is not None:
                            other_cpu = busy - busy_before - service_cpu - client_cpu
                            others.append(max(0.0, other_cpu / wall))
                        key = (name, connections)
                        if result.count(200, 299) != result.answered or result.errors:
                            print(f"note: {name} x{connections}: {dict(result.statuses)}")
                        # Closed loop: each connection always has a request in flight, so its
                        # busy time is the sum of its latencies (429s included); 200s over that
                        # (no request cut off at the end).
                        connected = sum(result.all_latencies) / connections
                        rate = len(result.ok_latencies) / connected if connected else 0.0
                        rates.setdefault(key, []).append(rate)
                        shed[key] = shed.get(key, 0) + result.count(429, 429)
                        latencies.setdefault(key, []).extend(result.ok_latencies)
                        used_cores.setdefault(key, []).append(service_cpu / wall)
                        print(
                            f"round {round_number}, {connections} connection(s), {name}: "
                            f"{rates[key][-1]:.2f} req/s, {used_cores[key][-1]:.2f} cores"
                        )

            base = max(rates[("threads", min(arguments.connections))])
            rows = []
            for connections in arguments.connections:
                for name in CONTENDERS:
                    key = (name, connections)
                    best = max(rates[key])
                    p50 = percentile(latencies[key], 0.5)
                    rows.append(
                        [
                            name,
                            str(connections),
                            f"{best:.2f}",
                            f"{best * characters / 1000:,.0f}",
                            f"{spread(rates[key], 'largest'):.0%}",
                            "-" if p50 is None else f"{p50 * 1000:,.0f}",
                            f"{max(used_cores[key]):.2f}",
                            str(shed[key]),
                            f"{best / base:.2f}×",
                        ]
                    )
            headers = [
                "service",
                "connections",
                "req/s",
                "k chars/s",
                "spread",
                "p50 ms",
                "cores used",
                "429s",
                f"vs threads at {min(arguments.connections)}",
            ]
            print()
            print(format_table(headers, rows))
            print()
            print(
                "other processes: up to "
                f"{max(others, default=0.0):.2f} cores of {cores} during the timed runs"
            )
            workers = workers_of(servers["pool"])
            print(
                "RSS: "
                + ", ".join(f"worker {rss_megabytes(pid):.0f} MB" for pid in workers)
                + "; "
                + ", ".join(
                    f"{name} service {rss_megabytes(server.process.pid):.0f} MB"
                    for name, server in servers.items()
                )
            )
        finally:
            for server in servers.values():
                stop_server(server)


if __name__ == "__main__":
    main()
