"""Training, one concept: a run's settings, its progress reports, and the loop in both batchings."""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from models.boundaries import boundary_cut
from models.dataset import (
    SequenceDataset,
    StreamBatches,
    as_id_tensor,
    count_stream_steps,
    count_windows,
)
from models.errors import ConfigError
from models.evaluation import evaluate, perplexity
from models.lm import Hidden, RNNLanguageModel, detach_hidden
from models.training_state import TrainingState

Batching = Literal["stream", "windows"]
Precision = Literal["float32", "bfloat16"]
OptimizerName = Literal["adam", "adamw", "sgd"]
StopReason = Literal["completed", "early_stopping", "max_steps", "max_seconds", "stopped"]


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters of one training run.

    ``batching="stream"`` reads contiguous columns with the state carried (every token a
    target once per epoch); ``"windows"`` is the lesson's dataset of shuffled windows with
    ``stride``, each window starting from a zero state.
    """

    seq_len: int = 35
    batch_size: int = 20
    epochs: int = 1
    lr: float = 1e-3
    optimizer: OptimizerName = "adam"
    weight_decay: float = 0.0
    clip: float | None = 0.25
    batching: Batching = "stream"
    stride: int = 1
    seed: int | None = 0
    patience: int | None = None
    lr_decay: float = 4.0
    max_steps: int | None = None
    max_seconds: float | None = None
    eval_batch_size: int = 10
    log_every: int = 50
    precision: Precision = "float32"
    # How often fit() hands its state to on_checkpoint (whichever comes first; None: never by
    # that measure). Writing the state of WikiText-2's 2×200 LSTM (168 MB) takes ~0.16 s here,
    # so once a minute costs ~0.3 % of the run (docs/benchmarks.md, section 8).
    checkpoint_every_steps: int | None = None
    checkpoint_every_seconds: float | None = 60.0

    def __post_init__(self) -> None:
        checks = [
            (self.seq_len >= 1, "seq_len", "must be at least 1"),
            (self.batch_size >= 1, "batch_size", "must be at least 1"),
            (self.epochs >= 1, "epochs", "must be at least 1"),
            (math.isfinite(self.lr) and self.lr > 0, "lr", "must be a positive number"),
            (self.optimizer in ("adam", "adamw", "sgd"), "optimizer", "must be adam, adamw or sgd"),
            (self.weight_decay >= 0, "weight_decay", "must be non-negative"),
            (self.clip is None or self.clip > 0, "clip", "must be positive or null"),
            (self.batching in ("stream", "windows"), "batching", "must be stream or windows"),
            (self.stride >= 1, "stride", "must be at least 1"),
            (self.patience is None or self.patience >= 1, "patience", "must be at least 1"),
            (self.lr_decay >= 1, "lr_decay", "must be at least 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps", "must be at least 1"),
            (
                self.max_seconds is None or self.max_seconds > 0,
                "max_seconds",
                "must be positive",
            ),
            (self.eval_batch_size >= 1, "eval_batch_size", "must be at least 1"),
            (self.log_every >= 1, "log_every", "must be at least 1"),
            (
                self.checkpoint_every_steps is None or self.checkpoint_every_steps >= 1,
                "checkpoint_every_steps",
                "must be at least 1 or null",
            ),
            (
                self.checkpoint_every_seconds is None or self.checkpoint_every_seconds > 0,
                "checkpoint_every_seconds",
                "must be positive or null",
            ),
            (
                self.precision in ("float32", "bfloat16"),
                "precision",
                "must be float32 or bfloat16",
            ),
        ]
        for ok, name, message in checks:
            if not ok:
                raise ConfigError(f"{name} {message}, got {getattr(self, name)!r}", field=name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    """Reported to the progress callback before the first step (step 0, ``loss`` None), then
    every ``log_every`` steps and at the last one."""

    step: int
    total_steps: int  # the epochs' steps, capped by max_steps: known from the first report
    epoch: int
    epochs: int
    loss: float | None  # mean since the last report
    tokens_per_second: float
    lr: float
    elapsed_seconds: float  # training time so far (evaluations excluded)
    seconds_left: float | None = None  # until max_seconds ends the run, when it is set

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 1.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left: at the rate so far, and never past ``max_seconds``; None before the
        first step unless ``max_seconds`` bounds it."""
        fraction = self.fraction
        at_rate = self.elapsed_seconds * (1 - fraction) / fraction if fraction > 0 else None
        if self.seconds_left is None:
            return at_rate
        capped = max(0.0, self.seconds_left)
        return capped if at_rate is None else min(at_rate, capped)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float | None
    val_perplexity: float | None
    lr: float
    tokens_per_second: float


@dataclass
class TrainingResult:
    """What a run reached. Losses are mean cross-entropy in nats per target token."""

    train_loss: float
    val_loss: float | None
    val_perplexity: float | None
    tokens_per_second: float
    steps: int
    target_tokens: int
    elapsed_seconds: float
    stop_reason: StopReason
    epochs: list[EpochRecord] = field(default_factory=list)
    steps_history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingResult:
        values = dict(data)
        values["epochs"] = [EpochRecord(**record) for record in data.get("epochs", [])]
        return cls(**values)


def split_ids(
    ids: torch.Tensor, val_fraction: float, eos_id: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a stream into a contiguous training head and a held-out tail of about
    ``val_fraction``: whole texts when ``eos_id`` marks them (:func:`boundary_cut`)."""
    ids = as_id_tensor(ids)
    cut = boundary_cut(ids, val_fraction, eos_id)
    return ids[:cut], ids[cut:]


def _make_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    parameters = list(model.parameters())
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, weight_decay=config.weight_decay)
    # The fused kernel updates every parameter in one pass: on WikiText-2's 2×200 LSTM with an
    # adaptive output, 52 → 43 ms a step on 2 CPU cores (docs/benchmarks.md). It takes floating
    # parameters on the CPU or CUDA, which is all a model here has.
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    optimizer = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def check_trainable(num_train_ids: int, config: TrainingConfig) -> None:
    """Raise :class:`ConfigError` when the stream is too short for one training step."""
    if config.batching == "windows":
        if count_windows(num_train_ids, config.seq_len, config.stride) == 0:
            raise ConfigError(
                f"seq_len {config.seq_len} needs at least {config.seq_len + 1} training tokens, "
                f"the corpus has {num_train_ids}",
                field="seq_len",
            )
    elif num_train_ids // config.batch_size < 2:
        raise ConfigError(
            f"batch_size {config.batch_size} needs at least {2 * config.batch_size} training "
            f"tokens for stream batching, the corpus has {num_train_ids}",
            field="batch_size",
        )


def planned_steps(num_train_ids: int, config: TrainingConfig) -> int:
    """The optimizer steps a run of ``config`` takes over ``num_train_ids`` training ids, unless
    it stops early (patience, ``max_seconds``, a cancel)."""
    if config.batching == "stream":
        per_epoch = count_stream_steps(num_train_ids, config.batch_size, config.seq_len)
    else:
        windows = count_windows(num_train_ids, config.seq_len, config.stride)
        per_epoch = -(-windows // config.batch_size)
    total = per_epoch * config.epochs
    return min(total, config.max_steps) if config.max_steps is not None else total


def _batches(
    train_ids: torch.Tensor, config: TrainingConfig, generator: torch.Generator
) -> tuple[int, Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor, bool]]]]:
    """Steps per epoch and a factory of ``(x, y, carry_state)`` batches for one epoch."""
    if config.batching == "stream":
        stream = StreamBatches(train_ids, config.batch_size, config.seq_len)

        def stream_epoch() -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
            for x, y in stream:
                yield x, y, True

        return len(stream), stream_epoch

    windows = SequenceDataset(train_ids, config.seq_len, config.stride).windows()
    steps = -(-len(windows) // config.batch_size)

    def window_epoch() -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
        order = torch.randperm(len(windows), generator=generator)
        for start in range(0, len(windows), config.batch_size):
            batch = windows[order[start : start + config.batch_size]]  # (batch, seq_len + 1)
            yield batch[:, :-1], batch[:, 1:], False

    return steps, window_epoch


def fit(
    model: RNNLanguageModel,
    train_ids: torch.Tensor,
    val_ids: torch.Tensor | None = None,
    config: TrainingConfig | None = None,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    after_backward: Callable[[list[nn.Parameter]], None] | None = None,
    eos_id: int | None = None,
    resume: TrainingState | None = None,
    on_checkpoint: Callable[[TrainingState], None] | None = None,
    checkpoint_when_stopped: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train ``model`` in place on ``train_ids`` and return what it reached.

    After each epoch the model is evaluated on ``val_ids`` (whole stream, state carried);
    when validation does not improve the learning rate is divided by ``lr_decay``, and after
    ``patience`` such epochs training stops. The best validated weights are kept.
    ``should_stop`` is checked before every step; when it returns True training ends at once
    with ``stop_reason="stopped"``. ``after_backward`` sees the parameters after each backward
    pass (data-parallel training averages their gradients there). With ``eos_id`` the
    held-out stream is whole texts, each evaluated as a fresh text (:func:`evaluate`).

    ``on_checkpoint`` receives the run's :class:`TrainingState` every
    ``config.checkpoint_every_steps`` steps or ``config.checkpoint_every_seconds`` seconds,
    when ``should_stop`` ends the run and ``checkpoint_when_stopped()`` is True, and once the
    run has ended (with its result). ``resume`` continues from such a state: the same steps,
    losses and weights follow as if the run had never stopped (with the same ``config``, data
    and device).
    """
    config = config or TrainingConfig()
    train_ids = as_id_tensor(train_ids)
    check_trainable(len(train_ids), config)
    device = model.device
    if resume is not None and resume.result is not None:  # it had ended: nothing to train
        model.load_state_dict(resume.model_state)
        model.eval()
        return TrainingResult.from_dict(resume.result)
    if config.seed is not None:
        torch.manual_seed(config.seed)  # dropout masks
    generator = torch.Generator()
    generator.manual_seed(config.seed if config.seed is not None else torch.seed())
    _, epoch_batches = _batches(train_ids, config, generator)
    total_steps = planned_steps(len(train_ids), config)
    optimizer = _make_optimizer(model, config)
    parameters = list(model.parameters())
    # bfloat16 autocast of the forward pass (weights, gradients and evaluation stay float32):
    # on WikiText-2's 2×200 LSTM with an adaptive output, 40 → 35 ms a step on this CPU, and
    # validation perplexity after 1,500 steps 302 instead of 299 (docs/benchmarks.md).
    bfloat16 = config.precision == "bfloat16"

    loop = _Loop(lr=config.lr)
    best_state: dict[str, torch.Tensor] | None = None
    hidden: Hidden | None = None
    if resume is not None:
        loop = _Loop.resumed(resume)
        model.load_state_dict(resume.model_state)
        optimizer.load_state_dict(resume.optimizer_state)
        best_state = resume.best_state
        hidden = _to_device(resume.hidden, device)
        generator.set_state(resume.rng["generator"])
        torch.set_rng_state(resume.rng["torch"])
        if "cuda" in resume.rng and device.type == "cuda":
            torch.cuda.set_rng_state(resume.rng["cuda"], device)
    stop_reason: StopReason = "completed"
    started = time.perf_counter() - loop.elapsed_seconds
    epoch_started = time.perf_counter()
    generator_at_epoch = generator.get_state()
    last_checkpoint = (loop.step, time.perf_counter())
    model.train()

    def seconds_left() -> float | None:
        if config.max_seconds is None:
            return None
        return config.max_seconds - (time.perf_counter() - started)

    def snapshot() -> TrainingState:
        now = time.perf_counter()
        state = loop.state(
            train_seconds=loop.train_seconds + now - epoch_started,
            elapsed_seconds=now - started,
        )
        state.model_state = model.state_dict()
        state.optimizer_state = optimizer.state_dict()
        state.best_state = best_state
        state.hidden = hidden
        state.rng = {"torch": torch.get_rng_state(), "generator": generator_at_epoch}
        if device.type == "cuda":
            state.rng["cuda"] = torch.cuda.get_rng_state(device)
        return state

    def checkpoint() -> None:
        nonlocal last_checkpoint
        if on_checkpoint is not None and loop.step != last_checkpoint[0]:
            on_checkpoint(snapshot())
        last_checkpoint = (loop.step, time.perf_counter())

    def checkpoint_due() -> bool:
        every_steps, every_seconds = config.checkpoint_every_steps, config.checkpoint_every_seconds
        return on_checkpoint is not None and (
            (every_steps is not None and loop.step - last_checkpoint[0] >= every_steps)
            or (
                every_seconds is not None
                and time.perf_counter() - last_checkpoint[1] >= every_seconds
            )
        )

    if on_progress is not None:  # the plan (or where a resumed run stands) before a step
        elapsed = loop.train_seconds
        on_progress(
            Progress(
                loop.step,
                total_steps,
                loop.epoch if resume is not None else 0,
                config.epochs,
                None,
                loop.target_tokens / elapsed if elapsed > 0 else 0.0,
                loop.lr,
                elapsed,
                seconds_left(),
            )
        )

    for epoch in range(loop.epoch, config.epochs + 1):
        batches: Iterator[tuple[torch.Tensor, torch.Tensor, bool]]
        if resume is not None and epoch == resume.epoch:  # go on inside the resumed epoch
            generator_at_epoch = resume.rng["generator"]
            batches = itertools.islice(epoch_batches(), loop.batches_done, None)
        else:
            loop.start_epoch(epoch)
            hidden = None
            generator_at_epoch = generator.get_state()  # the epoch's order is drawn from here
            batches = epoch_batches()
        epoch_started = time.perf_counter()
        for x, y, carry in batches:
            if should_stop is not None and should_stop():
                stop_reason = "stopped"
                if checkpoint_when_stopped is not None and checkpoint_when_stopped():
                    checkpoint()
                break
            if config.max_steps is not None and loop.step >= config.max_steps:
                stop_reason = "max_steps"
                break
            if (
                config.max_seconds is not None
                and time.perf_counter() - started > config.max_seconds
            ):
                stop_reason = "max_seconds"
                break
            x, y = x.to(device), y.to(device)
            if not carry or hidden is None or hidden_batch(hidden) != x.size(0):
                hidden = None
            else:
                hidden = detach_hidden(hidden)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
                loss, hidden = model.loss(x, y, hidden)  # mean over the (batch, seq) targets
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if after_backward is not None:
                after_backward(parameters)
            if config.clip is not None:
                nn.utils.clip_grad_norm_(parameters, config.clip)
            optimizer.step()
            hidden = detach_hidden(hidden)  # the graph is spent; keep the values only

            loss_value = loss.item()  # one sync per step; needed for progress anyway
            loop.count(loss_value, y.numel())
            if loop.step % config.log_every == 0 or loop.step == total_steps:
                elapsed = loop.train_seconds + time.perf_counter() - epoch_started
                rate = loop.target_tokens / elapsed if elapsed > 0 else 0.0
                mean = loop.take_window_mean()
                loop.steps_history.append(
                    {"step": loop.step, "epoch": epoch, "loss": mean, "lr": loop.lr}
                )
                if on_progress is not None:
                    on_progress(
                        Progress(
                            loop.step,
                            total_steps,
                            epoch,
                            config.epochs,
                            mean,
                            rate,
                            loop.lr,
                            elapsed,
                            seconds_left(),
                        )
                    )
            if checkpoint_due():
                checkpoint()
        loop.train_seconds += time.perf_counter() - epoch_started
        epoch_started = time.perf_counter()
        if loop.epoch_targets:
            loop.last_train_loss = loop.epoch_loss / loop.epoch_targets
        # A cancelled run ends now (no evaluation); an empty epoch has nothing to evaluate.
        if stop_reason == "stopped" or (loop.epoch_targets == 0 and stop_reason != "completed"):
            break

        val_loss = None
        if val_ids is not None and len(val_ids) > 1:
            val_loss = evaluate(
                model,
                val_ids,
                batch_size=config.eval_batch_size,
                seq_len=config.seq_len,
                eos_id=eos_id,
            )
        record = EpochRecord(
            epoch=epoch,
            train_loss=loop.last_train_loss,
            val_loss=val_loss,
            val_perplexity=perplexity(val_loss),
            lr=loop.lr,
            tokens_per_second=(
                loop.target_tokens / loop.train_seconds if loop.train_seconds > 0 else 0.0
            ),
        )
        loop.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if val_loss is not None:
            if loop.best_val is None or val_loss < loop.best_val:
                loop.best_val = val_loss
                best_state = copy.deepcopy(model.state_dict()) if config.epochs > 1 else None
                loop.bad_epochs = 0
            else:
                loop.bad_epochs += 1
                loop.lr /= config.lr_decay
                for group in optimizer.param_groups:
                    group["lr"] = loop.lr
                if config.patience is not None and loop.bad_epochs >= config.patience:
                    stop_reason = "early_stopping"
        if stop_reason != "completed":
            break

    if best_state is not None and loop.epochs and loop.epochs[-1].val_loss != loop.best_val:
        model.load_state_dict(best_state)
    model.eval()
    result = TrainingResult(
        train_loss=loop.last_train_loss,
        val_loss=loop.best_val,
        val_perplexity=perplexity(loop.best_val),
        tokens_per_second=(
            loop.target_tokens / loop.train_seconds if loop.train_seconds > 0 else 0.0
        ),
        steps=loop.step,
        target_tokens=loop.target_tokens,
        elapsed_seconds=time.perf_counter() - started,
        stop_reason=stop_reason,
        epochs=loop.epochs,
        steps_history=loop.steps_history,
    )
    if on_checkpoint is not None and stop_reason != "stopped":
        # The end, kept until it is published: a run interrupted after this trains no more.
        ended = loop.state(train_seconds=loop.train_seconds, elapsed_seconds=result.elapsed_seconds)
        ended.model_state = model.state_dict()
        ended.result = result.to_dict()
        on_checkpoint(ended)
    return result


@dataclass
class _Loop:
    """The counters of :func:`fit`'s loop: what a :class:`TrainingState` keeps besides tensors."""

    lr: float
    step: int = 0
    epoch: int = 1
    batches_done: int = 0
    target_tokens: int = 0
    train_seconds: float = 0.0  # of the epochs ended, or up to the resumed step
    elapsed_seconds: float = 0.0  # before this process (a resumed run)
    epoch_loss: float = 0.0
    epoch_targets: int = 0
    window_loss: float = 0.0
    window_targets: int = 0
    last_train_loss: float = math.nan
    best_val: float | None = None
    bad_epochs: int = 0
    epochs: list[EpochRecord] = field(default_factory=list)
    steps_history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def resumed(cls, state: TrainingState) -> _Loop:
        return cls(
            lr=state.lr,
            step=state.step,
            epoch=state.epoch,
            batches_done=state.batches_done,
            target_tokens=state.target_tokens,
            train_seconds=state.train_seconds,
            elapsed_seconds=state.elapsed_seconds,
            epoch_loss=state.epoch_loss,
            epoch_targets=state.epoch_targets,
            window_loss=state.window_loss,
            window_targets=state.window_targets,
            last_train_loss=state.last_train_loss,
            best_val=state.best_val,
            bad_epochs=state.bad_epochs,
            epochs=[EpochRecord(**record) for record in state.epochs],
            steps_history=[dict(entry) for entry in state.steps_history],
        )

    def state(self, *, train_seconds: float, elapsed_seconds: float) -> TrainingState:
        """These counters as a :class:`TrainingState` whose tensors the caller fills in."""
        return TrainingState(
            step=self.step,
            epoch=self.epoch,
            batches_done=self.batches_done,
            lr=self.lr,
            target_tokens=self.target_tokens,
            train_seconds=train_seconds,
            elapsed_seconds=elapsed_seconds,
            epoch_loss=self.epoch_loss,
            epoch_targets=self.epoch_targets,
            window_loss=self.window_loss,
            window_targets=self.window_targets,
            last_train_loss=self.last_train_loss,
            best_val=self.best_val,
            bad_epochs=self.bad_epochs,
            epochs=[asdict(record) for record in self.epochs],
            steps_history=[dict(entry) for entry in self.steps_history],
            model_state={},
            optimizer_state={},
        )

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.batches_done = 0
        self.epoch_loss = 0.0
        self.epoch_targets = 0
        self.window_loss = 0.0
        self.window_targets = 0

    def count(self, loss: float, targets: int) -> None:
        """One step done: ``loss`` is its mean over ``targets`` target tokens."""
        self.step += 1
        self.batches_done += 1
        self.epoch_loss += loss * targets
        self.epoch_targets += targets
        self.window_loss += loss * targets
        self.window_targets += targets
        self.target_tokens += targets

    def take_window_mean(self) -> float:
        """The mean loss since the last report; the window starts again."""
        mean = self.window_loss / self.window_targets
        self.window_loss = 0.0
        self.window_targets = 0
        return mean


def _to_device(hidden: Hidden | None, device: torch.device) -> Hidden | None:
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return hidden[0].to(device), hidden[1].to(device)
    return hidden.to(device)


def hidden_batch(hidden: Hidden) -> int:
    return (hidden[0] if isinstance(hidden, tuple) else hidden).size(1)
