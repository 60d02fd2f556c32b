"""The training worker: runs in its own process, reports events through a queue.

A crash or a kill of this process cannot touch the registry: it only writes a checkpoint into
its job directory; the service publishes it after the worker reports success.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from app.jobs import files
from app.jobs.protocol import (
    Cancelled,
    Failed,
    Finished,
    JobSpec,
    Started,
    Suspended,
    WorkerEvent,
)
from models.boundaries import end_id
from models.checkpoint import load_checkpoint, save_checkpoint
from models.device import resolve_device
from models.evaluation import unigram_log_probs
from models.lm import RNNLanguageModel
from models.seeding import seeded
from models.training import TrainingResult, fit
from models.training_state import TrainingState, load_training_state, save_training_state

Emit = Callable[[WorkerEvent], None]
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


def build_model(spec: JobSpec, train_ids: torch.Tensor, resuming: bool = False) -> RNNLanguageModel:
    """A fresh network (new model) or the base version's weights (existing model).

    A new model's weights are those of its recorded seed, and its output layer starts at the
    unigram counts of its training text: before the first step it predicts as counting does
    (the job's ``unigram_perplexity``; with tied weights approximately, the embedding stays).
    A resumed run takes its weights from its training state: the architecture is enough (the
    base version may even have been deleted meanwhile).
    """
    if resuming:
        return RNNLanguageModel(spec.model_config)
    if spec.create:
        assert spec.model_seed is not None  # recorded by preparation for every new model
        with seeded(spec.model_seed):
            model = RNNLanguageModel(spec.model_config)
        model.start_from_counts(unigram_log_probs(train_ids, spec.model_config.vocab_size))
        return model
    assert spec.base_path is not None
    base = load_checkpoint(spec.base_path).model
    model = RNNLanguageModel(spec.model_config)  # the same architecture, maybe another dropout
    model.load_state_dict(base.state_dict())
    return model


def train(
    spec: JobSpec,
    emit: Emit,
    should_stop: Callable[[], bool],
    device: torch.device,
    after_backward: Callable[[list[torch.nn.Parameter]], None] | None = None,
    shard: Callable[[torch.Tensor], torch.Tensor] | None = None,
    resume: TrainingState | None = None,
    on_checkpoint: Callable[[TrainingState], None] | None = None,
    checkpoint_when_stopped: Callable[[], bool] | None = None,
) -> tuple[RNNLanguageModel, TrainingResult]:
    """Train as the spec says; ``shard`` narrows the stream for data-parallel ranks;
    ``resume``, ``on_checkpoint`` and ``checkpoint_when_stopped`` are :func:`fit`'s."""
    train_ids, val_ids = files.read_ids(spec.job_dir)
    eos_id = end_id(files.read_vocab(spec.job_dir).eos_id, spec.tokenizer.boundary)
    # Built from the whole stream: every data-parallel rank starts from the same weights.
    model = build_model(spec, train_ids, resuming=resume is not None).to(device)
    if shard is not None:
        train_ids = shard(train_ids)
    result = fit(
        model,
        train_ids,
        val_ids if len(val_ids) else None,
        spec.training,
        on_progress=emit,
        on_epoch=emit,
        should_stop=should_stop,
        after_backward=after_backward,
        eos_id=eos_id,
        resume=resume,
        on_checkpoint=on_checkpoint,
        checkpoint_when_stopped=checkpoint_when_stopped,
    )
    return model, result


def save_result(spec: JobSpec, model: RNNLanguageModel) -> None:
    """Write the trained network where publishing will take it from (replacing what an
    interrupted attempt may have left there)."""
    files.discard(files.checkpoint_dir(spec.job_dir))
    save_checkpoint(
        files.checkpoint_dir(spec.job_dir),
        model.cpu(),
        files.read_vocab(spec.job_dir),
        spec.tokenizer,
        {"job_id": spec.job_id},
    )


def run_job(
    spec: JobSpec,
    events: Any,
    cancel: Any,
    suspend: Any,
    device: str,
    threads: int,
    niceness: int = 0,
    service_pid: int | None = None,
) -> None:
    """Entry point of the worker process (spawned: no state inherited from the service).

    It resumes from the job's training state when there is one, and saves that state as it
    goes (``spec.training``'s cadence). ``cancel`` stops it for good; ``suspend`` (the service
    is stopping), a SIGTERM, and the death of the service that started it (``service_pid``)
    stop it after saving its state: the next service resumes the job from there. A SIGINT
    (Ctrl-C in the service's terminal reaches its whole process group) is the service's to
    handle, not the worker's. ``niceness`` lowers its CPU priority below the service's.
    """
    terminated = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    parent = service_pid if service_pid is not None else os.getppid()
    if os.getppid() != parent:  # the service died while this process was starting
        return
    try:
        keep_freed_memory()
        if niceness > 0:
            # Background work: when it shares a core with the service, requests come first.
            os.nice(niceness)
        if threads > 0:
            torch.set_num_threads(threads)
        states = files.states_dir(spec.job_dir)
        state = load_training_state(states)
        events.put(Started(state.step, state.epochs, state.steps_history) if state else Started())

        def suspending() -> bool:
            return suspend.is_set() or terminated.is_set() or os.getppid() != parent

        model, result = train(
            spec,
            events.put,
            lambda: cancel.is_set() or suspending(),
            resolve_device(device),
            resume=state,
            on_checkpoint=lambda state: _save_state(states, state),
            checkpoint_when_stopped=lambda: not cancel.is_set(),
        )
        if result.stop_reason == "stopped":
            events.put(Cancelled() if cancel.is_set() else Suspended(result.steps))
            return
        save_result(spec, model)
        events.put(Finished(result))
    except BaseException as error:  # reported, never raised: the parent decides what it means
        events.put(Failed(f"{type(error).__name__}: {error}", traceback.format_exc(limit=8)))


def _save_state(states: Path, state: TrainingState) -> None:
    """Save a training state; a periodic one that cannot be written (a full disk) is skipped,
    the previous one stays whole and training goes on. The final one must be written."""
    try:
        save_training_state(states, state)
    except OSError as error:
        if state.result is not None:
            raise
        print(
            f"seqlab: the training state at step {state.step} could not be saved ({error}); "
            "training goes on from the previous one",
            file=sys.stderr,
            flush=True,
        )
