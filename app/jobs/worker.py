"""The training worker: runs in its own process, reports events through a queue.

A crash or a kill of this process cannot touch the registry: it only writes a checkpoint into
its job directory; the service publishes it after the worker reports success.
"""

from __future__ import annotations

import ctypes
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from app.jobs.files import CHECKPOINT_DIR, IDS_FILE, tokenizer_from_spec, vocab_from_dir
from models.checkpoint import load_checkpoint, save_checkpoint
from models.device import resolve_device
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.training import EpochRecord, Progress, TrainingConfig, TrainingResult, fit

Emit = Callable[[dict[str, Any]], None]
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4


def keep_freed_memory() -> None:
    """Stop glibc from handing large freed buffers back to the kernel after every step.

    A step allocates the logits and their gradients (about 90 MB each at a 33k-word
    vocabulary). By default glibc maps each with mmap and unmaps it when freed, so every step
    faults in and zeroes hundreds of MB again: measured here, 0.2 s of system time in a
    0.32 s step, and training about 1.5x faster without it. A training process may keep its
    peak memory. Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    except (OSError, AttributeError):
        pass


def build_model(spec: dict[str, Any]) -> RNNLanguageModel:
    """A fresh seeded network (new model) or the base version's weights (existing model)."""
    config = LanguageModelConfig.from_dict(spec["model_config"])
    if spec["create"]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec["model_seed"])
            return RNNLanguageModel(config)
    base = load_checkpoint(spec["base_path"]).model
    model = RNNLanguageModel(config)  # the same architecture, maybe another dropout
    model.load_state_dict(base.state_dict())
    return model


def train(
    spec: dict[str, Any],
    emit: Emit,
    should_stop: Callable[[], bool],
    device: torch.device,
    after_backward: Callable[[list[torch.nn.Parameter]], None] | None = None,
    shard: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[RNNLanguageModel, TrainingResult]:
    """Train as the spec says; ``shard`` narrows the stream for data-parallel ranks."""
    job_dir = Path(spec["job_dir"])
    ids = load_file(job_dir / IDS_FILE)
    train_ids = ids["train"] if shard is None else shard(ids["train"])
    model = build_model(spec).to(device)
    config = TrainingConfig(**spec["training"])

    def on_progress(progress: Progress) -> None:
        emit({"type": "progress", **asdict(progress), "fraction": progress.fraction})

    def on_epoch(record: EpochRecord) -> None:
        emit({"type": "epoch", **asdict(record)})

    result = fit(
        model,
        train_ids,
        ids["val"] if len(ids["val"]) else None,
        config,
        on_progress=on_progress,
        on_epoch=on_epoch,
        should_stop=should_stop,
        after_backward=after_backward,
    )
    return model, result


def save_result(spec: dict[str, Any], model: RNNLanguageModel) -> Path:
    job_dir = Path(spec["job_dir"])
    return save_checkpoint(
        job_dir / CHECKPOINT_DIR,
        model.cpu(),
        vocab_from_dir(job_dir),
        tokenizer_from_spec(spec),
        {"job_id": spec["job_id"]},
    )


def run_job(spec: dict[str, Any], events: Any, cancel: Any, device: str, threads: int) -> None:
    """Entry point of the worker process (spawned: no state inherited from the service)."""
    try:
        keep_freed_memory()
        if threads > 0:
            torch.set_num_threads(threads)
        events.put({"type": "started"})
        model, result = train(spec, events.put, cancel.is_set, resolve_device(device))
        if result.stop_reason == "stopped":
            events.put({"type": "cancelled"})
            return
        save_result(spec, model)
        events.put({"type": "finished", "result": result.to_dict()})
    except BaseException as error:  # reported, never raised: the parent decides what it means
        events.put(
            {
                "type": "failed",
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(limit=8),
            }
        )
