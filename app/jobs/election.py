"""Which process runs the training jobs: one at a time among those allowed to.

On one host (SQLite) it is the process holding the data dir's ``jobs.lock``, an flock the kernel
releases the moment its holder dies. Across hosts (PostgreSQL) it is the holder of the
``job-runner`` lease row, renewed every half second for ``LEASE_SECONDS``: a runner that dies, or
loses the database, is replaced once its lease has expired, by the database's clock.
"""

from __future__ import annotations

import fcntl
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import or_, update

from app.database import Database
from app.schema import leases

logger = logging.getLogger("seqlab.jobs")
RUNNER_LEASE = "job-runner"
# Long against a renewal every 0.5 s (a busy process, a slow database), short against the time
# a job waits when its runner's host dies.
LEASE_SECONDS = 10.0


class RunnerElection(Protocol):
    def acquire(self) -> bool:
        """Take the role, or keep it: True while this process holds it."""
        ...

    def release(self) -> None:
        """Give the role up (a clean stop), so another process takes it at once."""
        ...


class FileElection:
    """The flock on the data dir's ``jobs.lock``: processes of one host."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def acquire(self) -> bool:
        if self._handle is not None:
            return True
        handle = open(self.path, "a+b")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle  # released by the kernel when this process ends
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class DatabaseElection:
    """A lease row in the shared database (PostgreSQL): processes of any host."""

    def __init__(
        self,
        database: Database,
        holder: str,
        name: str = RUNNER_LEASE,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.database = database
        self.holder = holder
        self.name = name
        self.lease_seconds = lease_seconds
        # Until when (this process's monotonic clock) the lease is surely still ours: a renewal
        # that fails before then is tried again; after, the role is given up.
        self._surely_held_until = 0.0

    def acquire(self) -> bool:
        """Renew the lease when it is ours, take it when it has expired; in one transaction,
        so of two processes taking an expired lease at once, one gets it. A database out of
        reach raises while the lease may still be ours, and gives the role up after."""
        asked_at = time.monotonic()
        try:
            taken = self._take_or_renew()
        except Exception:
            if time.monotonic() < self._surely_held_until:
                raise
            logger.exception("the %s lease could not be renewed in time", self.name)
            return False
        # A margin for the clocks' rates and the transaction's own time.
        self._surely_held_until = asked_at + 0.8 * self.lease_seconds if taken else 0.0
        return taken

    def _take_or_renew(self) -> bool:
        now = self.database.now()
        with self.database.transaction() as connection:
            connection.execute(
                self.database.insert(leases)
                .values(name=self.name, holder=self.holder, expires_at=now + self.lease_seconds)
                .on_conflict_do_nothing(index_elements=[leases.c.name])
            )
            taken = connection.execute(
                update(leases)
                .where(
                    leases.c.name == self.name,
                    or_(leases.c.holder == self.holder, leases.c.expires_at < now),
                )
                .values(holder=self.holder, expires_at=now + self.lease_seconds)
            ).rowcount
        return taken > 0

    def release(self) -> None:
        try:
            self.database.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.holder == self.holder)
                .values(expires_at=0.0)
            )
        except Exception:  # the database is gone: the lease expires by itself
            logger.warning("could not release the %s lease", self.name, exc_info=True)
