"""The uvicorn harness of the HTTP benchmarks (``bench.http`` and ``bench.train_http``).

* ``start_server``: ``uvicorn --factory …`` (1 worker, ``--no-access-log``, loopback, a free
  port) in its own process group, optionally pinned with ``taskset``, with an environment
  cleared of ``SEQLAB_*`` variables plus the ones given, its output in a log file; it returns
  once ``GET /ready`` answers 200 (else the script exits with the end of the log);
* ``stop_server``: SIGTERM to the whole process group, SIGKILL after 10 s;
* ``post``: one POST, answered with its status, headers and body (error statuses too);
* ``SOFTWARE``: the packages of the service, whose versions the reports name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPOSITORY_ROOT

HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 120
# The packages whose versions the first line of the report names.
SOFTWARE = ("fastapi", "starlette", "uvicorn", "pydantic", "torch")


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        return listener.getsockname()[1]


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("SEQLAB_")
    }
    return environment | extra


def start_server(
    name: str,
    factory: str,
    extra_env: dict[str, str],
    log_dir: Path,
    cpus: str | None = None,
    seqlab_serve: bool = False,
) -> Server:
    """uvicorn in its own process group, pinned to ``cpus`` (``None``: not pinned); with
    ``seqlab_serve`` through ``seqlab serve`` (its connection limits; ``factory`` unused)."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    pinning = ["taskset", "-c", cpus] if cpus is not None else []
    if seqlab_serve:
        server = [sys.executable, "-m", "app.cli", "serve", "--host", HOST, "--port", str(port)]
    else:
        server = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    command = [*pinning, *server]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPOSITORY_ROOT,
            env=clean_environment(extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    server = Server(name, process, port, log_path)
    wait_ready(server)
    return server


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            sys.exit(
                f"error: {server.name} exited ({server.process.returncode}):\n"
                + server.log_path.read_text(errors="replace")[-3000:]
            )
        try:
            with urllib.request.urlopen(f"{server.url}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    stop_server(server)
    sys.exit(f"error: {server.name} was not ready within {READY_TIMEOUT_SECONDS} s")


def stop_server(server: Server) -> None:
    if server.process.poll() is not None:
        return
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
    except ProcessLookupError:
        pass


def post(
    url: str, body: bytes, content_type: str = "application/json", timeout: float = 30
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, lowercase_headers(answer.headers.items()), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, lowercase_headers(error.headers.items()), error.read()


def lowercase_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}
