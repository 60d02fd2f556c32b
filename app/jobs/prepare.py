"""Turning a training request into data a worker can train on, checking everything first.

Preparation happens in the service (a thread), so an impossible request is a 422 at once,
not a failed job later: the text is segmented with the model's tokenizer, the vocabulary is
built (new model) or applied (existing model, OOV rate reported), the id stream is split and
written to the job's directory, and the hyperparameters are checked against its length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from app.errors import ConflictError, InvalidInputError, located
from app.jobs.files import IDS_FILE, VOCAB_FILE
from app.registry import ModelRegistry
from app.schemas.training import TrainRequest
from app.services.registry import build_from_texts
from app.services.seeding import fresh_seed
from app.settings import Limits
from app.tokenizers import TokenizerCache
from models.errors import ConfigError
from models.lm import LanguageModelConfig
from models.training import TrainingConfig, check_trainable, split_ids, unigram_perplexity


@dataclass(frozen=True)
class PreparedJob:
    """What the worker needs (``spec``, JSON-able) and what the user is shown (``data``)."""

    spec: dict[str, Any]
    data: dict[str, Any]
    settings: dict[str, Any]
    base_version: int | None


def training_config(request: TrainRequest) -> TrainingConfig:
    return TrainingConfig(
        seq_len=request.seq_len,
        batch_size=request.batch_size,
        epochs=request.epochs,
        lr=request.lr,
        optimizer=request.optimizer,
        weight_decay=request.weight_decay,
        clip=request.clip,
        batching=request.batching,
        stride=request.stride,
        seed=request.seed,
        patience=request.patience,
        max_steps=request.max_steps,
        max_seconds=request.max_seconds,
        log_every=request.log_every,
    )


def prepare_job(
    job_id: str,
    request: TrainRequest,
    lines: list[str],
    registry: ModelRegistry,
    tokenizers: TokenizerCache,
    limits: Limits,
    job_dir: Path,
) -> PreparedJob:
    """Segment, encode, split and write the data; raise a 4xx error for an impossible request."""
    with located("body"):
        config = training_config(request)  # ConfigError → 422 naming the field
    base_version = None
    if request.create is not None:
        if request.model in registry.names():
            raise ConflictError(f"model {request.model!r} already exists", model=request.model)
        create = request.create
        per_line, vocab, model_config = build_from_texts(
            create, lines, tokenizers, limits, location="body.create"
        )
        tokens = [token for line_tokens in per_line for token in line_tokens]
        tokenizer_config = create.tokenizer.to_config()
        if request.dropout is not None:
            with located("body"):
                model_config = replace(model_config, dropout=request.dropout)
        # Recorded, so the initial weights of every job can be reproduced.
        model_seed = create.seed if create.seed is not None else fresh_seed()
    else:
        loaded = registry.get(request.model)
        base_version = loaded.version
        tokenizer_config = loaded.tokenizer_config
        tokens = [token for line in lines for token in loaded.tokenizer.tokenize(line)]
        vocab = loaded.vocab
        config_values = loaded.config.to_dict()
        if request.dropout is not None:
            config_values["dropout"] = request.dropout
        model_config = LanguageModelConfig(**config_values)
        model_seed = None
    if not tokens:
        raise InvalidInputError(
            "the training text has no tokens once segmented", field="body.texts"
        )
    oov, total = vocab.count_oov(tokens)
    with located("body.texts" if request.texts is not None else "body.corpus_id"):
        ids = torch.tensor(vocab.encode(tokens), dtype=torch.long)  # no <unk>: UnknownTokenError
    val_fraction = request.val_fraction
    train_ids, val_ids = split_ids(ids, val_fraction)
    if val_fraction > 0 and len(val_ids) < 2:
        raise ConfigError(
            f"val_fraction {val_fraction} of {len(ids)} tokens leaves under 2 held-out tokens",
            field="val_fraction",
        )
    with located("body"):
        check_trainable(len(train_ids), config)
    data = {
        "tokens": len(ids),
        "train_tokens": len(train_ids),
        "val_tokens": len(val_ids),
        "vocab_size": len(vocab),
        "oov_tokens": oov,
        "oov_rate": oov / total,
        "unigram_perplexity": (
            unigram_perplexity(train_ids, val_ids, len(vocab)) if len(val_ids) else None
        ),
    }

    job_dir.mkdir(parents=True, exist_ok=True)
    save_file({"train": train_ids.contiguous(), "val": val_ids.contiguous()}, job_dir / IDS_FILE)
    (job_dir / VOCAB_FILE).write_text(vocab.to_json(), encoding="utf-8")
    spec = {
        "job_id": job_id,
        "model": request.model,
        "create": request.create is not None,
        "model_config": model_config.to_dict(),
        "model_seed": model_seed,  # None: the base version's weights
        "base_version": base_version,
        "base_path": (
            str(registry.path(request.model, base_version)) if base_version is not None else None
        ),
        "tokenizer": tokenizer_config.to_dict(),
        "training": config.to_dict(),
        "job_dir": str(job_dir),
    }
    settings = request.model_dump(exclude={"texts", "create", "wait"})
    if request.create is not None:
        settings["create"] = request.create.model_dump()
    return PreparedJob(spec=spec, data=data, settings=settings, base_version=base_version)


def read_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]
