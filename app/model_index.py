"""The registry's index: which models and versions exist, and in which state.

A version row is inserted as ``pending`` before its files are written and flipped to
``ready`` after they are complete and loaded; the flip is the commit point. A pending row
records its writer (:class:`app.ownership.Owner`) and a lease; start-up sweeps a pending
version with its files only when its writer is gone (:func:`app.ownership.writer_gone`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, desc, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.database import REGISTRY_CHANNEL, Database, utc_now
from app.errors import ConflictError, NotFoundError
from app.ownership import Owner, lease_until
from app.schema import models, versions


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
    """Which models and versions exist, and in which state (pending or ready).

    With PostgreSQL, a version becoming ready and a model's deletion notify every replica
    (:data:`app.database.REGISTRY_CHANNEL`, the model's name as payload) when they commit.
    """

    def __init__(self, target: Path | str | Database) -> None:
        self._database = target if isinstance(target, Database) else Database(target)

    def close(self) -> None:
        self._database.close()

    def model(self, name: str) -> ModelRow | None:
        row = self._database.fetch_one(select(models).where(models.c.name == name))
        return ModelRow(**row) if row else None

    def models(self) -> list[ModelRow]:
        rows = self._database.fetch_all(select(models).order_by(models.c.name))
        return [ModelRow(**row) for row in rows]

    def most_used(self) -> list[str]:
        """Model names, the most used first (then the most recently updated)."""
        rows = self._database.fetch_all(
            select(models.c.name).order_by(
                desc(models.c.uses), desc(models.c.updated_at), models.c.name
            )
        )
        return [row["name"] for row in rows]

    def add_uses(self, uses: dict[str, int]) -> None:
        """Add to the models' use counts (a deleted model's are dropped)."""
        if not uses:
            return
        with self._database.transaction() as connection:
            for name, count in sorted(uses.items()):  # one order: no deadlock between replicas
                connection.execute(
                    update(models).where(models.c.name == name).values(uses=models.c.uses + count)
                )

    def versions(self, name: str, status: str | None = "ready") -> list[VersionRow]:
        query = select(versions).where(versions.c.name == name)
        if status is not None:
            query = query.where(versions.c.status == status)
        rows = self._database.fetch_all(query.order_by(versions.c.version))
        return [_version_row(row) for row in rows]

    def pending_versions(self) -> list[VersionRow]:
        rows = self._database.fetch_all(select(versions).where(versions.c.status == "pending"))
        return [_version_row(row) for row in rows]

    def reserve_version(self, name: str, *, create: bool, source: dict[str, Any]) -> int:
        """Insert a pending version owned by this process (and the model row when ``create``);
        return its number."""
        now = utc_now()
        writer = json.dumps(Owner.current().to_dict())
        try:
            with self._database.transaction() as connection:
                if create:
                    connection.execute(
                        insert(models).values(name=name, created_at=now, updated_at=now)
                    )
                else:  # its row locked: two replicas publishing at once number in turn
                    found = connection.execute(
                        select(models.c.name).where(models.c.name == name).with_for_update()
                    ).first()
                    if found is None:  # deleted, by another replica, since it was looked up
                        raise NotFoundError(f"model {name!r} does not exist", model=name)
                latest = connection.execute(
                    select(func.coalesce(func.max(versions.c.version), 0)).where(
                        versions.c.name == name
                    )
                ).scalar_one()
                version = latest + 1
                connection.execute(
                    insert(versions).values(
                        name=name,
                        version=version,
                        status="pending",
                        created_at=now,
                        source=json.dumps(source, ensure_ascii=False),
                        writer=writer,
                        lease_until=lease_until(),
                    )
                )
        except IntegrityError:  # another process created it first (or the model is gone)
            if create:
                raise ConflictError(f"model {name!r} already exists", model=name) from None
            raise
        return version

    def renew_lease(self, name: str, version: int) -> bool:
        """Extend a pending version's lease; False when the row is gone (swept)."""
        changed = self._database.execute(
            update(versions)
            .where(
                versions.c.name == name,
                versions.c.version == version,
                versions.c.status == "pending",
            )
            .values(lease_until=lease_until())
        )
        return changed > 0

    def mark_ready(self, name: str, version: int, metrics: dict[str, Any]) -> VersionRow:
        now = utc_now()
        this_version = (versions.c.name == name, versions.c.version == version)
        with self._database.transaction() as connection:
            updated = connection.execute(
                update(versions)
                .where(*this_version, versions.c.status == "pending")
                .values(
                    status="ready",
                    metrics=json.dumps(metrics, ensure_ascii=False),
                    writer=None,
                    lease_until=None,
                )
            ).rowcount
            if updated == 0:
                raise VersionLostError(
                    f"version {name}@{version} was swept by another process while it was being "
                    "written (a service starting on this data dir took its writer for gone); "
                    "nothing was published: run the training again",
                    model=name,
                    version=version,
                )
            connection.execute(update(models).where(models.c.name == name).values(updated_at=now))
            row = connection.execute(select(versions).where(*this_version)).mappings().one()
            self._database.notify(connection, REGISTRY_CHANNEL, name)
        return _version_row(row)

    def discard_version(self, name: str, version: int) -> None:
        """Forget a version that never became ready; drop the model if nothing else is left.
        A ready version is never discarded here: other replicas may be serving it already."""
        with self._database.transaction() as connection:
            connection.execute(
                delete(versions).where(
                    versions.c.name == name,
                    versions.c.version == version,
                    versions.c.status == "pending",
                )
            )
            remaining = connection.execute(
                select(func.count()).select_from(versions).where(versions.c.name == name)
            ).scalar_one()
            if remaining == 0:
                connection.execute(delete(models).where(models.c.name == name))

    def delete_model(self, name: str) -> bool:
        with self._database.transaction() as connection:
            deleted = connection.execute(delete(models).where(models.c.name == name)).rowcount
            if deleted:
                self._database.notify(connection, REGISTRY_CHANNEL, name)
        return deleted > 0


def _version_row(row: Any) -> VersionRow:
    data = dict(row)
    data["metrics"] = json.loads(data["metrics"])
    data["source"] = json.loads(data["source"])
    writer = data.get("writer")
    data["writer"] = Owner.from_dict(json.loads(writer)) if writer else None
    return VersionRow(**data)
