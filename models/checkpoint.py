"""Checkpoints: weights in safetensors, everything else in JSON. No pickle anywhere.

A checkpoint is a directory::

    checkpoint.json     format marker, model config, tokenizer settings, vocabulary, metadata
    model.safetensors   the weights (a tied decoder weight is stored once)

:func:`save_checkpoint` writes into a temporary sibling directory, fsyncs, and renames it into
place, so a crash leaves either no checkpoint or a whole one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from models.errors import CheckpointError, ConfigError
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import TokenizerConfig
from models.vocab import Vocab

FORMAT = "seqlab.checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "checkpoint.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network (in eval mode) and what it needs to read text."""

    model: RNNLanguageModel
    vocab: Vocab
    tokenizer: TokenizerConfig
    metadata: dict[str, Any] = field(default_factory=dict)


def sync_file(path: Path) -> None:
    """Make a file's contents durable before it is renamed into place."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save_checkpoint(
    directory: str | Path,
    model: RNNLanguageModel,
    vocab: Vocab,
    tokenizer: TokenizerConfig,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint to ``directory`` atomically; the directory must not exist yet."""
    directory = Path(directory)
    if directory.exists():
        raise CheckpointError(f"{directory} already exists; checkpoints are never overwritten")
    if len(vocab) != model.config.vocab_size:
        raise ConfigError(
            f"vocabulary has {len(vocab)} tokens but the model expects {model.config.vocab_size}"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": model.config.to_dict(),
            "tokenizer": tokenizer.to_dict(),
            "vocab": vocab.to_dict(),
            "metadata": metadata or {},
        }
        config_path = staging / CONFIG_FILE
        config_path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        weights_path = staging / WEIGHTS_FILE
        # save_model drops the duplicate of a tied weight; load_model re-ties it.
        try:
            save_model(model, str(weights_path), metadata={"format": FORMAT})
        except SafetensorError as error:
            raise write_error(error, weights_path) from error
        sync_file(config_path)
        sync_file(weights_path)
        fsync_directory(staging)
        os.rename(staging, directory)
        fsync_directory(directory.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def write_error(error: SafetensorError, path: Path) -> Exception:
    """safetensors reports a failed write in words ("… (os error 28)"): the OSError it was, so
    that a full disk reads as one (errno ENOSPC) to whoever handles it."""
    found = re.search(r"os error (\d+)", str(error))
    if found is None:
        return error
    number = int(found[1])
    return OSError(number, os.strerror(number), str(path))


def read_checkpoint_document(directory: str | Path) -> dict[str, Any]:
    """The JSON half of a checkpoint, validated as ours."""
    path = Path(directory) / CONFIG_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CheckpointError(
            f"{directory} is not a seqlab checkpoint: no {CONFIG_FILE}"
        ) from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not a seqlab checkpoint: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a seqlab checkpoint (no '{FORMAT}' marker)")
    if document.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {document.get('format_version')!r}; "
            f"this seqlab reads version {FORMAT_VERSION}"
        )
    return document


def load_checkpoint(directory: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Load a checkpoint onto ``device``; the model comes back in eval mode."""
    directory = Path(directory)
    document = read_checkpoint_document(directory)
    try:
        config = LanguageModelConfig.from_dict(document["model"])
        tokenizer = TokenizerConfig.from_dict(document["tokenizer"])
        vocab = Vocab.from_dict(document["vocab"])
    except (KeyError, TypeError, ConfigError) as error:
        raise CheckpointError(f"{directory / CONFIG_FILE} is damaged: {error}") from error
    if len(vocab) != config.vocab_size:
        raise CheckpointError(f"{directory}: vocabulary and model sizes disagree")
    model = RNNLanguageModel(config)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_FILE}")
    try:
        load_model(model, str(weights_path), strict=True)
    except (SafetensorError, RuntimeError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights_path} cannot be loaded: {error}") from error
    model.to(device)
    model.eval()
    return Checkpoint(model, vocab, tokenizer, dict(document.get("metadata") or {}))
