"""Replicas learn of each other's registry changes at once: PostgreSQL's LISTEN/NOTIFY.

A version becoming ready and a model's deletion notify :data:`app.database.REGISTRY_CHANNEL`
with the model's name when they commit (:class:`app.model_index.ModelIndex`). Each replica holds
one connection listening there and syncs the named models within a fraction of a second. After
a (re)connection it syncs everything once: what was notified while it was away is not replayed.
With SQLite there is no such channel and the registry's poll does the same, every
``SEQLAB_REGISTRY_SYNC_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from sqlalchemy.engine import make_url

from app.database import POSTGRESQL_CONNECTION, REGISTRY_CHANNEL

logger = logging.getLogger("seqlab.registry")
# How often the listener checks that it should stop, and how long after a first notification
# it gathers the others of a burst (which then syncs once).
WAIT_SECONDS = 0.5
GATHER_SECONDS = 0.02
RECONNECT_SECONDS = 1.0


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg connects to it (no ``+psycopg``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class RegistryListener:
    """One thread, one connection: calls ``on_change(names)`` for the models notified, and
    ``on_change(None)`` (everything) after each (re)connection."""

    def __init__(self, url: str, on_change: Callable[[Iterable[str] | None], None]) -> None:
        self._url = libpq_url(url)
        self._on_change = on_change
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seqlab-listen", daemon=True)
        self.notifications = 0  # received, for /info and the tests

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(WAIT_SECONDS * 4)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
            except Exception:  # the database restarted or is out of reach: again, soon
                logger.warning("listening for registry changes failed; reconnecting", exc_info=True)
                self._stopped.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        import psycopg  # only a service on PostgreSQL listens

        # Keepalives and a TCP timeout: a half-open connection (a failover, a dropped NAT entry)
        # fails within seconds and is made again, instead of listening to nothing for good.
        with psycopg.connect(self._url, autocommit=True, **POSTGRESQL_CONNECTION) as connection:
            connection.execute(f"LISTEN {REGISTRY_CHANNEL}")
            self._on_change(None)  # what changed while nobody listened
            while not self._stopped.is_set():
                first = list(connection.notifies(timeout=WAIT_SECONDS, stop_after=1))
                if not first:
                    continue
                burst = [*first, *connection.notifies(timeout=GATHER_SECONDS)]
                self.notifications += len(burst)
                self._on_change({notification.payload for notification in burst})
