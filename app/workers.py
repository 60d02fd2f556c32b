"""``SEQLAB_WORKERS``: several service processes on one port and one data dir.

The supervisor (``seqlab serve`` itself) binds the port once and starts that many workers,
each ``seqlab serve --listen-fd N`` on the inherited socket: a whole service with its own
event loop, models in memory and segmentation pool, so requests are computed on every core.
The kernel hands each new connection to one of the workers waiting in ``accept``.

What makes it safe on one data dir: the registry's writes are atomic and every process picks
up what another published (its sync); exactly one process runs training jobs, the one that holds
the data dir's job-runner lock, and the others record jobs in the store for it
(:class:`app.jobs.manager.JobManager`). A worker that dies is started again; SIGTERM or SIGINT
stop them all (each with its graceful shutdown: training workers save their state).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

RESTART_DELAY_SECONDS = 1.0


def supervise(host: str, port: int, workers: int) -> int:
    """Serve on ``host:port`` with ``workers`` processes until a signal stops them."""
    listener = socket.create_server((host, port), backlog=2048, reuse_port=False)
    listener.set_inheritable(True)
    environment = os.environ | {"SEQLAB_WORKERS": "1"}  # a worker serves; it supervises none
    command = [sys.executable, "-m", "app.cli", "serve", "--host", host, "--port", str(port)]
    command += ["--listen-fd", str(listener.fileno())]

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, env=environment, pass_fds=(listener.fileno(),))

    children = [start() for _ in range(workers)]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"seqlab: {workers} workers on http://{host}:{port} "
        f"(pids {', '.join(str(child.pid) for child in children)})",
        file=sys.stderr,
        flush=True,
    )
    while not stopping:
        time.sleep(0.2)
        for index, child in enumerate(children):
            if child.poll() is not None and not stopping:
                print(
                    f"seqlab: worker {child.pid} exited ({child.returncode}); starting another",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(RESTART_DELAY_SECONDS)
                children[index] = start()
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
    listener.close()
    return 0
