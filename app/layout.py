"""The data directory's layout: the one place that names the files and folders under it.

::

    registry.sqlite3      the index of models and versions, job records, corpora metadata
    models/<name>/v<N>/   one immutable checkpoint per version
    corpora/<id>.txt      uploaded training texts
    jobs/<id>/            a job's prepared data and its worker's checkpoint
    jobs.lock             held by the one process that runs training jobs (flock)
    cache/jieba/          jieba's dictionary cache
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "registry.sqlite3"

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
