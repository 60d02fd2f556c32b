"""The registry's SQLite index: which models and versions exist, and in which state.

A version row is inserted as ``pending`` before its files are written and flipped to
``ready`` after they are complete and loaded; the flip is the commit point. A pending row
records its writer (:class:`app.ownership.Owner`) and a lease; start-up sweeps a pending
version with its files only when its writer is gone (:func:`app.ownership.writer_gone`).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.database import Database, utc_now
from app.errors import ConflictError
from app.ownership import Owner, lease_until

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ready')),
    created_at TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL DEFAULT '{}',
    writer TEXT,
    lease_until TEXT,
    PRIMARY KEY (name, version)
);
"""
# Columns added after the first release: an index made by it gains them (NULL: no owner).
ADDED_COLUMNS = {
    "versions": {"writer": "TEXT", "lease_until": "TEXT"},
    # How often each model was asked for, so a restart preloads the most used first.
    "models": {"uses": "INTEGER NOT NULL DEFAULT 0"},
}


class VersionLostError(ConflictError):
    """A version being written was swept by another process (its writer looked gone)."""


@dataclass(frozen=True)
class VersionRow:
    name: str
    version: int
    status: str
    created_at: str
    metrics: dict[str, Any]
    source: dict[str, Any]
    writer: Owner | None = None
    lease_until: str | None = None


@dataclass(frozen=True)
class ModelRow:
    name: str
    created_at: str
    updated_at: str
    uses: int = 0


class ModelIndex:
    """Which models and versions exist, and in which state (pending or ready)."""

    def __init__(self, path: Path) -> None:
        self._database = Database(path, SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        with self._database.transaction() as connection:
            for table, columns in ADDED_COLUMNS.items():
                present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
                for column, kind in columns.items():
                    if column not in present:
                        connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self._database.close()

    def model(self, name: str) -> ModelRow | None:
        row = self._database.fetch_one("SELECT * FROM models WHERE name = ?", (name,))
        return ModelRow(**dict(row)) if row else None

    def models(self) -> list[ModelRow]:
        rows = self._database.fetch_all("SELECT * FROM models ORDER BY name")
        return [ModelRow(**dict(row)) for row in rows]

    def most_used(self) -> list[str]:
        """Model names, the most used first (then the most recently updated)."""
        rows = self._database.fetch_all(
            "SELECT name FROM models ORDER BY uses DESC, updated_at DESC, name"
        )
        return [row["name"] for row in rows]

    def add_uses(self, uses: dict[str, int]) -> None:
        """Add to the models' use counts (a deleted model's are dropped)."""
        with self._database.transaction() as connection:
            connection.executemany(
                "UPDATE models SET uses = uses + ? WHERE name = ?",
                [(count, name) for name, count in uses.items()],
            )

    def versions(self, name: str, status: str | None = "ready") -> list[VersionRow]:
        query = "SELECT * FROM versions WHERE name = ?"
        parameters: tuple[Any, ...] = (name,)
        if status is not None:
            query += " AND status = ?"
            parameters += (status,)
        rows = self._database.fetch_all(query + " ORDER BY version", parameters)
        return [_version_row(row) for row in rows]

    def pending_versions(self) -> list[VersionRow]:
        rows = self._database.fetch_all("SELECT * FROM versions WHERE status = 'pending'")
        return [_version_row(row) for row in rows]

    def reserve_version(self, name: str, *, create: bool, source: dict[str, Any]) -> int:
        """Insert a pending version owned by this process (and the model row when ``create``);
        return its number."""
        now = utc_now()
        writer = json.dumps(Owner.current().to_dict())
        with self._database.transaction() as connection:
            if create:
                try:
                    connection.execute(
                        "INSERT INTO models (name, created_at, updated_at) VALUES (?, ?, ?)",
                        (name, now, now),
                    )
                except sqlite3.IntegrityError:  # another process created it first
                    raise ConflictError(f"model {name!r} already exists", model=name) from None
            (latest,) = connection.execute(
                "SELECT COALESCE(MAX(version), 0) FROM versions WHERE name = ?", (name,)
            ).fetchone()
            version = latest + 1
            connection.execute(
                "INSERT INTO versions "
                "(name, version, status, created_at, source, writer, lease_until) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?)",
                (name, version, now, json.dumps(source, ensure_ascii=False), writer, lease_until()),
            )
        return version

    def renew_lease(self, name: str, version: int) -> bool:
        """Extend a pending version's lease; False when the row is gone (swept)."""
        changed = self._database.execute(
            "UPDATE versions SET lease_until = ? WHERE name = ? AND version = ? "
            "AND status = 'pending'",
            (lease_until(), name, version),
        )
        return changed > 0

    def mark_ready(self, name: str, version: int, metrics: dict[str, Any]) -> VersionRow:
        now = utc_now()
        with self._database.transaction() as connection:
            updated = connection.execute(
                "UPDATE versions SET status = 'ready', metrics = ?, writer = NULL, "
                "lease_until = NULL WHERE name = ? AND version = ? AND status = 'pending'",
                (json.dumps(metrics, ensure_ascii=False), name, version),
            ).rowcount
            if updated == 0:
                raise VersionLostError(
                    f"version {name}@{version} was swept by another process while it was being "
                    "written (a service starting on this data dir took its writer for gone); "
                    "nothing was published: run the training again",
                    model=name,
                    version=version,
                )
            connection.execute("UPDATE models SET updated_at = ? WHERE name = ?", (now, name))
            row = connection.execute(
                "SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        return _version_row(row)

    def discard_version(self, name: str, version: int) -> None:
        """Forget a version that never became ready; drop the model if nothing else is left."""
        with self._database.transaction() as connection:
            connection.execute(
                "DELETE FROM versions WHERE name = ? AND version = ?", (name, version)
            )
            (remaining,) = connection.execute(
                "SELECT COUNT(*) FROM versions WHERE name = ?", (name,)
            ).fetchone()
            if remaining == 0:
                connection.execute("DELETE FROM models WHERE name = ?", (name,))

    def delete_model(self, name: str) -> bool:
        with self._database.transaction() as connection:
            deleted = connection.execute("DELETE FROM models WHERE name = ?", (name,)).rowcount
        return deleted > 0


def _version_row(row: sqlite3.Row) -> VersionRow:
    data = dict(row)
    data["metrics"] = json.loads(data["metrics"])
    data["source"] = json.loads(data["source"])
    writer = data.get("writer")
    data["writer"] = Owner.from_dict(json.loads(writer)) if writer else None
    return VersionRow(**data)
