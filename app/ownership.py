"""Who is writing something under the data directory, and whether that writer still lives.

A pending version row, a ``seqlab train`` job directory and a half-written corpus file each
record their :class:`Owner`: the host, the process id, and the process's start time (so a
recycled pid is not taken for the writer). Start-up sweeps only what a gone owner left behind:
on this host a writer is alive while a process with its pid *and* start time exists, even when
it is stopped (SIGSTOP); for a writer on another host (a shared volume) only its lease can
tell, so the sweep waits until the lease has expired.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

# Long enough that no version is half-written for longer (a rename and a load), short enough
# that a writer on another host that died frees its version within minutes.
LEASE_SECONDS = 600.0
_HAS_PROC = Path("/proc/self/stat").exists()
_TOKEN = re.compile(r"^(?P<host>[A-Za-z0-9_.-]+)~(?P<pid>\d+)~(?P<started>\d+)$")


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: int  # the process's start time, in clock ticks since boot (/proc/PID/stat)

    @classmethod
    def current(cls) -> Owner:
        return cls.of_process(os.getpid())

    @classmethod
    def of_process(cls, pid: int) -> Owner:
        """The owner that process ``pid`` of this host is."""
        return cls(_host(), pid, process_start(pid) or 0)

    def is_alive(self) -> bool | None:
        """True or False on this host; None for another host's process (unknowable here)."""
        if self.host != _host():
            return None
        started = process_start(self.pid)
        return started is not None and started == self.started

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "started": self.started}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Owner | None:
        try:
            return cls(str(data["host"]), int(data["pid"]), int(data["started"]))  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            return None

    @property
    def token(self) -> str:
        """The owner in a file name: ``host~pid~started``."""
        return f"{self.host}~{self.pid}~{self.started}"

    @classmethod
    def from_token(cls, token: str) -> Owner | None:
        match = _TOKEN.match(token)
        if match is None:
            return None
        return cls(match["host"], int(match["pid"]), int(match["started"]))


def lease_until(seconds: float = LEASE_SECONDS) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def lease_of(path: Path) -> str | None:
    """A file's or directory's lease: its last change plus :data:`LEASE_SECONDS` (a writer on
    another host keeps what it writes there fresh); None when it is gone already."""
    try:
        changed = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None
    return (changed + timedelta(seconds=LEASE_SECONDS)).isoformat(timespec="milliseconds")


@contextmanager
def kept_fresh(path: Path, every: float = LEASE_SECONDS / 4) -> Iterator[None]:
    """Renew ``path``'s lease (:func:`lease_of`: its mtime) while the block runs: what a writer
    on one host keeps for longer than a lease stays its own for the processes of another host
    sharing the volume. A path not made yet, or gone, is skipped."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(every):
            with suppress(OSError):
                os.utime(path)

    renewer = threading.Thread(target=renew, name="seqlab-keep-fresh", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()


def writer_gone(owner: Owner | None, lease: str | None) -> bool:
    """Whether what ``owner`` was writing may be swept: its process is gone (this host), or it
    is another host's and its lease has expired; anything without an owner is from a release
    that recorded none, and is swept as before."""
    if owner is None:
        return True
    alive = owner.is_alive()
    if alive is not None:
        return not alive
    if lease is None:
        return True
    try:
        return datetime.fromisoformat(lease) < datetime.now(UTC)
    except ValueError:
        return True


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot, or None when there is no such
    process (or it is a zombie: dead, not yet reaped). Where ``/proc`` is missing, a process
    that exists counts as started at 0."""
    if not _HAS_PROC:
        return _exists(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _exists(pid)
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # field 3, the state: a zombie or dead process writes nothing
        return None
    return int(fields[19])  # field 22 of the whole line: starttime


def _exists(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0
    return 0


@cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "localhost"
