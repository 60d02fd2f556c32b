"""Replicas on one PostgreSQL: ``/predict`` through nginx to 1 and 2 replicas, and how soon a
model or version published on one replica is served by the other (NOTIFY against SQLite's poll).

Measured, in one run:

1. Throughput: requests per second and p50 / p99 latency of ``POST /predict`` with ``wrk``
   (``/usr/bin/wrk``, 1 thread, ``bench/wrk_post.lua``) holding ``--connections`` keep-alive
   connections (default 8, then 64) for ``--duration`` seconds, every request carrying the next
   of 32 distinct lines of the bundled 西游记 sample (as ``bench.batching``), against three
   targets: nginx in front of 1 replica, nginx in front of 2 replicas, and the first replica
   straight, without nginx (the reference row: what nginx's own hop costs). The model is
   ``bench.batching``'s LSTM LM (embedding 256, 2 × 512, the sample's vocabulary of ~15k
   tokens, seeded weights), created once through replica A and loaded by both from the shared
   data dir: ~14 ms of a core for one request alone and ~3 ms in batches of 30 (docs/
   benchmarks.md, section 13), so the replicas' cores are the bottleneck, not nginx (tens of µs
   a request). The replicas run with the service's defaults (dynamic batching on), so the
   batch a replica forms depends on the connections it holds (behind ``least_conn``, each of 2
   replicas holds about half of them, so forms smaller batches than 1 replica does): the mean
   batch over each run is read from ``seqlab_batch_size`` in ``/metrics`` and printed. The
   three targets alternate in each round (1, 2, direct, then direct, 2, 1) after a 2 s warm-up
   each; the round with the most requests per second is kept for each, and the ratio 2
   replicas / 1 replica (the goal: close to 2×) and nginx → 1 replica / direct are printed.

   Two ``seqlab serve`` replicas, A pinned to CPU 0 (``taskset -c 0``) and B to CPU 1, share one
   throwaway PostgreSQL (``SEQLAB_DATABASE_URL``; ``tests.postgres``'s cluster, started from
   ``/usr/lib/postgresql/*/bin``) and one data dir; A runs the training jobs, B only serves
   (``SEQLAB_RUN_JOBS=false``). nginx (``worker_processes 1``, ``daemon off``, ``access_log
   off``, its config, pid file and temp paths in a temp dir) listens on two loopback ports:
   ``upstream`` of A alone and of A and B (``least_conn``, ``keepalive`` to the replicas with
   an idle timeout below uvicorn's 5 s). The machine this was written on has 2 cores: nginx,
   wrk and PostgreSQL are not pinned and share them with the replicas — with 1 replica they
   have CPU 1 to themselves, with 2 they take from the replicas, so the ratio here is a lower
   bound of what a replica per machine would give. The CPU share each replica, nginx and
   PostgreSQL used during each run is printed (100 % = one core), and the share that other
   processes took, with a warning above 10 %.

2. Publish-to-served latency across replicas, with B's poll off
   (``SEQLAB_REGISTRY_SYNC_SECONDS=0``: only a notification can tell it):

   * a new model: ``POST /models`` of a tiny GRU LM (embedding 8, hidden 16, 3 short texts) to
     A, ``--repeats`` times (default 20) under distinct names; a thread polls B with
     ``POST /predict`` for that name as fast as one keep-alive connection allows, from just
     before A's request is sent, until B answers 200. Measured from the moment A's 201 arrived
     (negative: B served it before A's answer reached the client) and from the moment the request
     was sent;
   * a new version: ``POST /train`` with ``"wait": true`` (one epoch of 60 short texts) to A,
     ``--version-repeats`` times (default 5), B's ``GET /models/{name}`` polled likewise until
     its ``version`` is the new one; measured from A's 200 (from the request sent would be the
     training job's time).

   Baseline in the same run: two replicas on one data dir with SQLite (no
   ``SEQLAB_DATABASE_URL``), B with the default 2 s poll, which is then the only way B can
   learn of the change; the same repeats. Median, p90 (nearest rank) and max of each; the
   resolution is one poll of B (its mean round trip is printed). The polling thread runs in
   this process, unpinned: its requests take B's CPU (and B's GIL, which B's listener thread
   needs too), as a replica's own traffic would.

nginx: ``nginx`` on the PATH, else the Debian binary that ``make deploy-check`` unpacks into
``build/deploy-tools/nginx/usr/sbin/nginx``. Needs PostgreSQL's server binaries (``make
test-deps``), ``wrk`` and ``taskset``, and 2 CPUs.

Run from the repository root:
``python -m bench.replicas [--duration 10] [--rounds 2] [--connections 8 64] [--repeats 20]
[--version-repeats 5]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.batching import MODEL, batch_sizes, create_model, sample_texts
from bench.common import (
    REPOSITORY_ROOT,
    benchmark_parser,
    format_share,
    format_table,
    machine_description,
    others_cpu_share,
    process_stat_fields,
    process_usage,
    require_at_least_one,
    round_order,
    sample_cpu,
    spread,
    warn_if_contended,
)
from bench.http import LUA_SCRIPT, WARMUP_SECONDS
from bench.servers import HOST, SOFTWARE, Server, free_port, post, start_server, stop_server
from tests.postgres import PostgresServer, server_binaries

CONNECTIONS = (8, 64)
DIRECT, ONE, TWO = "direct to A", "nginx -> 1 replica", "nginx -> 2 replicas"
TARGETS = (ONE, TWO, DIRECT)
BUNDLED_NGINX = REPOSITORY_ROOT / "build" / "deploy-tools" / "nginx" / "usr" / "sbin" / "nginx"
# uvicorn closes a keep-alive connection after 5 s idle: nginx drops its idle ones before, so
# that it never sends a POST on a connection the replica is closing.
UPSTREAM_IDLE_SECONDS = 4
TINY_TEXTS = ["我爱学习自然语言处理", "我爱机器学习", "我爱自然语言处理"]
TINY_MODEL = {"texts": TINY_TEXTS, "embedding_dim": 8, "hidden_size": 16, "cell": "gru", "seed": 0}
TRAINING = {
    "texts": TINY_TEXTS * 20,
    "seq_len": 4,
    "batch_size": 4,
    "epochs": 1,
    "lr": 0.01,
    "val_fraction": 0.1,
    "wait": True,
}
PROBE_TEXT = "我爱"
LATENCY_TIMEOUT_SECONDS = 120.0
COMMON_SETTINGS = {
    "SEQLAB_LOG_LEVEL": "warning",
    "SEQLAB_TRAIN_DEMO_MODEL": "false",
    "SEQLAB_CREATE_DEMO_MODEL": "false",
    # 64 connections to one replica are measured rather than shed (as bench.batching).
    "SEQLAB_MAX_SMALL_REQUESTS": "512",
    "SEQLAB_MAX_QUEUED_INFERENCE": "512",
    # No segmentation workers: /predict's texts are short, and the workers would take memory and
    # warm-up CPU on the shared cores.
    "SEQLAB_SEGMENTATION_PROCESSES": "1",
}
NOTIFY, POLL = "PostgreSQL, NOTIFY (B's poll off)", "SQLite, B's 2 s poll (baseline)"


@dataclass(frozen=True)
class Run:
    """One timed wrk run against one target."""

    target: str
    connections: int
    round_number: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    mean_batch: float | None
    cpu_shares: dict[str, float | None]  # replica A, replica B, nginx, postgres
    others_cpu_share: float | None

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Latency:
    """One publication on A, and when B first served it (perf_counter seconds)."""

    sent: float
    answered: float
    served: float
    polls: int
    poll_seconds: float  # mean round trip of one poll of B

    @property
    def from_answer(self) -> float:
        return self.served - self.answered

    @property
    def from_send(self) -> float:
        return self.served - self.sent


# --- the tools -----------------------------------------------------------------------------


def find_nginx() -> str:
    """``nginx`` on the PATH, else the one ``make deploy-check`` unpacked; else exit."""
    found = shutil.which("nginx")
    if found is None and os.access(BUNDLED_NGINX, os.X_OK):
        found = str(BUNDLED_NGINX)
    if found is None:
        sys.exit(
            "error: nginx not found on the PATH nor in build/deploy-tools/ "
            "(run `make deploy-check`, which unpacks Debian's nginx there)"
        )
    return found


def find_wrk() -> str:
    found = "/usr/bin/wrk" if os.access("/usr/bin/wrk", os.X_OK) else shutil.which("wrk")
    if found is None:
        sys.exit("error: wrk is not installed (apt-get install -y wrk)")
    return found


# --- processes and their CPU ---------------------------------------------------------------


def children(process_id: int) -> list[int]:
    """The processes whose parent is ``process_id`` (``/proc/*/stat``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = process_stat_fields(int(entry.name))
            if fields is not None and fields[1] == str(process_id):
                found.append(int(entry.name))
    return found


def cpu_seconds(process_ids: Sequence[int]) -> dict[int, float]:
    usages = {pid: process_usage(pid) for pid in process_ids}
    return {pid: usage.cpu_seconds for pid, usage in usages.items() if usage is not None}


def used_between(before: dict[int, float], after: dict[int, float]) -> float | None:
    """CPU seconds the processes present at both readings used in between."""
    common = before.keys() & after.keys()
    return sum(after[pid] - before[pid] for pid in common) if common else None


def postgres_processes(postgres: PostgresServer) -> list[int]:
    """The postmaster and its children (the replicas' backends among them)."""
    try:
        postmaster = int((postgres.directory / "cluster" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return [postmaster, *children(postmaster)]


def stop_postgres(postgres: PostgresServer) -> None:
    try:
        postgres.stop()
    except (OSError, subprocess.SubprocessError) as error:
        print(f"warning: stopping PostgreSQL failed: {error}", file=sys.stderr)


# --- nginx ---------------------------------------------------------------------------------


def nginx_config(directory: Path, ports: dict[str, int], one: list[int], two: list[int]) -> str:
    temp_paths = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )

    def upstream(name: str, replica_ports: list[int]) -> str:
        servers = "".join(f"        server {HOST}:{port};\n" for port in replica_ports)
        return (
            f"    upstream {name} {{\n        least_conn;\n{servers}"
            f"        keepalive 64;\n        keepalive_timeout {UPSTREAM_IDLE_SECONDS}s;\n    }}\n"
        )

    def server(port: int, name: str) -> str:
        return (
            f"    server {{\n        listen {HOST}:{port};\n"
            f"        location / {{\n            proxy_pass http://{name};\n        }}\n    }}\n"
        )

    return (
        "worker_processes 1;\n"
        "daemon off;\n"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\n"
        "events {\n    worker_connections 4096;\n}\n"
        "http {\n"
        "    access_log off;\n"
        f"{temp_paths}"
        "    proxy_http_version 1.1;\n"
        '    proxy_set_header Connection "";\n'
        "    proxy_set_header Host $host;\n"
        "    proxy_read_timeout 120s;\n"
        f"{upstream('one', one)}{upstream('two', two)}"
        f"{server(ports[ONE], 'one')}{server(ports[TWO], 'two')}"
        "}\n"
    )


def start_nginx(
    binary: str, directory: Path, a: Server, b: Server
) -> tuple[subprocess.Popen, dict]:
    """nginx in its own process group, once both of its ports answer ``/ready`` with 200."""
    directory.mkdir()
    ports = {ONE: free_port(), TWO: free_port()}
    config = directory / "nginx.conf"
    config.write_text(nginx_config(directory, ports, [a.port], [a.port, b.port]))
    log = directory / "error.log"
    process = subprocess.Popen(
        [binary, "-p", str(directory), "-c", str(config), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    waiting = dict(ports)
    while waiting:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_nginx(process)
            sys.exit(f"error: nginx did not start:\n{read_tail(log)}")
        for name, port in list(waiting.items()):
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/ready", timeout=2) as answer:
                    if answer.status == 200:
                        del waiting[name]
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
    return process, ports


def stop_nginx(process: subprocess.Popen) -> None:
    """SIGQUIT (finish the open requests), then SIGTERM, then SIGKILL, to its process group."""
    for sent in (signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sent)
            process.wait(5)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def read_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no log)"


# --- throughput ----------------------------------------------------------------------------


def run_wrk(
    wrk: str,
    url: str,
    duration: float,
    connections: int,
    watched: dict[str, list[int]],
) -> tuple[dict, dict[str, float | None], float | None]:
    """One wrk run of ``POST url/predict``: wrk's summary, the CPU share (of one core) of each
    ``watched`` group of processes, and the share of all CPUs that other processes took."""
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        f"{url}/predict",
    ]
    before = sample_cpu(include_children=True)  # wrk: a child, waited for by subprocess.run
    groups_before = {name: cpu_seconds(pids) for name, pids in watched.items()}
    finished = subprocess.run(command, capture_output=True, text=True)
    after = sample_cpu(include_children=True)
    groups_used = {
        name: used_between(groups_before[name], cpu_seconds(pids)) for name, pids in watched.items()
    }
    match = next(
        (line for line in finished.stdout.splitlines() if line.startswith("WRK_JSON ")), None
    )
    if finished.returncode != 0 or match is None:
        sys.exit(
            f"error: wrk failed ({finished.returncode}):\n{finished.stdout}\n{finished.stderr}"
        )
    summary = json.loads(match.removeprefix("WRK_JSON "))
    wall = after.wall - before.wall
    shares = {name: None if used is None else used / wall for name, used in groups_used.items()}
    accounted = sum(used for used in groups_used.values() if used is not None)
    return summary, shares, others_cpu_share(before, after, accounted)


WRK_ERRORS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")


def timed_run(
    wrk: str,
    url: str,
    replicas: list[Server],
    watched: dict[str, list[int]],
    key: tuple[str, int, int],
    duration: float,
) -> Run:
    """One timed wrk run at ``key`` (target, connections, round), with the mean batch that
    ``replicas`` formed meanwhile."""
    target, connections, round_number = key
    before = [batch_sizes(server) for server in replicas]
    summary, shares, others = run_wrk(wrk, url, duration, connections, watched)
    after = [batch_sizes(server) for server in replicas]
    batches = sum(x[0] - y[0] for x, y in zip(after, before, strict=True))
    requests = sum(x[1] - y[1] for x, y in zip(after, before, strict=True))
    return Run(
        target=target,
        connections=connections,
        round_number=round_number,
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1e3,
        p99_ms=summary["p99_us"] / 1e3,
        errors=sum(summary[name] for name in WRK_ERRORS),
        mean_batch=requests / batches if batches > 0 else None,
        cpu_shares=shares,
        others_cpu_share=others,
    )


def measure_throughput(
    wrk: str,
    arguments: argparse.Namespace,
    a: Server,
    b: Server,
    nginx: subprocess.Popen,
    nginx_ports: dict[str, int],
    postgres: PostgresServer,
) -> list[Run]:
    urls = {
        DIRECT: a.url,
        ONE: f"http://{HOST}:{nginx_ports[ONE]}",
        TWO: f"http://{HOST}:{nginx_ports[TWO]}",
    }
    replicas = {DIRECT: [a], ONE: [a], TWO: [a, b]}
    runs: list[Run] = []
    for connections in arguments.connections:
        for target in TARGETS:
            run_wrk(wrk, urls[target], WARMUP_SECONDS, connections, {})
        for round_number in range(1, arguments.rounds + 1):
            for target in round_order(TARGETS, round_number):
                watched = {
                    "A": [a.process.pid],
                    "B": [b.process.pid],
                    "nginx": [nginx.pid, *children(nginx.pid)],
                    "postgres": postgres_processes(postgres),
                }
                run = timed_run(
                    wrk,
                    urls[target],
                    replicas[target],
                    watched,
                    (target, connections, round_number),
                    arguments.duration,
                )
                runs.append(run)
                print(
                    f"  c={connections:<3} round {round_number}  {target:<19} "
                    f"{run.requests_per_second:7,.0f} req/s  p50 {run.p50_ms:7.2f} ms  "
                    f"p99 {run.p99_ms:7.2f} ms  errors {run.errors}  mean batch "
                    f"{'-' if run.mean_batch is None else f'{run.mean_batch:.1f}'}  CPU "
                    + "  ".join(f"{name} {format_share(x)}" for name, x in run.cpu_shares.items())
                    + f"  others {format_share(run.others_cpu_share)} of CPUs",
                    flush=True,
                )
    return runs


def best(runs: list[Run], target: str, connections: int) -> Run:
    candidates = [r for r in runs if r.target == target and r.connections == connections]
    return max(candidates, key=lambda run: run.requests_per_second)


def throughput_table(runs: list[Run], connections: Sequence[int]) -> str:
    rows = []
    for count in connections:
        for target in (DIRECT, ONE, TWO):
            run = best(runs, target, count)
            replicas_cpu = format_share(run.cpu_shares["A"])
            if target == TWO:
                replicas_cpu += " + " + format_share(run.cpu_shares["B"])
            rows.append(
                [
                    str(count),
                    target,
                    f"{run.requests_per_second:,.0f}",
                    f"{run.p50_ms:.2f}",
                    f"{run.p99_ms:.2f}",
                    "-" if run.mean_batch is None else f"{run.mean_batch:.1f}",
                    replicas_cpu,
                    "-" if target == DIRECT else format_share(run.cpu_shares["nginx"]),
                    format_share(run.cpu_shares["postgres"]),
                    str(run.errors),
                ]
            )
    headers = [
        "conns",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "mean batch",
        "replica CPU",
        "nginx CPU",
        "pg CPU",
        "errors",
    ]
    return format_table(headers, rows)


# --- publish-to-served latency -------------------------------------------------------------


def poll_until(
    port: int,
    method: str,
    path: str,
    body: bytes | None,
    accept: Callable[[int, bytes], bool],
    polling: threading.Event,
    stop: threading.Event,
) -> tuple[float, int, float] | None:
    """Ask the replica on ``port`` again and again on one keep-alive connection until
    ``accept(status, body)``: (when that answer arrived, how many polls, when the first was
    sent); None once ``stop`` is set. ``polling`` is set after the first answer."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    polls = 0
    first = time.perf_counter()
    try:
        while not stop.is_set():
            try:
                connection.request(method, path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException):
                connection.close()  # reconnected by the next request
                continue
            arrived = time.perf_counter()
            polls += 1
            if polls == 1:
                if accept(answer.status, data):
                    raise RuntimeError(f"{path} answered before anything was published")
                polling.set()
            elif accept(answer.status, data):
                return arrived, polls, first
    finally:
        connection.close()
        polling.set()
    return None


def timed_publication(
    a: Server,
    path: str,
    body: dict,
    expected_status: int,
    b: Server,
    probe: tuple[str, str, bytes | None],
    accept: Callable[[int, bytes], bool],
) -> tuple[Latency, dict]:
    """POST ``body`` to A's ``path`` while B is polled with ``probe`` until ``accept``; the
    latency, and A's answer."""
    polling, stop = threading.Event(), threading.Event()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(poll_until, b.port, *probe, accept, polling, stop)
        try:
            polling.wait(30)
            sent = time.perf_counter()
            status, _, answer = post(
                a.url + path, json.dumps(body).encode(), timeout=LATENCY_TIMEOUT_SECONDS
            )
            answered = time.perf_counter()
            if status != expected_status:
                sys.exit(f"error: {path} on replica A answered {status}: {answer[:500]!r}")
            found = future.result(timeout=LATENCY_TIMEOUT_SECONDS)
        except TimeoutError:
            sys.exit(f"error: replica B did not serve what {path} published within the timeout")
        finally:
            stop.set()
    assert found is not None
    served, polls, first = found
    latency = Latency(sent, answered, served, polls, (served - first) / polls)
    return latency, json.loads(answer)


def model_latencies(a: Server, b: Server, prefix: str, repeats: int) -> list[Latency]:
    """A new model on A, ``repeats`` times: until B answers ``/predict`` for it."""
    pause = random.Random(0)
    latencies = []
    for index in range(repeats):
        name = f"{prefix}-{index}"
        probe = json.dumps({"model": name, "text": PROBE_TEXT, "k": 3}).encode()
        latency, _ = timed_publication(
            a,
            "/models",
            {**TINY_MODEL, "name": name},
            201,
            b,
            ("POST", "/predict", probe),
            lambda status, _: status == 200,
        )
        latencies.append(latency)
        # Apart, and not in step with a poll's period.
        time.sleep(pause.uniform(0.2, 0.6))
    return latencies


def version_latencies(a: Server, b: Server, prefix: str, repeats: int) -> list[Latency]:
    """A new version on A (POST /train, wait), ``repeats`` times: until B's ``/models/{name}``
    names it."""
    name = f"{prefix}-trained"
    status, _, answer = post(
        f"{a.url}/models", json.dumps({**TINY_MODEL, "name": name}).encode(), timeout=60
    )
    if status != 201:
        sys.exit(f"error: creating {name} on replica A answered {status}: {answer[:500]!r}")
    wait_until(lambda: get_status(f"{b.url}/models/{name}") == 200, f"replica B to see {name}")
    pause = random.Random(1)
    latencies = []
    for index in range(repeats):
        expected = index + 2

        def names_it(status: int, data: bytes, expected: int = expected) -> bool:
            return status == 200 and json.loads(data)["version"] >= expected

        latency, job = timed_publication(
            a,
            "/train",
            {"model": name, **TRAINING},
            200,
            b,
            ("GET", f"/models/{name}", None),
            names_it,
        )
        if job.get("status") != "succeeded" or job.get("version") != expected:
            sys.exit(f"error: the training job did not publish version {expected}: {job}")
        latencies.append(latency)
        time.sleep(pause.uniform(0.2, 0.6))
    return latencies


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"error: timed out waiting for {what}")
        time.sleep(0.05)


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def milliseconds(values: Sequence[float]) -> list[str]:
    """Median, p90 and max, in ms."""
    return [
        f"{1000 * statistics.median(values):.1f}",
        f"{1000 * nearest_rank(values, 0.9):.1f}",
        f"{1000 * max(values):.1f}",
    ]


def latency_table(measured: dict[tuple[str, str], list[Latency]]) -> str:
    rows = []
    for (change, setup), latencies in measured.items():
        from_send = (
            milliseconds([x.from_send for x in latencies]) if change == "new model" else ["-"] * 3
        )
        rows.append(
            [
                change,
                setup,
                str(len(latencies)),
                *milliseconds([x.from_answer for x in latencies]),
                *from_send,
                f"{1000 * statistics.mean(x.poll_seconds for x in latencies):.2f}",
            ]
        )
    headers = [
        "change on A",
        "replicas on",
        "n",
        "median",
        "p90",
        "max",
        "sent: median",
        "p90",
        "max",
        "B's poll",
    ]
    return format_table(headers, rows)


def print_latencies(label: str, latencies: list[Latency]) -> None:
    print(
        f"  {label}: from A's answer "
        + ", ".join(f"{1000 * x.from_answer:.1f}" for x in latencies)
        + " ms; from the request sent "
        + ", ".join(f"{1000 * x.from_send:.1f}" for x in latencies)
        + " ms",
        flush=True,
    )


# --- main ----------------------------------------------------------------------------------


def start_pair(
    settings: dict[str, str], directory: Path, b_settings: dict[str, str], suffix: str
) -> list[Server]:
    """Replica A (CPU 0, runs the jobs), then replica B (CPU 1, serves only)."""
    a = start_server(f"replica-a{suffix}", "", settings, directory, cpus="0", seqlab_serve=True)
    try:
        b = start_server(
            f"replica-b{suffix}",
            "",
            settings | {"SEQLAB_RUN_JOBS": "false"} | b_settings,
            directory,
            cpus="1",
            seqlab_serve=True,
        )
    except BaseException:
        stop_server(a)
        raise
    return [a, b]


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser("bench.replicas", __doc__)
    parser.add_argument("--duration", type=float, default=10, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per point")
    parser.add_argument(
        "--connections", type=int, nargs="+", default=list(CONNECTIONS), help="wrk connections"
    )
    parser.add_argument("--repeats", type=int, default=20, help="new models timed per setup")
    parser.add_argument(
        "--version-repeats", type=int, default=5, help="new versions timed per setup"
    )
    parser.add_argument(
        "--batch-max-tokens",
        type=int,
        default=None,
        help="the replicas' SEQLAB_BATCH_MAX_TOKENS (0: no dynamic batching; default: the "
        "service's), to see replica scaling without batch sizes changing with the split",
    )
    parser.add_argument(
        "--throughput-only", action="store_true", help="measure /predict only, no latencies"
    )
    arguments = parser.parse_args(argv)
    require_at_least_one(parser, arguments, ["duration", "rounds", "repeats", "version_repeats"])
    if min(arguments.connections) < 1:
        parser.error("--connections must be at least 1")
    if shutil.which("taskset") is None:
        sys.exit("error: taskset is not installed (apt-get install -y util-linux)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("error: needs 2 CPUs (replica A on CPU 0, replica B on CPU 1)")
    wrk, nginx_binary = find_wrk(), find_nginx()
    binaries = server_binaries()
    if binaries is None:
        sys.exit("error: PostgreSQL's server binaries are not installed (make test-deps)")
    version_line = subprocess.run([nginx_binary, "-v"], capture_output=True, text=True).stderr
    print(machine_description(SOFTWARE))
    print(
        f"{version_line.strip()} ({nginx_binary}), PostgreSQL {binaries.parent.name}; "
        f"replica A on CPU 0, B on CPU 1; nginx, wrk (1 thread) and PostgreSQL unpinned on "
        f"the same {os.cpu_count()} CPUs"
    )
    print(
        f"wrk {arguments.duration:g} s per run, {arguments.rounds} alternating round(s) after a "
        f"{WARMUP_SECONDS} s warm-up per target and connection count\n"
    )
    texts = sample_texts()
    started = time.perf_counter()
    measured: dict[tuple[str, str], list[Latency]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as temporary:
        directory = Path(temporary)
        bodies = directory / "predict.jsonl"
        bodies.write_text(
            "".join(
                json.dumps({"model": MODEL, "text": text}, ensure_ascii=False) + "\n"
                for text in texts
            ),
            encoding="utf-8",
        )
        os.environ["WRK_BODIES_FILE"] = str(bodies)  # read by bench/wrk_post.lua
        postgres: PostgresServer | None = None
        servers: list[Server] = []
        nginx: subprocess.Popen | None = None
        try:
            postgres = PostgresServer(binaries)
            postgres.start()
            shared = COMMON_SETTINGS | {
                "SEQLAB_DATA_DIR": str(directory / "shared"),
                "SEQLAB_DATABASE_URL": postgres.new_database(),
            }
            if arguments.batch_max_tokens is not None:
                shared["SEQLAB_BATCH_MAX_TOKENS"] = str(arguments.batch_max_tokens)
            servers = start_pair(shared, directory, {"SEQLAB_REGISTRY_SYNC_SECONDS": "0"}, "")
            a, b = servers
            print("creating the LSTM through replica A…", flush=True)
            create_model(a)
            probe = json.dumps({"model": MODEL, "text": texts[0]}).encode()
            wait_until(
                lambda: post(f"{b.url}/predict", probe, timeout=60)[0] == 200,
                f"replica B to serve {MODEL}",
            )
            nginx, nginx_ports = start_nginx(nginx_binary, directory / "nginx", a, b)
            print("/predict:", flush=True)
            runs = measure_throughput(wrk, arguments, a, b, nginx, nginx_ports, postgres)
            stop_nginx(nginx)
            nginx = None

            if not arguments.throughput_only:
                print("\npublish to served, replicas on PostgreSQL (B's poll off):", flush=True)
                measured[("new model", NOTIFY)] = model_latencies(a, b, "notify", arguments.repeats)
                print_latencies("new model", measured[("new model", NOTIFY)])
                measured[("new version", NOTIFY)] = version_latencies(
                    a, b, "notify", arguments.version_repeats
                )
                print_latencies("new version", measured[("new version", NOTIFY)])
                for server in servers:
                    stop_server(server)
                servers = []
                stop_postgres(postgres)
                postgres = None

                print("publish to served, replicas on SQLite (B's 2 s poll):", flush=True)
                alone = COMMON_SETTINGS | {"SEQLAB_DATA_DIR": str(directory / "sqlite")}
                servers = start_pair(alone, directory, {}, "-sqlite")
                a, b = servers
                measured[("new model", POLL)] = model_latencies(a, b, "poll", arguments.repeats)
                print_latencies("new model", measured[("new model", POLL)])
                measured[("new version", POLL)] = version_latencies(
                    a, b, "poll", arguments.version_repeats
                )
                print_latencies("new version", measured[("new version", POLL)])
        finally:
            os.environ.pop("WRK_BODIES_FILE", None)
            if nginx is not None:
                stop_nginx(nginx)
            for server in servers:
                stop_server(server)
            if postgres is not None:
                stop_postgres(postgres)

    print(f"\n/predict, best of {arguments.rounds} round(s) per target (CPU: 100 % = one core):")
    print(throughput_table(runs, arguments.connections))
    for count in arguments.connections:
        one, two, direct = (best(runs, target, count).requests_per_second for target in TARGETS)
        print(
            f"  {count} connections: 2 replicas / 1 replica {two / one:.2f}x (goal: close to 2x); "
            f"nginx -> 1 replica / direct {one / direct:.2f}x"
        )
    if arguments.rounds > 1:
        noise = max(
            spread(
                [r.requests_per_second for r in runs if (r.target, r.connections) == point],
                relative_to="largest",
            )
            for point in {(r.target, r.connections) for r in runs}
        )
        print(f"  largest run-to-run spread of req/s over the rounds: {noise:.1%}")

    if arguments.throughput_only:
        print(f"total time {time.perf_counter() - started:.0f} s")
        warn_if_contended(max((r.others_cpu_share or 0.0) for r in runs))
        return
    print(
        "\npublish to served on B, ms: from A's answer (negative: B served first), then from the "
        "request sent to A (new models only); B's poll: one poll's mean round trip:"
    )
    print(latency_table(measured))
    for change in ("new model", "new version"):
        polled, notified = (
            statistics.median(x.from_answer for x in measured[(change, setup)])
            for setup in (POLL, NOTIFY)
        )
        if notified > 0:
            print(
                f"  {change}: median after A's answer, SQLite's poll / NOTIFY "
                f"{polled / notified:.1f}x"
            )
    print(f"total time {time.perf_counter() - started:.0f} s")
    warn_if_contended(max((r.others_cpu_share or 0.0) for r in runs))


if __name__ == "__main__":
    main()
