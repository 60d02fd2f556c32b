"""What saving a job's training state costs: WikiText-2's LSTM 2×200, batch 20 × bptt 35.

A training job saves its state (``models.training_state``: weights, Adam's moments, the random
generators, the data position; safetensors + JSON, fsynced, renamed) every
``checkpoint_every_seconds`` (60 by default) so that an interrupted job resumes where it was.
Measured here, in this process (the worker's malloc settings, ``keep_freed_memory``):

* the time of one save and its size on disk (median of ``--saves``);
* ``fit`` for ``--steps`` steps without saving, and saving every ``--every`` steps,
  alternating A B A B for ``--rounds`` rounds (the best of each kept): the step time of both
  and the overhead of saving that often;
* what the default cadence costs: one save's time over 60 s.

The issue's goal: the defaults cost < 5 % of the step time.

Run from the repository root: ``python -m bench.checkpointing [--steps 200] [--every 20]``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from app.jobs.worker import keep_freed_memory
from bench.common import (
    add_data_dir_argument,
    benchmark_parser,
    format_table,
    machine_description,
    round_order,
)
from bench.training import BATCH_SIZE, BPTT, CLIP, LEARNING_RATE, SEED, load_corpus, make_model
from models.training import TrainingConfig, fit
from models.training_state import TrainingState, save_training_state

DEFAULT_CADENCE_SECONDS = TrainingConfig().checkpoint_every_seconds or 60.0


def _config(steps: int, every: int | None) -> TrainingConfig:
    return TrainingConfig(
        batching="stream",
        batch_size=BATCH_SIZE,
        seq_len=BPTT,
        max_steps=steps,
        lr=LEARNING_RATE,
        clip=CLIP,
        seed=SEED,
        log_every=50,
        checkpoint_every_steps=every,
        checkpoint_every_seconds=None,
    )


def _timed_fit(train_ids: torch.Tensor, vocab_size: int, steps: int, every: int | None) -> float:
    """Seconds per step of ``fit`` (saving every ``every`` steps into a temp dir)."""
    model = make_model(vocab_size)
    with tempfile.TemporaryDirectory(prefix="seqlab-states-") as states:
        started = time.perf_counter()
        fit(
            model,
            train_ids,
            None,
            _config(steps, every),
            on_checkpoint=(lambda state: save_training_state(states, state)) if every else None,
        )
        return (time.perf_counter() - started) / steps


def _save_seconds(train_ids: torch.Tensor, vocab_size: int, saves: int) -> tuple[float, int]:
    """The median time of one save of a real state (after 10 steps), and its bytes."""
    captured: list[TrainingState] = []
    fit(
        make_model(vocab_size),
        train_ids,
        None,
        _config(10, 10),
        on_checkpoint=captured.append,
    )
    state = captured[0]  # the state at step 10 (the second one is the ended run's)
    times = []
    with tempfile.TemporaryDirectory(prefix="seqlab-states-") as states:
        for _ in range(saves):
            started = time.perf_counter()
            written = save_training_state(states, state)
            times.append(time.perf_counter() - started)
        size = sum(path.stat().st_size for path in Path(written).iterdir())
    return statistics.median(times), size


def main() -> None:
    parser = benchmark_parser(__name__, __doc__)
    add_data_dir_argument(parser, "wikitext-2/")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--saves", type=int, default=5)
    arguments = parser.parse_args()
    keep_freed_memory()
    print(machine_description(["torch", "safetensors"]))
    corpus = load_corpus(arguments.data_dir, valid_tokens=0)
    vocab_size = len(corpus.vocab)
    save_seconds, size = _save_seconds(corpus.train_ids, vocab_size, arguments.saves)
    per_step: dict[str, list[float]] = {"no saves": [], f"a save every {arguments.every}": []}
    for round_number in range(arguments.rounds):
        for name in round_order(list(per_step), round_number):
            every = None if name == "no saves" else arguments.every
            per_step[name].append(_timed_fit(corpus.train_ids, vocab_size, arguments.steps, every))
    without, with_saves = (min(times) for times in per_step.values())
    rows = [
        ["one save", f"{save_seconds * 1000:.0f} ms", f"{size / 1e6:.1f} MB", ""],
        ["step, no saves", f"{without * 1000:.1f} ms", "", "1.000x"],
        [
            f"step, a save every {arguments.every} steps",
            f"{with_saves * 1000:.1f} ms",
            "",
            f"{with_saves / without:.3f}x",
        ],
        [
            f"default: a save every {DEFAULT_CADENCE_SECONDS:g} s",
            "",
            "",
            f"+{save_seconds / DEFAULT_CADENCE_SECONDS:.2%} of the run",
        ],
    ]
    print(format_table(["what", "time", "size", "vs no saves"], rows))


if __name__ == "__main__":
    main()
