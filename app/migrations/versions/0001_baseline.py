"""The schema of the last release before Alembic, made or completed in place.

A new database gets the tables as that release left them. A database made by that release, or an
older one, has no Alembic version: its tables are kept with every row, the columns added over the
releases are added where missing, and a jobs table made before the ``starting`` status is
rebuilt (SQLite cannot alter a CHECK).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JOB_STATUSES = "'queued', 'starting', 'running', 'succeeded', 'failed', 'cancelled'"


def _models() -> list[sa.Column]:
    return [
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False, server_default=sa.text("0")),
    ]


def _versions() -> list[sa.Column | sa.Constraint]:
    return [
        sa.Column(
            "name", sa.Text, sa.ForeignKey("models.name", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("source", sa.Text, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("writer", sa.Text),
        sa.Column("lease_until", sa.Text),
        sa.CheckConstraint("status IN ('pending', 'ready')", name="versions_status"),
    ]


def _corpora() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("filename", sa.Text),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("lines", sa.Integer, nullable=False),
        sa.Column("chars", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
    ]


def _jobs() -> list[sa.Column | sa.Constraint]:
    return [
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("create_model", sa.Integer, nullable=False),
        sa.Column("base_version", sa.Integer),
        sa.Column("version", sa.Integer),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("progress", sa.Text, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("metrics", sa.Text, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("started_at", sa.Text),
        sa.Column("finished_at", sa.Text),
        *_jobs_added(),
        sa.CheckConstraint(f"status IN ({JOB_STATUSES})", name="jobs_status"),
    ]


def _jobs_added() -> list[sa.Column]:
    """The jobs columns added after the table's first release (resuming; several processes)."""
    return [
        sa.Column("restarts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("interruptions", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("interrupted", sa.Text),
        sa.Column("resumed_from_step", sa.Integer),
        sa.Column("revision", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("cancel_requested", sa.Integer, nullable=False, server_default=sa.text("0")),
    ]


# Columns added to the registry's tables after their first release.
ADDED = {
    "models": lambda: [c for c in _models() if c.name == "uses"],
    "versions": lambda: [
        c for c in _versions() if isinstance(c, sa.Column) and c.name in ("writer", "lease_until")
    ],
    "jobs": _jobs_added,
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, columns in (
        ("models", _models),
        ("versions", _versions),
        ("corpora", _corpora),
        ("jobs", _jobs),
    ):
        if name not in existing:
            op.create_table(name, *columns())
            continue
        if name == "jobs":
            _allow_starting()
        present = {column["name"] for column in inspector.get_columns(name)}
        for column in ADDED.get(name, list)():
            if column.name not in present:
                op.add_column(name, column)
    if "jobs" not in existing or not any(
        index["name"] == "jobs_by_model" for index in inspector.get_indexes("jobs")
    ):
        op.create_index("jobs_by_model", "jobs", ["model", "created_at"])


def _allow_starting() -> None:
    """A SQLite jobs table made before the ``starting`` status has a CHECK that refuses it:
    rebuilt with every row (the columns it has; those it lacks are added after)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'jobs'").scalar()
    if sql is None or "'starting'" in sql:
        return
    columns = [row[1] for row in bind.exec_driver_sql("PRAGMA table_info(jobs)")]
    present = set(columns)
    rebuilt = [
        c
        for c in _jobs()
        if not isinstance(c, sa.Column) or c.name in present or c.name not in _added_names()
    ]
    op.create_table("jobs_rebuilt", *rebuilt)
    listed = ", ".join(columns)
    bind.exec_driver_sql(f"INSERT INTO jobs_rebuilt ({listed}) SELECT {listed} FROM jobs")
    op.drop_table("jobs")
    op.rename_table("jobs_rebuilt", "jobs")


def _added_names() -> set[str]:
    return {column.name for column in _jobs_added()}
