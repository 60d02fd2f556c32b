"""A training run's state in progress, and its files: what a run needs to go on exactly where
it stopped (a killed worker, a restarted service) and end as if it had never stopped.

A state is a directory, written atomically (staging, fsync, rename) and never overwritten::

    <states dir>/step-00000120/         (step-00000120-end: the state of a run that has ended)
        state.json          counters, histories, the optimizer's hyperparameters, the result
        tensors.safetensors model/…, optimizer/<param>/<key>, best/…, rng/…, hidden/…

:func:`save_training_state` writes a new directory beside the last one and then removes the
older ones; :func:`load_training_state` reads the newest whole one (by name: the step, then
``-end`` after the periodic state of the same step). No pickle anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.checkpoint import fsync_directory, sync_file, write_error
from models.errors import CheckpointError
from models.lm import Hidden

FORMAT = "seqlab.training-state"
FORMAT_VERSION = 1
STATE_FILE = "state.json"
TENSORS_FILE = "tensors.safetensors"
_PREFIX = "step-"
_ENDED_SUFFIX = "-end"
_STAGING_PREFIX = ".staging-"


@dataclass
class TrainingState:
    """Where a run of :func:`models.training.fit` stands after its ``step``-th step.

    The counters are the loop's own (so the progress reports and the result go on from them);
    the tensors are the weights, the optimizer's moments, the best validated weights, the
    carried recurrent state and the random generators (dropout, and the shuffling generator as
    it was at the start of ``epoch``: the epoch's window order is drawn again from it and its
    first ``batches_done`` batches skipped). ``result`` is set once the run has ended: then
    ``model_state`` holds the final weights and there is nothing left to train.
    """

    step: int
    epoch: int  # the epoch in progress, from 1
    batches_done: int  # of that epoch
    lr: float
    target_tokens: int
    train_seconds: float  # training time so far, evaluations excluded
    elapsed_seconds: float  # wall time since the run started (what max_seconds bounds)
    epoch_loss: float  # summed over the epoch's targets so far
    epoch_targets: int
    window_loss: float  # summed since the last progress report
    window_targets: int
    last_train_loss: float
    best_val: float | None
    bad_epochs: int
    epochs: list[dict[str, Any]]  # EpochRecord fields, one per epoch ended
    steps_history: list[dict[str, float]]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]  # torch's optimizer state_dict ({} once ended)
    best_state: dict[str, torch.Tensor] | None = None
    hidden: Hidden | None = None
    rng: dict[str, torch.Tensor] = field(default_factory=dict)  # "torch", "generator", "cuda"
    result: dict[str, Any] | None = None  # TrainingResult fields, once the run has ended


def save_training_state(states_dir: str | Path, state: TrainingState) -> Path:
    """Write ``state`` as ``states_dir/step-N`` atomically, then remove the older states.

    A crash at any point leaves the previous state or this one whole, never a mix; an
    ``OSError`` (a full disk) leaves the previous state as it was.
    """
    states_dir = Path(states_dir)
    states_dir.mkdir(parents=True, exist_ok=True)
    suffix = _ENDED_SUFFIX if state.result is not None else ""
    target = states_dir / f"{_PREFIX}{state.step:08d}{suffix}"
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=states_dir))
    try:
        tensors, document = _split(state)
        tensors_path = staging / TENSORS_FILE
        try:
            save_file(tensors, str(tensors_path), metadata={"format": FORMAT})
        except SafetensorError as error:
            raise write_error(error, tensors_path) from error
        state_path = staging / STATE_FILE
        state_path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        sync_file(tensors_path)
        sync_file(state_path)
        fsync_directory(staging)
        if target.exists():  # the same state again: set the old one aside, never a gap
            os.rename(target, staging.with_name(f"{staging.name}-replaced"))
        os.rename(staging, target)
        fsync_directory(states_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for older in states_dir.iterdir():  # older states, and staging dirs a kill left behind
        if older != target:
            shutil.rmtree(older, ignore_errors=True)
    return target


def load_training_state(states_dir: str | Path) -> TrainingState | None:
    """The newest whole state under ``states_dir``; None when there is none."""
    states_dir = Path(states_dir)
    if not states_dir.is_dir():
        return None
    candidates = sorted(
        (path for path in states_dir.iterdir() if path.name.startswith(_PREFIX)), reverse=True
    )
    for directory in candidates:  # each was renamed into place whole: the newest is enough
        return _read(directory)
    return None


def _split(state: TrainingState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors (one flat dict, each with its own storage, on the CPU) and the JSON rest."""
    tensors: dict[str, torch.Tensor] = {}

    def put(key: str, tensor: torch.Tensor) -> None:
        tensors[key] = tensor.detach().to("cpu", copy=True).contiguous()

    for name, tensor in state.model_state.items():
        put(f"model/{name}", tensor)
    for name, tensor in (state.best_state or {}).items():
        put(f"best/{name}", tensor)
    for name, tensor in state.rng.items():
        put(f"rng/{name}", tensor)
    hidden_kind = None
    if state.hidden is not None:
        parts = state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)
        hidden_kind = "pair" if isinstance(state.hidden, tuple) else "single"
        for index, part in enumerate(parts):
            put(f"hidden/{index}", part)
    optimizer_values: dict[str, dict[str, Any]] = {}
    for index, values in state.optimizer_state.get("state", {}).items():
        plain = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                put(f"optimizer/{index}/{key}", value)
            else:
                plain[key] = value  # e.g. SGD's momentum_buffer None
        optimizer_values[str(index)] = plain
    scalars = {
        name: value
        for name, value in asdict(state).items()
        if name not in ("model_state", "optimizer_state", "best_state", "hidden", "rng")
    }
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **scalars,
        "has_best_state": state.best_state is not None,
        "hidden_kind": hidden_kind,
        "optimizer": {
            "param_groups": state.optimizer_state.get("param_groups", []),
            "state": optimizer_values,
        },
    }
    return tensors, document


def _read(directory: Path) -> TrainingState:
    try:
        document = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(directory / TENSORS_FILE))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, SafetensorError) as error:
        raise CheckpointError(f"{directory} is not a readable training state: {error}") from error
    if document.get("format") != FORMAT or document.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{directory} is not a seqlab training state of this version")

    def group(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    optimizer = document["optimizer"]
    optimizer_state: dict[str, Any] = {}
    if optimizer["param_groups"]:
        per_parameter: dict[int, dict[str, Any]] = {
            int(index): dict(plain) for index, plain in optimizer["state"].items()
        }
        for key, tensor in group("optimizer/").items():
            index, name = key.split("/", 1)
            per_parameter.setdefault(int(index), {})[name] = tensor
        groups = []
        for saved in optimizer["param_groups"]:
            restored = dict(saved)
            if isinstance(restored.get("betas"), list):  # JSON has no tuples; Adam keeps one
                restored["betas"] = tuple(restored["betas"])
            groups.append(restored)
        optimizer_state = {"state": per_parameter, "param_groups": groups}
    hidden_parts = group("hidden/")
    hidden: Hidden | None = None
    if document["hidden_kind"] == "pair":
        hidden = (hidden_parts["0"], hidden_parts["1"])
    elif document["hidden_kind"] == "single":
        hidden = hidden_parts["0"]
    return TrainingState(
        step=document["step"],
        epoch=document["epoch"],
        batches_done=document["batches_done"],
        lr=document["lr"],
        target_tokens=document["target_tokens"],
        train_seconds=document["train_seconds"],
        elapsed_seconds=document["elapsed_seconds"],
        epoch_loss=document["epoch_loss"],
        epoch_targets=document["epoch_targets"],
        window_loss=document["window_loss"],
        window_targets=document["window_targets"],
        last_train_loss=document["last_train_loss"],
        best_val=document["best_val"],
        bad_epochs=document["bad_epochs"],
        epochs=document["epochs"],
        steps_history=document["steps_history"],
        model_state=group("model/"),
        optimizer_state=optimizer_state,
        best_state=group("best/") if document["has_best_state"] else None,
        hidden=hidden,
        rng=group("rng/"),
        result=document["result"],
    )
