"""Which process runs the training jobs: one at a time among those allowed to.

On one host (SQLite) it is the process holding the data dir's ``jobs.lock``, an flock the kernel
releases the moment its holder dies. Across hosts (PostgreSQL) it is the holder of the
``job-runner`` lease row, renewed every half second for ``LEASE_SECONDS`` by a thread of its own
on a connection of its own (requests never delay it, a statement never hangs it): a runner that
dies, or loses the database, is replaced once its lease has expired, by the database's clock.
The holder knows by its own monotonic clock until when the lease is surely still its own
(:meth:`DatabaseElection.held`), and gives the role up before another process can take it.
"""

from __future__ import annotations

import fcntl
import logging
import threading
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
RENEW_SECONDS = 0.5


class RunnerElection(Protocol):
    def acquire(self) -> bool:
        """Take the role, or keep it: True while this process holds it."""
        ...

    def held(self) -> bool:
        """Whether the role is surely still this process's (no I/O: ask it before an act only
        the runner may do)."""
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

    def held(self) -> bool:
        return self._handle is not None

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
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        self.database = database
        self.renew_seconds = renew_seconds
        self.holder = holder
        self.name = name
        self.lease_seconds = lease_seconds
        # Its own connection: a statement gives up after a second, so a renewal never waits
        # behind requests for a pooled connection nor hangs on a database out of reach.
        self._connection = database.dedicated(statement_timeout_ms=1000)
        # Until when (this process's monotonic clock) the lease is surely still ours.
        self._surely_held_until = 0.0  # one float, written whole by one thread at a time
        self._renewer: threading.Thread | None = None
        self._stopped = threading.Event()

    def held(self) -> bool:
        return time.monotonic() < self._surely_held_until

    def acquire(self) -> bool:
        """Take the lease when it has expired (or is ours): in one transaction, so of two
        processes taking an expired lease at once, one gets it. Once taken, a thread renews it
        every ``RENEW_SECONDS``; this then answers from :meth:`held`, without I/O."""
        if self._renewer is not None and self._renewer.is_alive():
            return self.held()
        if not self._renew():
            return False
        self._stopped = threading.Event()
        self._renewer = threading.Thread(target=self._renew_forever, name="seqlab-lease")
        self._renewer.daemon = True
        self._renewer.start()
        return self.held()

    def _renew_forever(self) -> None:
        while not self._stopped.wait(self.renew_seconds):
            if not self._renew() and not self.held():
                logger.error("the %s lease is no longer this process's", self.name)
                return

    def _renew(self) -> bool:
        asked_at = time.monotonic()
        try:
            taken = self._take_or_renew()
        except Exception as error:  # out of reach: held() says for how much longer it is ours
            logger.warning("could not take or renew the %s lease: %s", self.name, error)
            return False
        # Measured from before the transaction, with a margin for the clocks' rates.
        self._surely_held_until = asked_at + 0.8 * self.lease_seconds if taken else 0.0
        return taken

    def _take_or_renew(self) -> bool:
        """One statement (no transaction left open between two, its row locked, should the
        connection go silent): insert the lease, or take it over when ours or expired."""
        now = self._connection.now()
        statement = self._connection.insert(leases).values(
            name=self.name, holder=self.holder, expires_at=now + self.lease_seconds
        )
        statement = statement.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={"holder": self.holder, "expires_at": now + self.lease_seconds},
            where=or_(leases.c.holder == self.holder, leases.c.expires_at < now),
        ).returning(leases.c.holder)
        with self._connection.transaction() as connection:
            return connection.execute(statement).first() is not None

    def release(self) -> None:
        self._stopped.set()
        if self._renewer is not None:
            self._renewer.join(5)
            self._renewer = None
        self._surely_held_until = 0.0
        try:
            self._connection.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.holder == self.holder)
                .values(expires_at=0.0)
            )
        except Exception:  # the database is gone: the lease expires by itself
            logger.warning("could not release the %s lease", self.name, exc_info=True)
        finally:
            if self._connection.engine is not self.database.engine:
                self._connection.engine.dispose()
