"""A run stopped anywhere and resumed from its last state ends as if it had never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.errors import CheckpointError, ConfigError
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.training import TrainingConfig, TrainingResult, fit, split_ids
from models.training_state import (
    load_training_state,
    save_training_state,
)


def _stream(length: int = 3000, vocab_size: int = 40) -> torch.Tensor:
    """A stream with structure to learn: each id mostly follows from the one before."""
    generator = torch.Generator().manual_seed(7)
    ids = [0]
    for _ in range(length - 1):
        jump = torch.randint(0, 4, (1,), generator=generator).item()
        ids.append((ids[-1] * 3 + 1 + jump) % vocab_size)
    return torch.tensor(ids)


def _model(cell: str, tie: bool = False) -> RNNLanguageModel:
    torch.manual_seed(3)
    return RNNLanguageModel(
        LanguageModelConfig(
            vocab_size=40,
            embedding_dim=16,
            hidden_size=16,
            num_layers=2,
            cell=cell,  # type: ignore[arg-type]
            dropout=0.2,  # the dropout masks must come back the same after a resume
            tie_weights=tie,
        )
    )


CASES = {
    "stream-lstm": ({"batching": "stream", "optimizer": "adam"}, "lstm", False),
    "windows-gru-tied": ({"batching": "windows", "stride": 3, "optimizer": "adamw"}, "gru", True),
    "stream-rnn-sgd": ({"batching": "stream", "optimizer": "sgd", "lr": 0.5}, "rnn", False),
}


def _config(overrides: dict) -> TrainingConfig:
    settings = {
        "seq_len": 8,
        "batch_size": 8,
        "epochs": 3,
        "lr": 0.01,
        "seed": 11,
        "log_every": 4,
        "lr_decay": 2.0,
        "checkpoint_every_seconds": None,
        **overrides,
    }
    return TrainingConfig(**settings)


def _stop_after(steps: int):
    """A should_stop that ends a run after ``steps`` steps (it is asked before every step)."""
    asked = {"times": 0}

    def should_stop() -> bool:
        asked["times"] += 1
        return asked["times"] > steps

    return should_stop


def _uninterrupted(overrides: dict, cell: str, tie: bool) -> tuple[RNNLanguageModel, object]:
    train_ids, val_ids = split_ids(_stream(), 0.1)
    model = _model(cell, tie)
    return model, fit(model, train_ids, val_ids, _config(overrides))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stop_at", [5, 37, 70])
def test_a_run_resumed_from_a_periodic_state_ends_as_an_uninterrupted_one(
    case: str, stop_at: int, tmp_path: Path
) -> None:
    overrides, cell, tie = CASES[case]
    expected_model, expected = _uninterrupted(overrides, cell, tie)
    train_ids, val_ids = split_ids(_stream(), 0.1)
    config = _config({**overrides, "checkpoint_every_steps": 4})

    # A "kill" at step stop_at: the run stops and nothing is saved then; the last periodic
    # state (a multiple of 4 steps) is all that is left.
    fit(
        _model(cell, tie),
        train_ids,
        val_ids,
        config,
        on_checkpoint=lambda state: save_training_state(tmp_path, state),
        should_stop=_stop_after(stop_at),
    )
    state = load_training_state(tmp_path)
    assert state is not None
    assert state.result is None
    assert state.step == stop_at // 4 * 4

    resumed_model = _model(cell, tie)
    with torch.random.fork_rng():
        torch.manual_seed(999)  # whatever the process's generators hold: the state decides
        resumed = fit(resumed_model, train_ids, val_ids, config, resume=state)
    _assert_same_run(resumed, expected)
    for name, tensor in expected_model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[name], tensor, rtol=0, atol=1e-6)


def _assert_same_run(resumed: TrainingResult, expected: TrainingResult) -> None:
    assert resumed.steps == expected.steps
    assert resumed.target_tokens == expected.target_tokens
    assert resumed.stop_reason == expected.stop_reason
    assert [s["step"] for s in resumed.steps_history] == [s["step"] for s in expected.steps_history]
    torch.testing.assert_close(
        [s["loss"] for s in resumed.steps_history],
        [s["loss"] for s in expected.steps_history],
        rtol=1e-6,
        atol=1e-6,
    )
    assert [r.epoch for r in resumed.epochs] == [r.epoch for r in expected.epochs]
    torch.testing.assert_close(
        [r.val_loss for r in resumed.epochs], [r.val_loss for r in expected.epochs]
    )
    assert [r.lr for r in resumed.epochs] == [r.lr for r in expected.epochs]
    assert resumed.val_loss == pytest.approx(expected.val_loss, abs=1e-6)


def test_a_run_stopped_on_request_saves_its_state_at_that_step(tmp_path: Path) -> None:
    overrides, cell, tie = CASES["stream-lstm"]
    expected_model, expected = _uninterrupted(overrides, cell, tie)
    train_ids, val_ids = split_ids(_stream(), 0.1)
    config = _config(overrides)  # no periodic states at all
    stopped = fit(
        _model(cell, tie),
        train_ids,
        val_ids,
        config,
        on_checkpoint=lambda state: save_training_state(tmp_path, state),
        should_stop=_stop_after(50),
        checkpoint_when_stopped=lambda: True,
    )
    assert stopped.stop_reason == "stopped"
    state = load_training_state(tmp_path)
    assert state is not None
    assert (state.step, state.epoch) == (50, 2)
    resumed_model = _model(cell, tie)
    _assert_same_run(fit(resumed_model, train_ids, val_ids, config, resume=state), expected)
    for name, tensor in expected_model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[name], tensor, rtol=0, atol=1e-6)


def test_an_ended_run_leaves_its_result_and_final_weights(tmp_path: Path) -> None:
    overrides, cell, tie = CASES["stream-lstm"]
    train_ids, val_ids = split_ids(_stream(), 0.1)
    config = _config({**overrides, "checkpoint_every_steps": 10})
    model = _model(cell, tie)
    result = fit(
        model,
        train_ids,
        val_ids,
        config,
        on_checkpoint=lambda state: save_training_state(tmp_path, state),
    )
    state = load_training_state(tmp_path)
    assert state is not None
    assert state.result is not None
    assert state.step == result.steps
    assert state.optimizer_state == {}  # nothing left to train: no moments kept
    assert [path.name for path in tmp_path.iterdir()] == [f"step-{result.steps:08d}-end"]

    again = _model("lstm")
    replayed = fit(again, train_ids, val_ids, config, resume=state)  # no step is taken
    assert replayed == result
    assert not again.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor)


def test_a_state_is_replaced_whole_and_leftovers_of_a_kill_are_ignored(tmp_path: Path) -> None:
    train_ids, val_ids = split_ids(_stream(), 0.1)
    fit(
        _model("gru"),
        train_ids,
        val_ids,
        _config({"epochs": 1, "max_steps": 12, "checkpoint_every_steps": 5}),
        on_checkpoint=lambda state: save_training_state(tmp_path, state),
        should_stop=_stop_after(11),
    )
    (tmp_path / ".staging-killed").mkdir()  # what a kill during a write leaves
    (tmp_path / ".staging-killed" / "state.json").write_text("{", encoding="utf-8")
    state = load_training_state(tmp_path)
    assert state is not None
    assert state.step == 10
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".staging-killed",
        "step-00000010",
    ]
    save_training_state(tmp_path, state)  # the same step again: replaced, leftovers cleared
    assert [path.name for path in tmp_path.iterdir()] == ["step-00000010"]


def test_no_state_is_none_and_a_damaged_one_is_a_checkpoint_error(tmp_path: Path) -> None:
    assert load_training_state(tmp_path / "absent") is None
    assert load_training_state(tmp_path) is None
    damaged = tmp_path / "step-00000003"
    damaged.mkdir()
    (damaged / "state.json").write_text('{"format": "something else"}', encoding="utf-8")
    with pytest.raises(CheckpointError, match="training state"):
        load_training_state(tmp_path)


@pytest.mark.parametrize(
    ("field", "value"),
    [("checkpoint_every_steps", 0), ("checkpoint_every_seconds", 0.0)],
)
def test_checkpoint_cadence_must_be_positive(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainingConfig(**{field: value})
