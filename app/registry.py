"""The model registry, one concept: versions on disk and in the index, loaded on the device.

Its read side (latest and pinned versions, sync with other processes) and its write side
(publish, delete) live together because both hold the same two locks. The files are
where :class:`app.layout.DataLayout` says: ``models/<name>/v<version>/`` and the index.

Versions are loaded on first use and kept in a least-recently-used set bounded by a memory
budget (the bytes of their weights on the device, ``SEQLAB_MODEL_MEMORY``); an evicted version
is dropped and read from disk again when it is next asked for. Start-up reads only the index,
so it takes the same time whatever the registry holds; the most used models are then preloaded
in the background (:meth:`ModelRegistry.preload`).

Publishing a version writes its checkpoint atomically, loads it back from disk onto the
device, marks it ready in SQLite, and only then swaps the in-memory reference, so a reader
always holds one whole version. Served modules are read-only (eval, no gradients).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import re
import shutil
import struct
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from app.database import Database, utc_now
from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.layout import DataLayout
from app.model_index import ModelIndex, VersionLostError, VersionRow
from app.ownership import LEASE_SECONDS, Owner, lease_of, writer_gone
from app.tokenizers import TokenizerCache
from models.boundaries import end_id
from models.checkpoint import (
    WEIGHTS_FILE,
    fsync_directory,
    load_checkpoint,
    read_checkpoint_document,
    save_checkpoint,
)
from models.errors import CheckpointError
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
            try:
                if not self._index.renew_lease(self._name, self._version):
                    return  # swept: mark_ready will say so
            except Exception:  # the database out of reach: the next renewal may get through
                logger.warning("could not renew the lease of %s@%s", self._name, self._version)

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


@dataclass(frozen=True)
class VersionSummary:
    """What ``/models`` says of a version, loaded or not (read from its checkpoint's JSON)."""

    name: str
    version: int
    config: LanguageModelConfig
    tokenizer_config: TokenizerConfig
    vocab_size: int
    specials: tuple[str, ...]
    num_parameters: int
    device: str
    loaded: bool
    created_at: str
    metrics: dict[str, Any]
    source: dict[str, Any]


def weight_bytes(model: torch.nn.Module) -> int:
    """The bytes a network's parameters and buffers take on its device (a tied weight once)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


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
        memory_budget: int = 0,
        database: Database | None = None,
    ) -> None:
        self.models_dir = layout.models
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.tokenizers = tokenizers
        self.index = ModelIndex(database or layout.database)
        self.memory_budget = memory_budget  # bytes of weights on the device; 0: no bound
        self._older_versions_kept = older_versions_kept
        # The latest ready version of every model (rows only: nothing is loaded for them).
        self._latest: dict[str, VersionRow] = {}
        # What is loaded, least recently used first, and the bytes each takes on the device.
        self._loaded: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._sizes: dict[tuple[str, int], int] = {}
        self._load_lock = threading.Lock()  # one version read from disk at a time
        # Bumped when a model is deleted or made anew: a load begun before must not be kept.
        self._generation: Counter[str] = Counter()
        self._uses: Counter[str] = Counter()
        self.loads = 0
        self.evictions = 0
        self._publish_lock = threading.Lock()
        self._read_lock = threading.Lock()

    # -- start-up -------------------------------------------------------------------------
    def load(self) -> None:
        """Sweep what gone writers left behind, then read which version of each model is the
        latest. Nothing is loaded here (:meth:`preload`, :meth:`get`), so this takes the same
        time whatever the registry holds. A version another live process is writing
        (``seqlab train`` publishing) is left alone: :meth:`sync` picks it up once ready."""
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
                self._latest[name] = versions[-1]

    def preload(self, count: int) -> list[str]:
        """Load the latest version of the ``count`` most used models that fit the budget
        beside each other (a model too big for what is left is skipped, the next may fit);
        returns their labels. The most used ends as the most recently used, the last to be
        evicted. A version that cannot be loaded is logged and skipped: asking for it answers
        why."""
        done: list[LoadedModel] = []
        for name in self.index.most_used()[:count]:
            row = self._latest.get(name)
            if row is None:
                continue
            try:
                estimate = _summary(self.path(row.name, row.version), row.created_at)[5]
                if self.memory_budget and self.memory_used() + estimate > self.memory_budget:
                    continue  # never evicts: what is loaded stays, this loads on first use
                with self._read_lock:
                    generation = self._generation[name]
                done.append(self._ensure_loaded(row, generation))
            except Exception:
                logger.exception("could not preload %s@%s", row.name, row.version)
        with self._read_lock:
            for loaded in reversed(done):
                key = (loaded.name, loaded.version)
                if key in self._loaded:
                    self._loaded.move_to_end(key)
        return [loaded.label for loaded in done]

    def sync(self, names: Iterable[str] | None = None) -> list[str]:
        """Catch up with other processes on the same registry (``seqlab train``, replicas).

        Takes a newer ready version of any model (loading it at once where the version it
        replaces was loaded), adds models that appeared, forgets models that were deleted;
        returns what changed. ``names`` limits that to those models (a replica told of them by
        a notification). Versions another process is still writing are ``pending`` and are not
        seen.
        """
        changes: list[str] = []
        wanted = None if names is None else set(names)
        with self._publish_lock:
            known = {row.name for row in self.index.models()}
            for name in [name for name in self._latest if name not in known]:
                if wanted is None or name in wanted:
                    self._forget(name)
                    changes.append(f"-{name}")
            for name in sorted(known if wanted is None else known & wanted):
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
                if current is not None and not recreated and latest.version <= current.version:
                    continue
                was_loaded = current is not None and self.is_loaded(name)
                replacement = None
                if was_loaded:  # in use: the new version is ready before it is served
                    try:
                        replacement = self._load_version(latest)
                    except Exception:  # asking for it will say why; the others still sync
                        logger.exception("could not load %s@%s", name, latest.version)
                if recreated:
                    self._forget(name)  # no loaded version of the old model holds
                with self._read_lock:
                    generation = self._generation[name]
                if replacement is not None:
                    self._admit(replacement, generation)
                self._latest[name] = latest
                if was_loaded and not recreated and current is not None:
                    self._evict((name, current.version))
                changes.append(f"{name}@{latest.version}")
        return changes

    def flush_uses(self) -> None:
        """Add the uses counted since the last flush to the index (for :meth:`preload`)."""
        with self._read_lock:
            uses, self._uses = self._uses, Counter()
        if uses:
            self.index.add_uses(dict(uses))

    def close(self) -> None:
        try:
            self.flush_uses()
        finally:
            self.index.close()

    # -- reading --------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._latest)

    def __len__(self) -> int:
        return len(self._latest)

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        """The latest version of ``name``, or the pinned ``version``, loaded (from disk if it
        is not in memory: call it off the event loop unless :meth:`is_loaded`)."""
        with self._read_lock:  # the row and the generation it belongs to, together
            row = self._row(name, version)
            generation = self._generation[name]
            self._uses[name] += 1
        return self._ensure_loaded(row, generation)

    def is_loaded(self, name: str | None, version: int | None = None) -> bool:
        """Whether :meth:`get` would answer from memory (an unknown model answers at once too:
        with its 404)."""
        latest = self._latest.get(name or "")
        if latest is None:
            return True
        return (latest.name, version or latest.version) in self._loaded

    def describe(self, name: str, version: int | None = None) -> VersionSummary:
        """A version's configuration, vocabulary size and parameters, without loading it."""
        row = self._row(name, version)
        loaded = self._loaded.get((row.name, row.version))
        if loaded is not None and loaded.created_at != row.created_at:
            loaded = None  # another model of that name, deleted since
        if loaded is not None:
            config, tokenizer = loaded.config, loaded.tokenizer_config
            vocab_size, specials = len(loaded.vocab), tuple(loaded.vocab.specials)
            parameters = loaded.model.num_parameters()
        else:
            config, tokenizer, vocab_size, specials, parameters, _ = _summary(
                self.path(row.name, row.version), row.created_at
            )
        return VersionSummary(
            name=row.name,
            version=row.version,
            config=config,
            tokenizer_config=tokenizer,
            vocab_size=vocab_size,
            specials=specials,
            num_parameters=parameters,
            device=str(self.device),
            loaded=loaded is not None,
            created_at=row.created_at,
            metrics=row.metrics,
            source=row.source,
        )

    def loaded_versions(self) -> list[tuple[str, int]]:
        """The labels of the loaded versions and their bytes, least recently used first."""
        with self._read_lock:
            return [(model.label, self._sizes[key]) for key, model in self._loaded.items()]

    def memory_used(self) -> int:
        """Bytes of the loaded versions' weights on the device."""
        with self._read_lock:
            return self._used()

    def versions(self, name: str) -> list[VersionRow]:
        if name not in self._latest:
            raise ModelNotFoundError(f"model {name!r} does not exist", model=name)
        return self.index.versions(name)

    def timestamps(self, name: str) -> tuple[str, str]:
        row = self.index.model(name)
        if row is None:
            raise ModelNotFoundError(f"model {name!r} does not exist", model=name)
        return row.created_at, row.updated_at

    def _row(self, name: str, version: int | None) -> VersionRow:
        latest = self._latest.get(name)
        if latest is None:
            raise ModelNotFoundError(f"model {name!r} does not exist", model=name)
        if version is None or version == latest.version:
            return latest
        loaded = self._loaded.get((name, version))
        if loaded is not None:  # pinned and in memory: no trip to the index
            return VersionRow(
                name, version, "ready", loaded.created_at, loaded.metrics, loaded.source
            )
        rows = [row for row in self.index.versions(name) if row.version == version]
        if not rows:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version} (latest is {latest.version})",
                model=name,
            )
        return rows[0]

    def _ensure_loaded(self, row: VersionRow, generation: int) -> LoadedModel:
        """``row``'s version from memory, or read from disk: one load at a time, after making
        room for it within the budget, so the loaded set and the load together stay within it
        (requests still holding an evicted version keep it alive until they finish)."""
        key = (row.name, row.version)
        with self._read_lock:
            hit = self._loaded.get(key)
            if hit is not None:
                self._loaded.move_to_end(key)
                return hit
        with self._load_lock:
            with self._read_lock:
                hit = self._loaded.get(key)  # loaded while this one waited for the lock
                if hit is not None:
                    self._loaded.move_to_end(key)
                    return hit
            try:
                estimate = _summary(self.path(row.name, row.version), row.created_at)[5]
                self._make_room(estimate)
                loaded = self._load_version(row)
            except Exception:
                with self._read_lock:
                    gone = self._generation[row.name] != generation
                if gone:  # deleted (or made anew) while it was read: its files are gone
                    raise ModelNotFoundError(
                        f"model {row.name!r} was deleted", model=row.name
                    ) from None
                raise
            self._admit(loaded, generation)
        return loaded

    def _make_room(self, size: int) -> None:
        """Evict the least recently used versions until ``size`` more bytes fit the budget."""
        budget = self.memory_budget
        with self._read_lock:
            while budget and self._loaded and self._used() + size > budget:
                self._drop(next(iter(self._loaded)))

    def _admit(self, loaded: LoadedModel, generation: int) -> bool:
        """Keep ``loaded`` in memory and say whether it was kept.

        Not kept: its model was deleted or made anew since its load began, or it alone is
        larger than the budget (then every use reads it from disk). Kept: the least recently
        used versions past the budget are evicted, and the model's older versions past
        ``older_versions_kept``.
        """
        key = (loaded.name, loaded.version)
        size = weight_bytes(loaded.model)
        budget = self.memory_budget
        with self._read_lock:
            if self._generation[loaded.name] != generation:
                return False
            if budget and size > budget:
                logger.warning(
                    "%s takes %d bytes, more than the model memory budget (%d): it is read "
                    "from disk for every use",
                    loaded.label,
                    size,
                    budget,
                )
                return False
            self._loaded[key] = loaded
            self._loaded.move_to_end(key)
            self._sizes[key] = size
            latest = self._latest.get(loaded.name)
            # Publishing and sync keep the new version before it becomes the latest.
            latest_version = max(loaded.version, latest.version if latest else 0)
            older = [k for k in self._loaded if k[0] == loaded.name and k[1] != latest_version]
            for other in older[: max(0, len(older) - self._older_versions_kept)]:
                self._drop(other)
            while budget and self._used() > budget:
                self._drop(next(iter(self._loaded)))  # never ``key``: it is last and fits
            return True

    def _used(self) -> int:
        return sum(self._sizes.values())

    def _evict(self, key: tuple[str, int]) -> None:
        with self._read_lock:
            if key in self._loaded:
                self._drop(key)

    def _drop(self, key: tuple[str, int]) -> None:
        """Forget a loaded version (the read lock held); a request holding it finishes."""
        del self._loaded[key]
        del self._sizes[key]
        self.evictions += 1
        logger.info("unloaded %s@%s", *key)

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
                    # Loaded before it is ready: once ready, other replicas are told of it at
                    # once, and a version that cannot be loaded must never have been ready.
                    pending = VersionRow(name, version, "pending", utc_now(), {}, source or {})
                    loaded = self._load_version(pending)
                    row = self.index.mark_ready(name, version, metrics or {})
                loaded = dataclasses.replace(
                    loaded, created_at=row.created_at, metrics=row.metrics, source=row.source
                )
            except VersionLostError:
                shutil.rmtree(path, ignore_errors=True)  # ours, never published; the row is gone
                raise
            except BaseException:
                self._undo_publish(name, version, checkpoint)
                raise
            previous = self._latest.get(name)
            self._admit(loaded, self._generation[name])
            self._latest[name] = row  # the atomic swap readers see
            if previous is not None:
                self._evict((name, previous.version))
            return loaded

    def _undo_publish(self, name: str, version: int, checkpoint: Path) -> None:
        """After a failed publish: the files go back where they came from (a retry can publish
        them) and the pending row goes. Unless the row may be ready after all (the database
        answered nothing to the commit): then both stay, for a retry or a sweep to settle."""
        path = self.path(name, version)
        try:
            rows = self.index.versions(name, status=None)
        except Exception:
            logger.warning("publishing %s@%s failed and its state is unknown", name, version)
            return
        if any(row.version == version and row.status == "ready" for row in rows):
            return  # it was published (and announced): its files must stay
        if path.is_dir() and not checkpoint.exists():
            os.rename(path, checkpoint)
        shutil.rmtree(path, ignore_errors=True)
        self.index.discard_version(name, version)

    def delete(self, name: str) -> None:
        with self._publish_lock:
            if name not in self._latest:
                raise ModelNotFoundError(f"model {name!r} does not exist", model=name)
            self.index.delete_model(name)
            self._forget(name)
            shutil.rmtree(self.models_dir / name, ignore_errors=True)

    # -- internals ------------------------------------------------------------------------
    def _forget(self, name: str) -> None:
        """A deleted (or re-created) model: its row and every loaded version go."""
        with self._read_lock:
            self._latest.pop(name, None)
            self._generation[name] += 1
            self._uses.pop(name, None)
            for key in [key for key in self._loaded if key[0] == name]:
                self._drop(key)

    def path(self, name: str, version: int) -> Path:
        return self.models_dir / name / f"v{version}"

    def _load_version(self, row: VersionRow) -> LoadedModel:
        checkpoint = load_checkpoint(self.path(row.name, row.version), self.device)
        checkpoint.model.requires_grad_(False)
        with self._read_lock:
            self.loads += 1
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


# Bytes per element of the safetensors dtypes a checkpoint may hold.
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1}


@functools.lru_cache(maxsize=256)
def _summary(
    path: Path, created_at: str
) -> tuple[LanguageModelConfig, TokenizerConfig, int, tuple[str, ...], int, int]:
    """A version's config, tokenizer, vocabulary size, specials, parameter count and the bytes
    its weights will take, read from its checkpoint's JSON and its weights' header, never the
    weights (versions never change in place; ``created_at`` tells a re-created model's version
    from the old one at the same path). The weights file holds a tied weight once, as
    ``parameters()`` counts it."""
    document = read_checkpoint_document(path)
    try:
        with open(path / WEIGHTS_FILE, "rb") as weights:
            (length,) = struct.unpack("<Q", weights.read(8))
            header = json.loads(weights.read(min(length, 1 << 24)))
        tensors = [entry for key, entry in header.items() if key != "__metadata__"]
        elements = [math.prod(entry["shape"]) for entry in tensors]
        sizes = [_DTYPE_BYTES[entry["dtype"]] for entry in tensors]
    except (OSError, struct.error, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path / WEIGHTS_FILE} cannot be read: {error!r}") from error
    vocab = document["vocab"]
    return (
        LanguageModelConfig.from_dict(document["model"]),
        TokenizerConfig.from_dict(document["tokenizer"]),
        len(vocab["tokens"]),
        tuple(vocab["specials"]),
        sum(elements),
        sum(n * size for n, size in zip(elements, sizes, strict=True)),
    )
