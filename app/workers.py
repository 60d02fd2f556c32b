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

import ctypes
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

RESTART_DELAY_SECONDS = 1.0
# A worker that exits sooner than this after its start counts as a crash; after this many in a
# row (a configuration the workers cannot start with), the supervisor stops them all.
QUICK_EXIT_SECONDS = 30.0
QUICK_EXITS_ALLOWED = 5
_PR_SET_PDEATHSIG = 1


def _die_with_supervisor() -> None:
    """In the child before it runs: SIGTERM when the supervisor dies, however it dies (Linux),
    so no worker goes on serving the port with nobody to restart or stop it."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the workers outlive a killed supervisor


def supervise(host: str, port: int, workers: int) -> int:
    """Serve on ``host:port`` with ``workers`` processes until a signal stops them; 1 if they
    kept failing to start."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)  # before any child exists: none is left behind
    signal.signal(signal.SIGINT, stop)
    listener = socket.create_server((host, port), backlog=2048)
    listener.set_inheritable(True)
    command = [sys.executable, "-m", "app.cli", "serve", "--host", host, "--port", str(port)]
    command += ["--listen-fd", str(listener.fileno())]

    def start() -> tuple[subprocess.Popen, float]:
        child = subprocess.Popen(
            command, pass_fds=(listener.fileno(),), preexec_fn=_die_with_supervisor
        )
        return child, time.monotonic()

    children = [start() for _ in range(workers)]
    print(
        f"seqlab: {workers} workers on http://{host}:{port} "
        f"(pids {', '.join(str(child.pid) for child, _ in children)})",
        file=sys.stderr,
        flush=True,
    )
    quick_exits = 0
    status = 0
    while not stopping:
        time.sleep(0.2)
        for index, (child, started) in enumerate(children):
            if child.poll() is None or stopping:
                continue
            quick_exits = quick_exits + 1 if time.monotonic() - started < QUICK_EXIT_SECONDS else 0
            if quick_exits >= QUICK_EXITS_ALLOWED:
                print(
                    f"seqlab: workers keep exiting at start ({quick_exits} in a row, the last "
                    f"with {child.returncode}); stopping",
                    file=sys.stderr,
                    flush=True,
                )
                stopping, status = True, 1
                break
            print(
                f"seqlab: worker {child.pid} exited ({child.returncode}); starting another",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(RESTART_DELAY_SECONDS)
            if not stopping:
                children[index] = start()
    for child, _ in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child, _ in children:
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    listener.close()
    return status
