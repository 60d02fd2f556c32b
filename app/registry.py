"""The model registry, one concept: versions on disk and in the index, loaded on the device.

Its read side (latest and pinned versions, sync with other processes) and its write side
(publish, delete) live together because both hold the same two locks. The files are
where :class:`app.layout.DataLayout` says: ``models/<name>/v<version>/`` and the index.

Publishing a version writes its checkpoint atomically, loads it back from disk onto the
device, marks it ready in SQLite, and only then swaps the in-memory reference, so a reader
always holds one whole version. Served modules are read-only (eval, no gradients).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.layout import DataLayout
from app.model_index import ModelIndex, VersionLostError, VersionRow
from app.ownership import LEASE_SECONDS, Owner, lease_of, writer_gone
from app.tokenizers import TokenizerCache
from models.boundaries import end_id
from models.checkpoint import fsync_directory, load_checkpoint, save_checkpoint
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import Tokenizer, TokenizerConfig
from models.vocab import Vocab

logger = logging.getLogger("seqlab.registry")
STAGING_PREFIX = ".staging-"  # then the writer's Owner.token, "-" and a random suffix


class _LeaseKeeper:
    """Renews a pending version's lease every third of it, while a block writes it."""

    def __init__(self, index: ModelIndex, name: str, version: int) -> None:
        self._index, self._name, self._version = index, name, version
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="seqlab-lease", daemon=True)

    def _renew(self) -> None:
        while not self._done.wait(LEASE_SECONDS / 3):
            if not self._index.renew_lease(self._name, self._version):
                return  # swept: mark_ready will say so

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()


NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


class ModelNotFoundError(NotFoundError):
    pass


@dataclass(frozen=True)
class LoadedModel:
    """One whole version, ready to serve. Never mutated after it is published."""

    name: str
    version: int
    model: RNNLanguageModel
    vocab: Vocab
    tokenizer: Tokenizer
    created_at: str
    metrics: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> LanguageModelConfig:
        return self.model.config

    @property
    def tokenizer_config(self) -> TokenizerConfig:
        return self.tokenizer.config

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def eos_id(self) -> int | None:
        """The id that ends every text (``<eos>``), or None: then texts start from zeros."""
        return end_id(self.vocab.eos_id, self.tokenizer.config.boundary)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(f"model name {name!r} must match {NAME_PATTERN}", field="name")
    return name


class ModelRegistry:
    def __init__(
        self,
        layout: DataLayout,
        device: torch.device,
        tokenizers: TokenizerCache,
        older_versions_kept: int = 3,
    ) -> None:
        self.models_dir = layout.models
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.tokenizers = tokenizers
        self.index = ModelIndex(layout.database)
        self._older_versions_kept = older_versions_kept
        self._latest: dict[str, LoadedModel] = {}
        self._pinned: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._publish_lock = threading.Lock()
        self._read_lock = threading.Lock()

    # -- start-up -------------------------------------------------------------------------
    def load(self) -> None:
        """Sweep what gone writers left behind, then load the latest ready version of every
        model. A version another live process is writing (``seqlab train`` publishing) is left
        alone: :meth:`sync` picks it up once it is ready."""
        for row in self.index.pending_versions():
            if not writer_gone(row.writer, row.lease_until):
                logger.info(
                    "version %s@%s is being written by %s", row.name, row.version, row.writer
                )
                continue
            logger.warning("discarding interrupted version %s@%s", row.name, row.version)
            shutil.rmtree(self.path(row.name, row.version), ignore_errors=True)
            self.index.discard_version(row.name, row.version)
        known = {row.name for row in self.index.models()}
        for directory in self.models_dir.iterdir():
            if not directory.is_dir() or directory.name in known:
                continue
            if directory.name.startswith(STAGING_PREFIX):
                owner = Owner.from_token(directory.name[len(STAGING_PREFIX) :].rsplit("-", 1)[0])
                if not writer_gone(owner, lease_of(directory)):
                    continue  # another process is writing a checkpoint there
            shutil.rmtree(directory, ignore_errors=True)  # an interrupted deletion or write
        for name in sorted(known):
            versions = self.index.versions(name)
            if versions:
                self._latest[name] = self._load_version(versions[-1])

    def sync(self) -> list[str]:
        """Catch up with another process on the same data dir (``seqlab train``).

        Loads a newer ready version of any model, adds models that appeared, forgets models
        that were deleted; returns what changed. Versions another process is still writing
        are ``pending`` and are not seen.
        """
        changes: list[str] = []
        with self._publish_lock:
            known = {row.name for row in self.index.models()}
            for name in [name for name in self._latest if name not in known]:
                del self._latest[name]
                self._forget_pinned(name)
                changes.append(f"-{name}")
            for name in sorted(known):
                versions = self.index.versions(name)
                current = self._latest.get(name)
                if not versions:
                    continue
                latest = versions[-1]
                # The row of the version held, as the index has it now: gone, or another
                # created_at, when the model was deleted and created again since the last sync.
                held = next(
                    (row for row in versions if current and row.version == current.version), None
                )
                recreated = current is not None and (
                    held is None or held.created_at != current.created_at
                )
                if recreated:
                    self._forget_pinned(name)  # no pinned version of the old model holds
                if current is None or recreated or latest.version > current.version:
                    self._latest[name] = self._load_version(latest)
                    changes.append(f"{name}@{latest.version}")
        return changes

    def close(self) -> None:
        self.index.close()

    # -- reading --------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._latest)

    def __len__(self) -> int:
        return len(self._latest)

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        """The latest version of ``name``, or the pinned ``version``."""
        latest = self._latest.get(name)
        if latest is None:
            raise ModelNotFoundError(f"model {name!r} does not exist", model=name)
        if version is None or version == latest.version:
            return latest
        key = (name, version)
        with self._read_lock:
            cached = self._pinned.get(key)
            if cached is not None:
                self._pinned.move_to_end(key)
                return cached
        rows = [row for row in self.index.versions(name) if row.version == version]
        if not rows:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version} (latest is {latest.version})",
                model=name,
            )
        loaded = self._load_version(rows[0])
        with self._read_lock:
            self._pinned[key] = loaded
            while len(self._pinned) > self._older_versions_kept:
                self._pinned.popitem(last=False)
        return loaded

    def versions(self, name: str) -> list[VersionRow]:
        self.get(name)
        return self.index.versions(name)

    def timestamps(self, name: str) -> tuple[str, str]:
        row = self.index.model(name)
        if row is None:
            raise ModelNotFoundError(f"model {name!r} does not exist", model=name)
        return row.created_at, row.updated_at

    # -- writing --------------------------------------------------------------------------
    def publish(
        self,
        name: str,
        model: RNNLanguageModel,
        vocab: Vocab,
        tokenizer: TokenizerConfig,
        *,
        create: bool,
        metrics: dict[str, Any] | None = None,
        source: dict[str, Any] | None = None,
    ) -> LoadedModel:
        """Write, load and publish a new version; ``create`` makes version 1 of a new model."""
        validate_name(name)
        staging = Path(
            tempfile.mkdtemp(
                prefix=f"{STAGING_PREFIX}{Owner.current().token}-", dir=self.models_dir
            )
        )
        try:
            checkpoint = save_checkpoint(staging / "checkpoint", model, vocab, tokenizer)
            return self.publish_directory(
                name, checkpoint, create=create, metrics=metrics, source=source
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def publish_directory(
        self,
        name: str,
        checkpoint: Path,
        *,
        create: bool,
        metrics: dict[str, Any] | None = None,
        source: dict[str, Any] | None = None,
    ) -> LoadedModel:
        """Publish a complete checkpoint directory (same filesystem) as the next version.

        The index row is ``pending`` while the directory is moved in and loaded back; it
        becomes ``ready`` only then, and the in-memory reference is swapped last.
        """
        validate_name(name)
        with self._publish_lock:
            exists = name in self._latest
            if create and exists:
                raise ConflictError(f"model {name!r} already exists", model=name)
            if not create and not exists:
                raise ModelNotFoundError(f"model {name!r} does not exist", model=name)
            version = self.index.reserve_version(name, create=create, source=source or {})
            path = self.path(name, version)
            try:
                with _LeaseKeeper(self.index, name, version):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(checkpoint, path)
                    fsync_directory(path.parent)
                    row = self.index.mark_ready(name, version, metrics or {})
                loaded = self._load_version(row)
            except VersionLostError:
                shutil.rmtree(path, ignore_errors=True)  # ours, never published; the row is gone
                raise
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                self.index.discard_version(name, version)
                raise
            self._latest[name] = loaded  # the atomic swap readers see
            return loaded

    def delete(self, name: str) -> None:
        with self._publish_lock:
            if name not in self._latest:
                raise ModelNotFoundError(f"model {name!r} does not exist", model=name)
            self.index.delete_model(name)
            del self._latest[name]
            self._forget_pinned(name)
            shutil.rmtree(self.models_dir / name, ignore_errors=True)

    # -- internals ------------------------------------------------------------------------
    def _forget_pinned(self, name: str) -> None:
        with self._read_lock:
            for key in [key for key in self._pinned if key[0] == name]:
                del self._pinned[key]

    def path(self, name: str, version: int) -> Path:
        return self.models_dir / name / f"v{version}"

    def _load_version(self, row: VersionRow) -> LoadedModel:
        checkpoint = load_checkpoint(self.path(row.name, row.version), self.device)
        checkpoint.model.requires_grad_(False)
        return LoadedModel(
            name=row.name,
            version=row.version,
            model=checkpoint.model,
            vocab=checkpoint.vocab,
            tokenizer=self.tokenizers.get(checkpoint.tokenizer),
            created_at=row.created_at,
            metrics=row.metrics,
            source=row.source,
        )
