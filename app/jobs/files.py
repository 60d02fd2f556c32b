"""A job directory's files; light to import (the worker process needs nothing more)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from models.tokenizer import TokenizerConfig
from models.vocab import Vocab

IDS_FILE = "ids.safetensors"  # {"train": ids, "val": ids}
VOCAB_FILE = "vocab.json"
CHECKPOINT_DIR = "checkpoint"  # written by the worker, moved into the registry on success


def discard(job_dir: Path) -> None:
    shutil.rmtree(job_dir, ignore_errors=True)


def tokenizer_from_spec(spec: dict[str, Any]) -> TokenizerConfig:
    return TokenizerConfig.from_dict(spec["tokenizer"])


def vocab_from_dir(job_dir: Path) -> Vocab:
    return Vocab.from_dict(json.loads((job_dir / VOCAB_FILE).read_text(encoding="utf-8")))
