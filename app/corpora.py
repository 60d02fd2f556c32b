"""Uploaded training corpora: UTF-8 text files under the data dir, indexed in the database."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, insert, select

from app.database import Database, utc_now
from app.errors import InvalidInputError, NotFoundError
from app.ownership import Owner, lease_of, writer_gone
from app.schema import corpora
from models.checkpoint import fsync_directory

PARTIAL_SUFFIX = ".partial"


def read_lines(text: str) -> list[str]:
    """The non-blank lines of a corpus: each is one text to train on."""
    return [line for line in text.splitlines() if line.strip()]


class CorpusNotFoundError(NotFoundError):
    pass


@dataclass(frozen=True)
class Corpus:
    id: str
    filename: str | None
    bytes: int
    lines: int
    chars: int
    created_at: str


class CorpusStore:
    def __init__(self, directory: Path, database: Path | str | Database) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._database = database if isinstance(database, Database) else Database(database)
        self._sweep_partial_files()

    def _sweep_partial_files(self) -> None:
        """Remove half-written uploads whose writer is gone (``<id>.<owner>.partial``; a bare
        ``<id>.partial`` is from a release that named no owner)."""
        for path in self.directory.glob(f"*{PARTIAL_SUFFIX}"):
            parts = path.name[: -len(PARTIAL_SUFFIX)].split(".", 1)
            owner = Owner.from_token(parts[1]) if len(parts) == 2 else None
            if writer_gone(owner, lease_of(path)):
                path.unlink(missing_ok=True)

    def close(self) -> None:
        self._database.close()

    def add(self, data: bytes, filename: str | None = None) -> Corpus:
        """Validate UTF-8, write the file atomically, then index it."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInputError(
                f"the corpus is not valid UTF-8: byte {error.start} cannot be decoded",
                field="body",
            ) from error
        if text.startswith("\ufeff"):
            text = text[1:]  # a byte-order mark is not text
        if not text.strip():
            raise InvalidInputError("the corpus is empty", field="body")
        corpus = Corpus(
            id=secrets.token_hex(8),
            filename=filename,
            bytes=len(data),
            lines=text.count("\n") + (0 if text.endswith("\n") else 1),
            chars=len(text),
            created_at=utc_now(),
        )
        path = self.path(corpus.id)
        # Named for its writer: a start-up sweeps it only when that process is gone.
        staging = self.directory / f"{corpus.id}.{Owner.current().token}{PARTIAL_SUFFIX}"
        try:
            with open(staging, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, path)
        except BaseException:
            staging.unlink(missing_ok=True)  # a full disk leaves nothing half-written
            raise
        fsync_directory(self.directory)
        try:
            self._database.execute(insert(corpora).values(**vars(corpus)))
        except BaseException:
            path.unlink(missing_ok=True)  # not indexed: not kept
            raise
        return corpus

    def get(self, corpus_id: str) -> Corpus:
        row = self._database.fetch_one(select(corpora).where(corpora.c.id == corpus_id))
        if row is None:
            raise CorpusNotFoundError(f"corpus {corpus_id!r} does not exist", corpus_id=corpus_id)
        return Corpus(**row)

    def list(self) -> list[Corpus]:
        rows = self._database.fetch_all(select(corpora).order_by(corpora.c.created_at))
        return [Corpus(**row) for row in rows]

    def read_text(self, corpus_id: str) -> str:
        self.get(corpus_id)
        return self.path(corpus_id).read_text(encoding="utf-8")

    def delete(self, corpus_id: str) -> None:
        self.get(corpus_id)
        self._database.execute(delete(corpora).where(corpora.c.id == corpus_id))
        self.path(corpus_id).unlink(missing_ok=True)

    def path(self, corpus_id: str) -> Path:
        return self.directory / f"{corpus_id}.txt"
