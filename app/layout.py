"""The data directory's layout: the one place that names the files and folders under it.

::

    registry.sqlite3      the index of models and versions, job records, corpora metadata
                          (unless SEQLAB_DATABASE_URL names a PostgreSQL database)
    registry.sqlite3.migrate.lock   taken while a process migrates the SQLite schema
    models/<name>/v<N>/   one immutable checkpoint per version
    corpora/<id>.txt      uploaded training texts
    jobs/<id>/            a job's prepared data and its worker's checkpoint
    jobs.lock             held by the one process that runs training jobs (flock; with
                          PostgreSQL a lease row in the database instead)
    cache/jieba/          jieba's dictionary cache
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    root: Path
    # SEQLAB_DATABASE_URL: a PostgreSQL database instead of the SQLite file under root.
    database_url: str | None = None

    @property
    def sqlite_file(self) -> Path:
        return self.root / "registry.sqlite3"

    @property
    def database(self) -> Path | str:
        """What :class:`app.database.Database` opens: the URL when one is set, else the file."""
        return self.database_url or self.sqlite_file

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def corpora(self) -> Path:
        return self.root / "corpora"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def job_runner_lock(self) -> Path:
        return self.root / "jobs.lock"

    @property
    def jieba_cache(self) -> Path:
        return self.root / "cache" / "jieba"
