"""WikiText-2 at equal wall-clock: the reference training loop against seqlab's best setup.

Both train the same network — LSTM 2×200 (embedding 200), dropout 0.2, batch 20, bptt 35,
Adam lr 1e-3, gradient-norm clip 0.25, seed 0 — on ``wikitext-2/train.txt`` (every line closed
by ``<eos>``, 33,278 words) for the same wall-clock budget (``--seconds``, 15 minutes by default),
each in its own fresh process, one after the other:

* ``reference``: the training loop of pytorch/examples ``word_language_model`` written out by
  hand (``bench.training.train_reference``, epoch after epoch until the budget is spent): full
  softmax over the vocabulary in first-seen order, ``torch.optim.Adam`` as it comes, glibc's
  default malloc.
* ``seqlab``: what ``POST /train`` does with ``"create": {"output": "adaptive"}``: a
  frequency-ordered vocabulary, an adaptive softmax with the cutoffs chosen from the counts,
  the output layer started at the unigram, ``models.training.fit`` (fused Adam), and the
  training worker's malloc settings (``app.jobs.worker.keep_freed_memory``).

Afterwards both are evaluated the same way, on the whole of ``valid.txt``: WikiText's published
convention (``models.evaluation.evaluate`` without ``<eos>`` resets: columns of 10, bptt 35,
state carried). The ``seqlab`` run also keeps its weights at the step the reference reached,
so the two are compared at equal steps as well. Goals (issue 7): target tokens/s ≥ 3× the
reference; perplexity at equal wall-clock ≤ 0.7× the reference's; at equal steps no more than
5 % above it (the adaptive softmax must not cost quality; being better — the unigram start
helps early on — is fine).

Run from the repository root on an idle machine:
``python -m bench.wikitext [--seconds 900] [--output results.json]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.common import (
    add_data_dir_argument,
    benchmark_parser,
    format_table,
    machine_description,
    others_cpu_share,
    require_corpus,
    sample_cpu,
    warn_if_contended,
)
from bench.training import (
    BATCH_SIZE,
    BPTT,
    CLIP,
    LEARNING_RATE,
    SEED,
    make_model,
    read_words,
    train_reference,
)
from models.adaptive import choose_cutoffs
from models.evaluation import bigram_perplexity, evaluate, unigram_log_probs, unigram_perplexity
from models.lm import RNNLanguageModel
from models.training import TrainingConfig, fit
from models.vocab import Vocab

CORPUS = Path("wikitext-2")
EVAL_BATCH_SIZE = 10
CONTENDERS = ("reference", "seqlab")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser("bench.wikitext", __doc__)
    parser.add_argument("--seconds", type=float, default=900.0, help="training budget of each")
    add_data_dir_argument(parser, holding="wikitext-2/{train,valid}.txt")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON")
    # Internal: run one contender in this process and print its result as JSON.
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot-step", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def read_corpus(data_dir: Path) -> tuple[list[str], list[str]]:
    train = require_corpus(data_dir / CORPUS / "train.txt")
    valid = require_corpus(data_dir / CORPUS / "valid.txt")
    return read_words(train), read_words(valid)


def run_reference(train_words: list[str], valid_words: list[str], seconds: float) -> dict:
    vocab = Vocab.build([train_words], specials=["<unk>"])
    train_ids = torch.tensor(vocab.encode(train_words))
    valid_ids = torch.tensor(vocab.encode(valid_words))
    model = make_model(len(vocab))
    before = sample_cpu()
    run = train_reference(model, train_ids, steps=sys.maxsize, seconds=seconds)
    after = sample_cpu()
    return {
        "steps": run.steps,
        "target_tokens": run.target_tokens,
        "seconds": after.wall - before.wall,
        "train_loss": run.train_loss,
        "others_cpu_share": others_cpu_share(before, after),
        "val_perplexity": _valid_perplexity(model, valid_ids),
        "unigram_perplexity": unigram_perplexity(train_ids, valid_ids[1:], len(vocab)),
        "bigram_perplexity": bigram_perplexity(train_ids, valid_ids, len(vocab)),
        "vocab_size": len(vocab),
    }


def run_seqlab(
    train_words: list[str], valid_words: list[str], seconds: float, snapshot_step: int | None
) -> dict:
    from app.jobs.worker import keep_freed_memory

    keep_freed_memory()
    vocab = Vocab.build([train_words], order="frequency", specials=["<unk>"])
    train_ids = torch.tensor(vocab.encode(train_words))
    valid_ids = torch.tensor(vocab.encode(valid_words))
    counts = torch.bincount(train_ids, minlength=len(vocab))
    cutoffs = choose_cutoffs(counts)
    model = make_model(len(vocab), cutoffs)
    model.start_from_counts(unigram_log_probs(train_ids, len(vocab)).float())
    snapshot: dict[str, torch.Tensor] = {}

    def keep_at_snapshot(progress: Any) -> None:
        if snapshot_step is not None and progress.step == snapshot_step and not snapshot:
            snapshot.update(copy.deepcopy(model.state_dict()))

    config = TrainingConfig(
        seq_len=BPTT,
        batch_size=BATCH_SIZE,
        epochs=10_000,
        lr=LEARNING_RATE,
        clip=CLIP,
        seed=SEED,
        max_seconds=seconds,
        log_every=1,
    )
    before = sample_cpu()
    result = fit(model, train_ids, None, config, on_progress=keep_at_snapshot)
    after = sample_cpu()
    answer = {
        "steps": result.steps,
        "target_tokens": result.target_tokens,
        "seconds": result.elapsed_seconds,
        "train_loss": result.train_loss,
        "others_cpu_share": others_cpu_share(before, after),
        "val_perplexity": _valid_perplexity(model, valid_ids),
        "cutoffs": list(cutoffs),
        "vocab_size": len(vocab),
    }
    if snapshot:
        model.load_state_dict(snapshot)
        answer["snapshot_step"] = snapshot_step
        answer["snapshot_val_perplexity"] = _valid_perplexity(model, valid_ids)
    return answer


def _valid_perplexity(model: RNNLanguageModel, valid_ids: torch.Tensor) -> float:
    model.eval()
    return math.exp(evaluate(model, valid_ids, batch_size=EVAL_BATCH_SIZE, seq_len=BPTT))


def run_contender_process(arguments: argparse.Namespace, name: str, **extra: Any) -> dict:
    command = [
        sys.executable,
        "-m",
        "bench.wikitext",
        "--contender",
        name,
        "--seconds",
        str(arguments.seconds),
        "--data-dir",
        str(arguments.data_dir),
    ]
    if extra.get("snapshot_step") is not None:
        command += ["--snapshot-step", str(extra["snapshot_step"])]
    print(f"running {name} for {arguments.seconds:.0f} s …", file=sys.stderr, flush=True)
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def report(results: dict[str, dict], seconds: float) -> str:
    reference, seqlab = results["reference"], results["seqlab"]
    speed = {name: result["target_tokens"] / result["seconds"] for name, result in results.items()}
    rows = [
        [
            name,
            f"{result['steps']:,}",
            f"{speed[name]:,.0f}",
            f"{speed[name] / speed['reference']:.2f}×",
            f"{result['train_loss']:.3f}",
            f"{result['val_perplexity']:.1f}",
            f"{result['val_perplexity'] / reference['val_perplexity']:.3f}",
        ]
        for name, result in results.items()
    ]
    table = format_table(
        ["contender", "steps", "target tok/s", "speed", "train loss", "valid ppl", "ppl ratio"],
        rows,
    )
    equal_steps = seqlab.get("snapshot_val_perplexity")
    lines = [
        f"WikiText-2, LSTM 2×200, batch {BATCH_SIZE} × bptt {BPTT}, {seconds:.0f} s of training "
        f"each; whole valid.txt (unigram {reference['unigram_perplexity']:.1f}, "
        f"interpolated bigram {reference['bigram_perplexity']:.1f}); seqlab cutoffs "
        f"{seqlab['cutoffs']}",
        table,
    ]
    if equal_steps is not None:
        change = equal_steps / reference["val_perplexity"] - 1
        lines.append(
            f"at equal steps ({seqlab['snapshot_step']:,}): seqlab {equal_steps:.1f} against the "
            f"reference's {reference['val_perplexity']:.1f} ({change:+.1%})"
        )
    goals = [
        ("target tokens/s ≥ 3× the reference", speed["seqlab"] / speed["reference"] >= 3.0),
        (
            "perplexity at equal wall-clock ≤ 0.7× the reference's",
            seqlab["val_perplexity"] <= 0.7 * reference["val_perplexity"],
        ),
    ]
    if equal_steps is not None:
        goals.append(
            (
                "perplexity at equal steps ≤ 1.05× the reference's",
                equal_steps <= 1.05 * reference["val_perplexity"],
            )
        )
    lines += [f"goal: {goal}: {'met' if met else 'NOT met'}" for goal, met in goals]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    train_words, valid_words = read_corpus(arguments.data_dir)
    if arguments.contender is not None:
        if arguments.contender == "reference":
            result = run_reference(train_words, valid_words, arguments.seconds)
        else:
            result = run_seqlab(
                train_words, valid_words, arguments.seconds, arguments.snapshot_step
            )
        print(json.dumps(result))
        return
    print(machine_description(["torch"]))
    results = {"reference": run_contender_process(arguments, "reference")}
    results["seqlab"] = run_contender_process(
        arguments, "seqlab", snapshot_step=results["reference"]["steps"]
    )
    warn_if_contended(max(r["others_cpu_share"] or 0.0 for r in results.values()))
    print(report(results, arguments.seconds))
    if arguments.output is not None:
        arguments.output.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
