"""Where a training step's time goes: one WikiText-2 step under each setting that could help.

The network is the benchmark's LSTM 2×200 over WikiText-2's 33,278 words, batch 20 × bptt 35.
Each variant runs in its own fresh process (the allocator setting cannot be undone in one),
takes ``--steps`` steps of ``RNNLanguageModel.loss`` → backward → clip 0.25 → Adam, and
reports the median step time after ``WARMUP`` steps, with its ratio to the first variant:

* ``full``: the full softmax, ``torch.optim.Adam`` as it comes, glibc's default malloc;
* ``+ malloc``: the training worker's malloc settings (``keep_freed_memory``);
* ``+ fused``: Adam's fused kernel (what ``models.training.fit`` now uses);
* ``adaptive …``: the adaptive softmax, cutoffs from the counts;
* ``+ bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` around the forward pass.

With ``--profile VARIANT`` it prints torch.profiler's table of that variant's operators.

Run from the repository root: ``python -m bench.training_step [--steps 25]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import torch

from bench.common import add_data_dir_argument, benchmark_parser, format_table
from bench.training import BATCH_SIZE, BPTT, CLIP, LEARNING_RATE, make_model, read_words
from models.adaptive import choose_cutoffs
from models.dataset import StreamBatches
from models.vocab import Vocab

WARMUP = 5
VARIANTS = {
    "full": {},
    "full + malloc": {"malloc": True},
    "full + malloc + fused": {"malloc": True, "fused": True},
    "adaptive": {"adaptive": True},
    "adaptive + malloc": {"adaptive": True, "malloc": True},
    "adaptive + malloc + fused": {"adaptive": True, "malloc": True, "fused": True},
    "adaptive + malloc + bf16": {"adaptive": True, "malloc": True, "bf16": True},
    "adaptive + malloc + fused + bf16": {
        "adaptive": True,
        "malloc": True,
        "fused": True,
        "bf16": True,
    },
}


def run_variant(name: str, data_dir, steps: int, profile: bool) -> dict:
    settings = VARIANTS[name]
    if settings.get("malloc"):
        from app.jobs.worker import keep_freed_memory

        keep_freed_memory()
    words = read_words(data_dir / "wikitext-2" / "train.txt")
    vocab = Vocab.build([words], order="frequency", specials=["<unk>"])
    ids = torch.tensor(vocab.encode(words))
    adaptive = bool(settings.get("adaptive"))
    cutoffs = choose_cutoffs(torch.bincount(ids, minlength=len(vocab))) if adaptive else None
    model = make_model(len(vocab), cutoffs)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=LEARNING_RATE, fused=bool(settings.get("fused"))
    )
    bf16 = bool(settings.get("bf16"))
    model.train()
    hidden = None
    times: list[float] = []
    loss_value = float("nan")

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        nonlocal hidden, loss_value
        if hidden is not None:
            hidden = tuple(part.detach() for part in hidden)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, hidden = model.loss(x, y, hidden)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        loss_value = loss.item()

    batches = iter(StreamBatches(ids, BATCH_SIZE, BPTT))
    for _ in range(steps):
        x, y = next(batches)
        started = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - started)
    loss_at_end = loss_value  # before the profiled steps, if any
    table = None
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as profiler

        with profiler(activities=[ProfilerActivity.CPU]) as recorded:
            for _ in range(10):
                step(*next(batches))
        table = recorded.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    return {
        "median_seconds": statistics.median(times[WARMUP:]),
        "loss": loss_at_end,
        "cutoffs": list(cutoffs or ()),
        "table": table,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser("bench.training_step", __doc__)
    parser.add_argument("--steps", type=int, default=25, help="steps per variant")
    parser.add_argument("--profile", choices=list(VARIANTS), default=None)
    add_data_dir_argument(parser, holding="wikitext-2/train.txt")
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.variant is not None:
        result = run_variant(
            arguments.variant,
            arguments.data_dir,
            arguments.steps,
            arguments.variant == arguments.profile,
        )
        print(json.dumps(result))
        return
    results = {}
    for name in VARIANTS:
        command = [
            sys.executable,
            "-m",
            "bench.training_step",
            "--variant",
            name,
            "--steps",
            str(arguments.steps),
            "--data-dir",
            str(arguments.data_dir),
        ]
        if arguments.profile:
            command += ["--profile", arguments.profile]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
    baseline = results["full"]["median_seconds"]
    rows = [
        [
            name,
            f"{1000 * result['median_seconds']:.1f}",
            f"{baseline / result['median_seconds']:.2f}×",
            f"{result['loss']:.3f}",
        ]
        for name, result in results.items()
    ]
    print(
        f"WikiText-2 LSTM 2×200, batch {BATCH_SIZE} × bptt {BPTT}, median of "
        f"{arguments.steps - WARMUP} steps after {WARMUP}; adaptive cutoffs "
        f"{results['adaptive']['cutoffs']}"
    )
    print(format_table(["variant", "ms/step", "speed", f"loss at step {arguments.steps}"], rows))
    if arguments.profile:
        print(f"\n{arguments.profile}:\n{results[arguments.profile]['table']}")


if __name__ == "__main__":
    main()
