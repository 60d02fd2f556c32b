"""The tables of the service's one database (SQLite or PostgreSQL), as SQLAlchemy Core sees them.

The stores query through these; the migrations under ``app/migrations`` make them, and each
change to a table here comes with a migration there. Timestamps are ISO 8601 UTC text and JSON
documents are text on both engines, so a row reads the same from either.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)

metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("name", Text, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    # How often each model was asked for, so a restart preloads the most used first.
    Column("uses", Integer, nullable=False, server_default=text("0")),
)

versions = Table(
    "versions",
    metadata,
    Column(
        "name",
        Text,
        ForeignKey("models.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("status", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("metrics", Text, nullable=False, server_default=text("'{}'")),
    Column("source", Text, nullable=False, server_default=text("'{}'")),
    # A pending version's writer (app.ownership.Owner as JSON) and its lease.
    Column("writer", Text),
    Column("lease_until", Text),
    CheckConstraint("status IN ('pending', 'ready')", name="versions_status"),
)

corpora = Table(
    "corpora",
    metadata,
    Column("id", Text, primary_key=True),
    Column("filename", Text),
    Column("bytes", Integer, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("chars", Integer, nullable=False),
    Column("created_at", Text, nullable=False),
)

JOB_STATUSES = ("queued", "starting", "running", "succeeded", "failed", "cancelled")

jobs = Table(
    "jobs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("model", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("create_model", Integer, nullable=False),
    Column("base_version", Integer),
    Column("version", Integer),
    Column("settings", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("spec", Text, nullable=False),
    Column("progress", Text, nullable=False, server_default=text("'{}'")),
    Column("metrics", Text, nullable=False, server_default=text("'{}'")),
    Column("error", Text),
    Column("created_at", Text, nullable=False),
    Column("started_at", Text),
    Column("finished_at", Text),
    Column("restarts", Integer, nullable=False, server_default=text("0")),
    Column("interruptions", Integer, nullable=False, server_default=text("0")),
    Column("interrupted", Text),
    Column("resumed_from_step", Integer),
    # Other processes read a job's changes (revision) here, and ask the one that runs it to
    # cancel it (cancel_requested).
    Column("revision", Integer, nullable=False, server_default=text("0")),
    Column("cancel_requested", Integer, nullable=False, server_default=text("0")),
    # The process that claimed the job (app.ownership.Owner's token); only it may write the row
    # until the job ends or goes back to the queue (a fence against a runner that lost its
    # lease but does not know it yet).
    Column("runner", Text),
    CheckConstraint(
        "status IN ({})".format(", ".join(f"'{status}'" for status in JOB_STATUSES)),
        name="jobs_status",
    ),
)
Index("jobs_by_model", jobs.c.model, jobs.c.created_at)

# Named leases between processes that share the database: ``job-runner`` is held by the one
# process that runs training jobs (PostgreSQL; with SQLite an flock in the data dir does it).
# ``expires_at`` is seconds since the epoch by the database's clock, so hosts' clocks may differ.
leases = Table(
    "leases",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
)
