"""Moving models between services: a version out as one archive (:mod:`app.archive`), an
archive in as a new model or a model's next version.

An import is checked whole before the registry sees it: the archive's checksums and manifest
(while it is unpacked into a staging directory beside the versions, on their filesystem), the
checkpoint against its manifest, this service's limits on a model's sizes, and a load on the
CPU (a config that does not fit the weights is refused here). Only then is the checkpoint
published, as the registry publishes a training run: a pending version row, the directory
renamed into place, ready once loaded. A refused archive leaves the registry as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from app import archive
from app.archive import ArchiveError, Manifest
from app.errors import ConflictError, InvalidInputError
from app.limits import check_limit, check_value
from app.ownership import Owner, kept_fresh
from app.registry import (
    STAGING_PREFIX,
    LoadedModel,
    ModelNotFoundError,
    ModelRegistry,
    validate_name,
)
from app.settings import Limits
from app.tar_stream import Member, stream_chunks, stream_size
from models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, read_checkpoint_document
from models.errors import CheckpointError
from models.lm import LanguageModelConfig
from models.tokenizer import TokenizerConfig

CHECKPOINT_DIR = "checkpoint"


@dataclass
class ExportedArchive:
    """A version's archive, ready to stream: its files are open, so a deletion meanwhile does
    not cut the download short."""

    name: str
    version: int
    members: list[Member]
    digest: str  # sha256 of its manifest, which holds every other member's: names the archive
    mtime: int

    @property
    def filename(self) -> str:
        return f"{self.name}-v{self.version}{archive.EXTENSION}"

    @property
    def size(self) -> int:
        return stream_size(self.members)

    def chunks(self) -> Iterator[bytes]:
        """The archive's bytes; the files are closed at the end (or when dropped)."""
        try:
            yield from stream_chunks(self.members, self.mtime)
        finally:
            self.close()

    def close(self) -> None:
        for member in self.members:
            member.handle.close()


def export_version(registry: ModelRegistry, name: str, version: int) -> ExportedArchive:
    """A version's archive: its checkpoint's files as they are, and a manifest of them."""
    summary = registry.describe(name, version)
    directory = registry.path(name, summary.version)
    try:
        checkpoint = open(directory / CONFIG_FILE, "rb")  # noqa: SIM115 - closed by the archive
        weights = open(directory / WEIGHTS_FILE, "rb")  # noqa: SIM115 - closed by the archive
    except FileNotFoundError:
        raise ModelNotFoundError(f"model {name!r} was deleted", model=name) from None
    try:
        if registry.describe(name, version).created_at != summary.created_at:
            raise ModelNotFoundError(f"model {name!r} was deleted", model=name)
        document = json.loads(checkpoint.read())
        files = {
            CONFIG_FILE: archive.file_entry(checkpoint),
            WEIGHTS_FILE: archive.file_entry(weights),
        }
        manifest = archive.manifest_bytes(
            archive.manifest_document(
                name=name,
                version=summary.version,
                created_at=summary.created_at,
                metrics=summary.metrics,
                source=summary.source,
                checkpoint=document,
                files=files,
            )
        )
    except BaseException:
        checkpoint.close()
        weights.close()
        raise
    return ExportedArchive(
        name=name,
        version=summary.version,
        members=archive.archive_members(manifest, checkpoint, weights),
        digest=hashlib.sha256(manifest).hexdigest(),
        mtime=_timestamp(summary.created_at),
    )


def _timestamp(created_at: str) -> int:
    """The members' modification time: the version's creation, so an export is the same bytes
    every time."""
    try:
        return max(0, int(datetime.fromisoformat(created_at).timestamp()))
    except ValueError:
        return 0


@contextlib.contextmanager
def staging_directory(registry: ModelRegistry) -> Iterator[Path]:
    """A fresh directory beside the versions (one filesystem: publishing renames from it),
    named for this process so that a start-up on the same data dir sweeps it only once this
    process is gone; removed at the end."""
    prefix = f"{STAGING_PREFIX}{Owner.current().token}-"
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=registry.models_dir))
    try:
        with kept_fresh(path):  # a long upload is not swept by another host's replica
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def check_target(registry: ModelRegistry, name: str | None, create: bool | None) -> None:
    """Refuse now what publishing would refuse: ``create`` and ``name`` taken (409), not
    ``create`` and no such model (404). ``create`` None: whichever applies."""
    if name is None or create is None:
        return
    exists = name in registry.names()
    if create and exists:
        raise ConflictError(f"model {name!r} already exists", model=name)
    if not create and not exists:
        raise ModelNotFoundError(f"model {name!r} does not exist", model=name)


def import_file(
    path: Path,
    registry: ModelRegistry,
    limits: Limits,
    name: str | None = None,
    create: bool | None = None,
) -> LoadedModel:
    """:func:`import_archive` of the file at ``path``."""
    with open(path, "rb") as source:
        return import_archive(source, registry, limits, name, create)


def import_archive(
    source: BinaryIO,
    registry: ModelRegistry,
    limits: Limits,
    name: str | None = None,
    create: bool | None = None,
) -> LoadedModel:
    """Publish the archive read from ``source`` as ``name`` (default: the name it carries):
    version 1 of a new model, or the next version of an existing one (``create`` True or
    False insists on one of them). Its metrics are kept; its source says where it came from."""
    with staging_directory(registry) as staging:
        checkpoint = staging / CHECKPOINT_DIR
        checkpoint.mkdir()
        manifest = archive.read_archive(source, checkpoint)
        target = _target_name(name, manifest)
        check_target(registry, target, create)
        _check_model(checkpoint, manifest, limits)
        return registry.publish_directory(
            target,
            checkpoint,
            create=target not in registry.names() if create is None else create,
            metrics=manifest.metrics,
            source=imported_source(manifest),
        )


def imported_source(manifest: Manifest) -> dict[str, Any]:
    """An imported version's ``source``: the archive and the version it was made from."""
    return {
        "kind": "import",
        "archive_sha256": manifest.digest,
        "origin": {
            "name": manifest.name,
            "version": manifest.version,
            "created_at": manifest.created_at,
            "source": manifest.source,
        },
    }


def _target_name(name: str | None, manifest: Manifest) -> str:
    if name is not None:
        return validate_name(name)
    try:
        return validate_name(manifest.name)
    except InvalidInputError:
        raise InvalidInputError(
            f"the archive names its model {manifest.name!r}, which is not a valid model name: "
            "give it another (the name query parameter, or --name)",
            field="query.name",
        ) from None


def _check_model(checkpoint: Path, manifest: Manifest, limits: Limits) -> None:
    """The checkpoint agrees with its manifest, fits this service's limits, and loads."""
    try:
        document = read_checkpoint_document(checkpoint)
    except CheckpointError as error:
        raise ArchiveError("invalid-model", _hidden(error, checkpoint)) from None
    if document.get("model") != manifest.model or document.get("tokenizer") != manifest.tokenizer:
        raise ArchiveError(
            "invalid-model", "the manifest and checkpoint.json describe different models"
        )
    config, tokenizer = _configs(document)
    check_limit(limits, "max_vocab_size", config.vocab_size)
    check_value(limits, "max_embedding_dim", config.embedding_dim, "body.model.embedding_dim")
    check_value(limits, "max_hidden_size", config.hidden_size, "body.model.hidden_size")
    check_value(limits, "max_num_layers", config.num_layers, "body.model.num_layers")
    check_limit(limits, "max_user_words", len(tokenizer.user_words))
    try:
        load_checkpoint(checkpoint, "cpu")
    except (CheckpointError, TypeError, ValueError, RuntimeError) as error:
        raise ArchiveError(
            "invalid-model", f"the archive's model does not load: {_hidden(error, checkpoint)}"
        ) from None


def _configs(document: dict[str, Any]) -> tuple[LanguageModelConfig, TokenizerConfig]:
    try:
        config = LanguageModelConfig.from_dict(document["model"])
        tokenizer = TokenizerConfig.from_dict(document["tokenizer"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # ConfigError included
        raise ArchiveError(
            "invalid-model", f"checkpoint.json's settings cannot be used: {error}"
        ) from None
    sizes = (config.vocab_size, config.embedding_dim, config.hidden_size, config.num_layers)
    if not all(type(size) is int for size in sizes):
        raise ArchiveError("invalid-model", "checkpoint.json's model sizes are not all integers")
    return config, tokenizer


def _hidden(error: Exception, checkpoint: Path) -> str:
    """An error's words without this server's paths."""
    return str(error).replace(str(checkpoint), "the archive")
