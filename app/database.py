"""The service's one database: the SQLite file in the data dir, or PostgreSQL for many replicas.

``SEQLAB_DATABASE_URL`` unset means the SQLite file in the data dir (:mod:`app.layout`);
``postgresql://…`` puts the model index, the jobs and the corpora's metadata in PostgreSQL.
Both are reached through SQLAlchemy Core (the stores build their statements from
:mod:`app.schema`), and both are brought to the current schema by Alembic when a process first
opens them (:func:`migrate`), under a lock so that processes starting at once migrate once.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Table,
    create_engine,
    event,
    func,
    literal_column,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.sql.elements import ColumnElement

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_lock key for migrations: any constant the service alone uses ("seqlab" in ASCII).
MIGRATION_LOCK_KEY = 0x7365716C6162
# libpq settings of every PostgreSQL connection: a database out of reach (a dropped network
# path, a failover) is an error within seconds, never a call that hangs until TCP gives up
# (~15 min): the job runner must learn in time that it can no longer renew its lease.
POSTGRESQL_CONNECTION: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms unacknowledged before the connection is dropped
}
# And on the server's side: a transaction whose client went silent between two statements (its
# rows locked: a job's, the lease's) is ended after 5 s instead of blocking a takeover for
# hours; the server probes a silent client too.
SERVER_OPTIONS = (
    "-c idle_in_transaction_session_timeout=5000 -c tcp_keepalives_idle=5 "
    "-c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
)
# The channel a publish or a delete notifies on (PostgreSQL); every replica listens.
REGISTRY_CHANNEL = "seqlab_registry"


def utc_now() -> str:
    """The timestamp format of every row: ISO 8601, UTC, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def database_url(target: Path | str) -> str:
    """A SQLAlchemy URL for a SQLite file path or a database URL.

    ``postgresql://`` and ``postgres://`` mean psycopg 3 (SQLAlchemy's default would be
    psycopg2, which is not installed).
    """
    if isinstance(target, Path):
        return f"sqlite:///{target}"
    for prefix in ("postgresql://", "postgres://"):
        if target.startswith(prefix):
            return "postgresql+psycopg://" + target[len(prefix) :]
    return target


def check_database_url(url: str) -> str:
    """The URL if the service can use it, else a ``ValueError`` saying why (settings turn it
    into one clear line at start-up)."""
    try:
        parsed = make_url(database_url(url))
    except ArgumentError:
        raise ValueError(
            f"SEQLAB_DATABASE_URL {url!r} is not a database URL: "
            "use postgresql://user:password@host:5432/name (or leave it unset for SQLite)"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"SEQLAB_DATABASE_URL {url!r}: only sqlite:/// and postgresql:// are supported"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise ValueError(
            f"SEQLAB_DATABASE_URL {url!r}: PostgreSQL is reached through psycopg 3: "
            "write postgresql://… or postgresql+psycopg://…"
        )
    return url


def redacted(url: str) -> str:
    """The URL without its password, for logs and /info."""
    return make_url(database_url(url)).render_as_string(hide_password=True)


class Database:
    """A store's way into the database, safe to use from many threads (a connection pool).

    :meth:`execute`, :meth:`fetch_all` and :meth:`fetch_one` each run in a transaction of their
    own; :meth:`transaction` groups statements that commit together. With SQLite every commit is
    durable (WAL, ``synchronous=FULL``), a write transaction takes the write lock at once, and
    a writer waits up to 30 s for another process (``seqlab train``, a second rank) to finish.
    """

    def __init__(self, target: Path | str) -> None:
        url = database_url(target)
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            path = Path(make_url(url).database or "")
            path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}
            )
            _durable_sqlite(self.engine)
        else:
            self.engine = _postgresql_engine(url, pool_size=4, max_overflow=8)
        # Connected, and migrated, on first use: a service starts (and says why it is not
        # ready) even while its database is out of reach.
        self._migrated = False

    def dedicated(self, statement_timeout_ms: int) -> Database:
        """Another way into the same database: its own single connection, whose statements
        give up after ``statement_timeout_ms`` (PostgreSQL); for work that must not wait
        behind requests for a pooled connection, nor hang (the job runner's lease)."""
        self.migrate()
        other = Database.__new__(Database)
        other.url, other.dialect, other._migrated = self.url, self.dialect, True
        if self.is_postgresql:
            other.engine = _postgresql_engine(
                self.url,
                pool_size=1,
                max_overflow=0,
                options=f"-c statement_timeout={statement_timeout_ms}",
            )
        else:
            other.engine = self.engine
        return other

    def migrate(self) -> None:
        """Bring the database to the current schema now (:func:`migrate`)."""
        if not self._migrated:
            migrate(self)
            self._migrated = True

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    def execute(self, statement: Executable) -> int:
        """Run one statement in its own transaction; the number of rows an UPDATE or DELETE
        changed (psycopg counts none for an INSERT: use RETURNING there)."""
        with self.transaction() as connection:
            return connection.execute(statement).rowcount

    def fetch_all(self, query: Executable) -> list[RowMapping]:
        self.migrate()
        with self.engine.connect() as connection:
            return list(connection.execute(query).mappings())

    def fetch_one(self, query: Executable) -> RowMapping | None:
        self.migrate()
        with self.engine.connect() as connection:
            return connection.execute(query).mappings().first()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Statements that commit together or not at all (SQLite: the write lock taken at once)."""
        self.migrate()
        with self.engine.connect() as connection:
            connection = connection.execution_options(immediate=True)
            with connection.begin():
                yield connection

    def insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that can say what to do on a conflict (``on_conflict_do_update`` and
        ``…_do_nothing``, which both engines have with the same meaning)."""
        return (postgresql.insert if self.is_postgresql else sqlite.insert)(table)

    def notify(self, connection: Connection, channel: str, payload: str) -> None:
        """Tell every listener on ``channel`` when ``connection``'s transaction commits
        (PostgreSQL's NOTIFY; nothing with SQLite, whose readers poll)."""
        if self.is_postgresql:
            connection.execute(func.pg_notify(channel, payload).select())

    def now(self) -> ColumnElement[float]:
        """The database's clock in seconds since the epoch (leases compare against it, so the
        hosts that share the database need not agree on the time)."""
        if self.is_postgresql:
            return literal_column("extract(epoch from clock_timestamp())::float8")
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)")


def _postgresql_engine(url: str, pool_size: int, max_overflow: int, options: str = "") -> Engine:
    """A pool of PostgreSQL connections with the libpq and server settings above."""
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args={**POSTGRESQL_CONNECTION, "options": f"{SERVER_OPTIONS} {options}".strip()},
    )


def _durable_sqlite(engine: Engine) -> None:
    """WAL, durable commits, foreign keys; and the transactions ours to begin.

    pysqlite begins transactions itself and late; SQLAlchemy's documented recipe turns that off
    and emits BEGIN on its own ``begin`` (IMMEDIATE for a write transaction, so two writers never
    deadlock upgrading a read lock).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_migrated: set[str] = set()
_migrated_lock = threading.Lock()


def migrate(database: Database) -> None:
    """Bring the database to the current schema (Alembic ``upgrade head``), once per process.

    A database made by a release before Alembic has no version table: the first migration
    brings its tables to that release's latest shape, then the others follow. Processes that
    start at once take turns: an flock beside the SQLite file, a PostgreSQL advisory lock.
    """
    with _migrated_lock:
        if database.url in _migrated:
            return
        if database.is_postgresql:
            with database.engine.connect() as connection:
                connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
                try:
                    connection.commit()
                    _upgrade(connection)
                finally:
                    connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
                    connection.commit()
        else:
            path = Path(make_url(database.url).database or "")
            with open(path.with_name(path.name + ".migrate.lock"), "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                with database.engine.connect() as connection:
                    # A table rebuilt by a migration (SQLite copies it) must not cascade its
                    # deletion to the rows that reference it; the pragma works only outside a
                    # transaction, and is checked before the migration commits.
                    sqlite = connection.connection.driver_connection  # not through BEGIN
                    sqlite.execute("PRAGMA foreign_keys=OFF")
                    try:
                        _upgrade(connection.execution_options(immediate=True), check_keys=True)
                    finally:
                        sqlite.execute("PRAGMA foreign_keys=ON")
        _migrated.add(database.url)


def _upgrade(connection: Connection, check_keys: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    with connection.begin():  # every migration commits together, or none does
        command.upgrade(config, "head")
        if check_keys:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"a migration broke foreign keys: {broken[:5]}")


def schema_revision(database: Database) -> str | None:
    """The Alembic revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
