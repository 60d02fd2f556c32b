"""A job directory's files; light to import (the worker process needs nothing more)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from app.ownership import Owner
from models.vocab import Vocab

IDS_FILE = "ids.safetensors"  # {"train": ids, "val": ids}
VOCAB_FILE = "vocab.json"
CHECKPOINT_DIR = "checkpoint"  # written by the worker, moved into the registry on success
STATES_DIR = "training-state"  # the run's latest TrainingState (models.training_state)
WORKER_FILE = "worker"  # the Owner.token of the worker process that trains in this directory


def write_prepared(
    job_dir: Path, train_ids: torch.Tensor, val_ids: torch.Tensor, vocab: Vocab
) -> None:
    """Write what a worker trains on: the two id streams and the vocabulary."""
    job_dir.mkdir(parents=True, exist_ok=True)
    save_file({"train": train_ids.contiguous(), "val": val_ids.contiguous()}, job_dir / IDS_FILE)
    (job_dir / VOCAB_FILE).write_text(vocab.to_json(), encoding="utf-8")


def is_prepared(job_dir: Path) -> bool:
    return (job_dir / IDS_FILE).is_file()


def read_ids(job_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and held-out id streams."""
    ids = load_file(job_dir / IDS_FILE)
    return ids["train"], ids["val"]


def read_vocab(job_dir: Path) -> Vocab:
    return Vocab.from_dict(json.loads((job_dir / VOCAB_FILE).read_text(encoding="utf-8")))


def checkpoint_dir(job_dir: Path) -> Path:
    return job_dir / CHECKPOINT_DIR


def states_dir(job_dir: Path) -> Path:
    return job_dir / STATES_DIR


def claim(job_dir: Path, worker: Owner) -> None:
    """Record ``worker`` as the process training in ``job_dir``."""
    (job_dir / WORKER_FILE).write_text(worker.token, encoding="ascii")


def worker_of(job_dir: Path) -> Owner | None:
    """The process that last trained in ``job_dir``; None when none has started there."""
    try:
        return Owner.from_token((job_dir / WORKER_FILE).read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError):
        return None


CLI_JOB_PREFIX = "cli-"  # then the Owner.token of the `seqlab train` process (and -rankN)


def cli_owner(job_dir: Path) -> Owner | None:
    """The process that owns a ``seqlab train`` job directory, from its name."""
    token = job_dir.name[len(CLI_JOB_PREFIX) :].split("-rank", 1)[0]
    return Owner.from_token(token)


def discard(job_dir: Path) -> None:
    shutil.rmtree(job_dir, ignore_errors=True)
