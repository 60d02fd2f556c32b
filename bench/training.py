"""Training throughput of ``models.training.fit`` against a minimal hand-written loop.

Measured: target tokens per second of word-level language-model training on WikiText-2
(``wikitext-2/train.txt``), for a fixed number of steps, batch 20 × bptt 35 (700 targets
per step), on the same model from the same initial weights:

* ``reference loop`` (baseline): the training loop of pytorch/examples
  ``word_language_model/main.py`` written out by hand — batchify into 20 contiguous
  columns, bptt chunks of 35, hidden state detached between chunks, cross-entropy,
  gradient-norm clip 0.25 — with Adam (lr 1e-3) as the optimizer.
* ``models.training.fit``: ``TrainingConfig(batching="stream", batch_size=20, seq_len=35,
  optimizer="adam", lr=1e-3, clip=0.25, seed=0, max_steps=steps)``, ``val_ids=None`` so that
  no evaluation time is counted. The goal is ≥ 1.0× the reference loop.

Both are timed by the same stopwatch around the whole call (optimizer creation and
batching included); fit's own ``tokens_per_second`` is shown next to it. The contenders
run alternately, ``--rounds`` times, in the order a b / b a / a b …, after a short
untimed warm-up; the best round of each is reported. Each run also reports its system
CPU time and minor page faults (glibc hands the ~90 MB logits buffers back to the kernel and
faults them in again every step, which is most of the run-to-run noise), and the share of
the CPUs that *other* processes used meanwhile (from ``/proc/stat``), with a warning when it
passes 10 %. Both seed the global RNG with 0 before training, so they see the same dropout
masks and should reach the same loss.

After training, each model's validation perplexity is measured the same way for both
(``models.evaluation.evaluate``, batch 10, bptt 35) on the first ``--valid-tokens`` tokens of
``valid.txt``, with the unigram perplexity of that slice as a reference.

Run from the repository root: ``python -m bench.training [--steps 100] [--data-dir ...]``.
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from bench.common import (
    add_data_dir_argument,
    benchmark_parser,
    format_share,
    format_table,
    others_cpu_share,
    require_at_least_one,
    require_corpus,
    round_order,
    sample_cpu,
    spread,
    warn_if_contended,
)
from models.evaluation import evaluate, unigram_perplexity
from models.lm import Hidden, LanguageModelConfig, RNNLanguageModel
from models.training import TrainingConfig, fit
from models.vocab import Vocab

CORPUS_DIR = Path("wikitext-2")
END_OF_SENTENCE = "<eos>"
UNKNOWN = "<unk>"
BATCH_SIZE = 20
BPTT = 35
EVAL_BATCH_SIZE = 10
LEARNING_RATE = 1e-3
CLIP = 0.25
SEED = 0
WARMUP_STEPS = 3
GOAL_RATIO = 1.0
REFERENCE = "reference loop"
FIT = "models.training.fit"
CONTENDERS = (REFERENCE, FIT)


@dataclass(frozen=True)
class Corpus:
    vocab: Vocab
    train_ids: torch.Tensor
    valid_ids: torch.Tensor


@dataclass(frozen=True)
class Run:
    """One timed training run of one contender."""

    name: str
    round_number: int
    steps: int
    target_tokens: int
    seconds: float
    train_loss: float
    reported_tokens_per_second: float | None
    others_cpu_share: float | None = None
    system_seconds: float = 0.0
    minor_page_faults: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.target_tokens / self.seconds


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser("bench.training", __doc__)
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    add_data_dir_argument(parser, holding="wikitext-2/{train,valid}.txt")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of (a, b)")
    parser.add_argument(
        "--valid-tokens", type=int, default=20_000, help="size of the validation slice"
    )
    arguments = parser.parse_args(argv)
    require_at_least_one(parser, arguments, ["steps", "rounds", "valid_tokens"])
    return arguments


def read_words(path: Path) -> list[str]:
    """Whitespace-split words of every line, each line closed by ``<eos>`` (as data.py does)."""
    words: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            words.extend(line.split())
            words.append(END_OF_SENTENCE)
    return words


def load_corpus(data_dir: Path, valid_tokens: int) -> Corpus:
    train_path = data_dir / CORPUS_DIR / "train.txt"
    valid_path = data_dir / CORPUS_DIR / "valid.txt"
    for path in (train_path, valid_path):
        require_corpus(path)
    train_words = read_words(train_path)
    valid_words = read_words(valid_path)[:valid_tokens]
    # WikiText-2 already writes rare words as <unk>; making it the special only moves it to
    # id 0 (any word of valid.txt missing from train.txt would also map there; there are none).
    vocab = Vocab.build([train_words], specials=[UNKNOWN])
    train_ids = torch.tensor(vocab.encode(train_words), dtype=torch.long)
    valid_ids = torch.tensor(vocab.encode(valid_words), dtype=torch.long)
    return Corpus(vocab, train_ids, valid_ids)


def make_model(vocab_size: int, cutoffs: tuple[int, ...] | None = None) -> RNNLanguageModel:
    """The benchmarks' WikiText-2 network (LSTM 2×200, dropout 0.2), seeded with ``SEED``:
    a full softmax, or with ``cutoffs`` an adaptive one."""
    torch.manual_seed(SEED)
    config = LanguageModelConfig(
        vocab_size=vocab_size,
        embedding_dim=200,
        hidden_size=200,
        num_layers=2,
        cell="lstm",
        dropout=0.2,
        output="adaptive" if cutoffs is not None else "full",
        cutoffs=cutoffs or (),
    )
    return RNNLanguageModel(config)


# --- (a) the reference loop, after pytorch/examples word_language_model/main.py ---------


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``(batch_size, columns)``: each row a contiguous run of the stream (model is batch_first)."""
    columns = ids.size(0) // batch_size
    return ids[: columns * batch_size].view(batch_size, columns)


def get_batch(source: torch.Tensor, position: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = min(BPTT, source.size(1) - 1 - position)
    return source[:, position : position + length], source[:, position + 1 : position + 1 + length]


def repackage_hidden(hidden: Hidden) -> Hidden:
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return tuple(repackage_hidden(part) for part in hidden)


def train_reference(
    model: RNNLanguageModel,
    train_ids: torch.Tensor,
    steps: int,
    seconds: float | None = None,
) -> Run:
    """The hand-written baseline: steps, targets and mean loss (the caller adds the time).

    Epochs follow one another (the state starting from zeros in each, as in WLM) until
    ``steps`` are taken or, when given, ``seconds`` of wall-clock have passed.
    """
    torch.manual_seed(SEED)  # the same dropout masks as fit(seed=0)
    data = batchify(train_ids, BATCH_SIZE)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    criterion = nn.CrossEntropyLoss()
    model.train()
    vocab_size = model.config.vocab_size
    total_loss = 0.0
    targets_seen = 0
    step = 0
    started = time.perf_counter()

    def more() -> bool:
        return step < steps and (seconds is None or time.perf_counter() - started < seconds)

    while more():
        hidden = model.init_hidden(BATCH_SIZE)
        for position in range(0, data.size(1) - 1, BPTT):
            if not more():
                break
            inputs, targets = get_batch(data, position)
            hidden = repackage_hidden(hidden)
            model.zero_grad()
            logits, hidden = model(inputs, hidden)
            loss = criterion(logits.view(-1, vocab_size), targets.reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            total_loss += loss.item() * targets.numel()
            targets_seen += targets.numel()
            step += 1
    model.eval()
    return Run(
        name=REFERENCE,
        round_number=0,
        steps=step,
        target_tokens=targets_seen,
        seconds=0.0,
        train_loss=total_loss / targets_seen,
        reported_tokens_per_second=None,
    )


# --- (b) models.training.fit ------------------------------------------------------------


def train_with_fit(model: RNNLanguageModel, train_ids: torch.Tensor, steps: int) -> Run:
    config = TrainingConfig(
        batching="stream",
        batch_size=BATCH_SIZE,
        seq_len=BPTT,
        max_steps=steps,
        optimizer="adam",
        lr=LEARNING_RATE,
        clip=CLIP,
        epochs=1,
        seed=SEED,
        log_every=50,
    )
    result = fit(model, train_ids, val_ids=None, config=config)
    return Run(
        name=FIT,
        round_number=0,
        steps=result.steps,
        target_tokens=result.target_tokens,
        seconds=0.0,
        train_loss=result.train_loss,
        reported_tokens_per_second=result.tokens_per_second,
    )


TRAINERS = {REFERENCE: train_reference, FIT: train_with_fit}


def timed_run(
    name: str, initial: RNNLanguageModel, train_ids: torch.Tensor, steps: int, round_number: int
) -> tuple[Run, RNNLanguageModel]:
    model = copy.deepcopy(initial)
    before = sample_cpu()
    run = TRAINERS[name](model, train_ids, steps)
    after = sample_cpu()
    timed = replace(
        run,
        round_number=round_number,
        seconds=after.wall - before.wall,
        others_cpu_share=others_cpu_share(before, after),
        system_seconds=after.own_system - before.own_system,
        minor_page_faults=after.minor_page_faults - before.minor_page_faults,
    )
    print(
        f"  round {round_number}  {name:<20} {timed.steps:4d} steps  {timed.seconds:7.2f} s  "
        f"{timed.tokens_per_second:6,.0f} targets/s  loss {timed.train_loss:.4f}  "
        f"sys {timed.system_seconds:5.1f} s  {timed.minor_page_faults / 1e6:5.1f}M page faults  "
        f"others {format_share(timed.others_cpu_share)} of CPUs",
        flush=True,
    )
    return timed, model


def run_contenders(
    initial: RNNLanguageModel, train_ids: torch.Tensor, steps: int, rounds: int
) -> tuple[list[Run], dict[str, RNNLanguageModel]]:
    """All timed runs, and each contender's model trained in its first run."""
    train_reference(copy.deepcopy(initial), train_ids, WARMUP_STEPS)  # untimed warm-up
    runs: list[Run] = []
    trained: dict[str, RNNLanguageModel] = {}
    for round_number in range(1, rounds + 1):
        for name in round_order(CONTENDERS, round_number):
            run, model = timed_run(name, initial, train_ids, steps, round_number)
            runs.append(run)
            trained.setdefault(name, model)
    return runs, trained


def best_runs(runs: list[Run]) -> dict[str, Run]:
    best: dict[str, Run] = {}
    for run in runs:
        if run.name not in best or run.seconds < best[run.name].seconds:
            best[run.name] = run
    return best


def round_seconds(runs: list[Run], name: str) -> list[float]:
    """The seconds of each of one contender's runs."""
    return [run.seconds for run in runs if run.name == name]


class ContenderResult(Protocol):
    """What a row of a training table shows: a ``Run`` here, a ``POST /train`` in
    ``bench.train_http``."""

    @property
    def name(self) -> str: ...
    @property
    def steps(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def tokens_per_second(self) -> float: ...
    @property
    def reported_tokens_per_second(self) -> float | None: ...
    @property
    def train_loss(self) -> float: ...


def contenders_table(
    results: Sequence[ContenderResult], perplexities: dict[str, float], headers: Sequence[str]
) -> str:
    """One row per result, in the columns named by ``headers`` and in their order; the ratio
    is to the reference loop's targets/s, the perplexity the one of the result's name."""
    baseline = next(result for result in results if result.name == REFERENCE).tokens_per_second

    def reported(result: ContenderResult) -> str:
        rate = result.reported_tokens_per_second
        return "-" if rate is None else f"{rate:,.0f}"

    cells: dict[str, Callable[[ContenderResult], str]] = {
        "contender": lambda result: result.name,
        "steps": lambda result: str(result.steps),
        "seconds": lambda result: f"{result.seconds:.2f}",
        "wall s": lambda result: f"{result.seconds:.1f}",
        "targets/s": lambda result: f"{result.tokens_per_second:,.0f}",
        "fit's own": reported,
        "vs reference": lambda result: f"{result.tokens_per_second / baseline:.3f}x",
        "train loss": lambda result: f"{result.train_loss:.4f}",
        "valid ppl": lambda result: f"{perplexities[result.name]:,.1f}",
        "val ppl": lambda result: f"{perplexities[result.name]:,.1f}",
    }
    rows = [[cells[header](result) for header in headers] for result in results]
    return format_table(headers, rows)


def results_table(best: dict[str, Run], perplexities: dict[str, float]) -> str:
    headers = [
        "contender",
        "steps",
        "seconds",
        "targets/s",
        "fit's own",
        "vs reference",
        "train loss",
        "valid ppl",
    ]
    return contenders_table([best[name] for name in CONTENDERS], perplexities, headers)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"torch.get_num_threads() = {torch.get_num_threads()}"
    )
    started = time.perf_counter()
    corpus = load_corpus(arguments.data_dir, arguments.valid_tokens)
    print(
        f"wikitext-2: {len(corpus.train_ids):,} training tokens, vocabulary {len(corpus.vocab):,}, "
        f"validation slice {len(corpus.valid_ids):,} tokens "
        f"(loaded in {time.perf_counter() - started:.1f} s)"
    )
    initial = make_model(len(corpus.vocab))
    print(
        f"model: 2-layer LSTM 200/200, dropout 0.2, {initial.num_parameters():,} parameters; "
        f"batch {BATCH_SIZE} x bptt {BPTT}, Adam lr {LEARNING_RATE:g}, clip {CLIP}"
    )
    print(
        f"{arguments.steps} steps per run, {arguments.rounds} alternating round(s) "
        f"after a {WARMUP_STEPS}-step untimed warm-up\n"
    )
    runs, trained = run_contenders(initial, corpus.train_ids, arguments.steps, arguments.rounds)

    perplexities = {
        name: math.exp(evaluate(model, corpus.valid_ids, batch_size=EVAL_BATCH_SIZE, seq_len=BPTT))
        for name, model in trained.items()
    }
    unigram = unigram_perplexity(corpus.train_ids, corpus.valid_ids, len(corpus.vocab))
    best = best_runs(runs)
    print(f"\nbest of {arguments.rounds} round(s) per contender:")
    print(results_table(best, perplexities))
    print(f"\nunigram perplexity of the validation slice (add-one, from train.txt): {unigram:,.1f}")
    ratio = best[FIT].tokens_per_second / best[REFERENCE].tokens_per_second
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(f"goal for fit: >= {GOAL_RATIO}x the reference loop — {verdict} ({ratio:.3f}x)")
    if arguments.rounds > 1:
        spreads = {name: spread(round_seconds(runs, name)) for name in CONTENDERS}
        noise = max(spreads.values())
        print(
            f"run-to-run spread over {arguments.rounds} rounds: "
            f"reference loop {spreads[REFERENCE]:.1%}, fit {spreads[FIT]:.1%}"
        )
        if abs(1.0 - ratio) <= noise:
            print("the gap between the contenders is within that run-to-run spread")
    print(f"total time {time.perf_counter() - started:.0f} s")
    worst_share = max((run.others_cpu_share or 0.0) for run in runs)
    warn_if_contended(worst_share)


if __name__ == "__main__":
    main()
