"""A real service in its own process (``seqlab serve``, as make serve and the container run
it), for tests that need what an in-process client cannot give: signals, kills, sockets, several
processes, the connection limits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServiceProcess:
    """``seqlab serve`` (uvicorn with the connection limits) over ``data_dir`` with these
    SEQLAB_* settings.

    Its own process group, so that :meth:`kill` can take the service alone (its training
    worker left behind, as when only the service is OOM-killed) or everything with it (as when
    a container or a machine dies).
    """

    def __init__(self, data_dir: Path, settings: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.settings = settings or {}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SEQLAB_")},
            "SEQLAB_DATA_DIR": str(self.data_dir),
            "SEQLAB_DEVICE": "cpu",
            "SEQLAB_TRAIN_DEMO_MODEL": "false",
            "SEQLAB_LOG_LEVEL": "warning",
            "SEQLAB_SEGMENTATION_PROCESSES": "1",  # no worker processes unless a test asks
            **self.settings,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=environment,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base}/ready").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited with {self.process.returncode}")
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.05)

    def kill(self, *, group: bool) -> None:
        """SIGKILL the service (``group``: and every process it started)."""
        assert self.process is not None
        if group:
            os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM the process group, as a container runtime stops it, and wait."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@contextmanager
def running_service(tmp_path: Path, port: int, settings: dict[str, str]) -> Iterator[str]:
    """A ready service over ``tmp_path / "data"``; its base URL. Stopped at the end."""
    service = ServiceProcess(tmp_path / "data", settings)
    service.port, service.base = port, f"http://127.0.0.1:{port}"
    service.start()
    try:
        yield service.base
    finally:
        service.stop()
