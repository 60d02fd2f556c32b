"""Training throughput of ``POST /train`` against ``models.training.fit`` and a minimal loop.

Measured: target tokens per second of word-level language-model training on WikiText-2
(``wikitext-2/train.txt``), 2-layer LSTM 200/200 (embedding 200, dropout 0.2), batch 20 ×
bptt 35 (700 targets per step), Adam lr 1e-3, gradient-norm clip 0.25, seed 0, for a fixed
``--steps``, by three contenders on the same id stream from the same initial weights:

* ``reference loop`` (baseline): the hand-written loop of ``bench.training`` (after
  pytorch/examples ``word_language_model``), timed by a stopwatch around the whole call.
* ``models.training.fit`` in this process, ``val_ids=None``, timed the same way (fit's own
  ``tokens_per_second``, training time only, is shown next to it).
* ``POST /train``: the real service (``uvicorn --factory app.main:create_app``, a temporary
  ``SEQLAB_DATA_DIR``, corpus limits raised to fit the file) in its own process group; the
  file is uploaded once with ``POST /corpora`` (text/plain), then each round posts
  ``/train`` with ``corpus_id``, ``create`` (``tokenizer.backend = "whitespace"``, ``vocab =
  {"specials": [], "order": "first_seen"}``, the network above, ``seed`` 0),
  ``val_fraction`` ``--val-fraction`` (0.01), ``max_steps``, ``wait: true``. Its rate is the
  job's ``metrics.tokens_per_second`` — fit's own measure in the worker process, training
  time only; the wall time from the POST to the finished answer is reported too (it adds
  segmentation and encoding of the corpus, worker start-up, evaluation of the held-out tail,
  writing and publishing the checkpoint). The goal is ≥ 1.0× the reference loop.

The in-process contenders get exactly the data ``/train`` prepares (``app/services/training.py``):
the non-blank lines of the file (``read_lines``), each split on whitespace by the seqlab
tokenizer, a first-seen vocabulary without specials, the ids split by ``split_ids`` with the
same ``val_fraction``; the script checks that the job reports the same token counts and
vocabulary size, and that the published checkpoint holds the same vocabulary and network
config. The initial weights are made as the worker makes them (``torch.manual_seed(0)``, then
the network), and every contender seeds the global RNG with 0 before training, so all three
see the same dropout masks and should reach the same training loss.

Memory: the job worker calls ``app.jobs.worker.keep_freed_memory()`` (glibc ``mallopt``: no
mmap for big blocks, no trimming), which spares it the mmap/munmap and page faults of the
~90 MB logits buffers every step. So that the comparison measures the path and not the
allocator, this script calls the same function in its own process before anything else, and
the in-process contenders train under the same setting; ``--default-malloc`` leaves glibc's
defaults in this process instead (what a plain ``fit`` call in a user's program gets). The
worker's system CPU time and minor page faults are read from the service's reaped-children
counters (``/proc/PID/stat``; the worker's whole life: imports, training, evaluation, saving)
and printed next to the in-process ones.

The job reports its cumulative rate every 10 steps (``log_every``); from the first report the
script prints how long the worker's first 10 steps took and the rate of the steps after them,
since a fresh worker process pays once for first touches of memory and lazy initialisation
while the in-process contenders run after a warm-up in a warm process. The table's ``wall s``
is the stopwatch time of the in-process runs, and the POST-to-answer time of ``/train``.

The contenders run alternately, ``--rounds`` times (a b c / c b a / …), after a short untimed
warm-up; the best round of each is reported. After training, the first round's model of each
(for ``/train`` the checkpoint it published, loaded with ``models.checkpoint.load_checkpoint``)
is evaluated on the same held-out ids with ``models.evaluation.evaluate(batch_size=10,
seq_len=35)``; the goal is ``/train`` no worse than the reference. The share of the CPUs that
*other* processes used during each run is printed, with a warning above 10 %.

Run from the repository root: ``python -m bench.train_http [--steps 60] [--data-dir ...]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from app.corpora import read_lines
from app.jobs.worker import keep_freed_memory
from bench.common import (
    add_data_dir_argument,
    benchmark_parser,
    format_share,
    machine_description,
    others_cpu_share,
    process_usage,
    require_at_least_one,
    require_corpus,
    round_order,
    sample_cpu,
    spread,
    usage_between,
    warn_if_contended,
)
from bench.servers import SOFTWARE, Server, post, start_server, stop_server
from bench.training import (
    BATCH_SIZE,
    BPTT,
    CLIP,
    EVAL_BATCH_SIZE,
    FIT,
    LEARNING_RATE,
    REFERENCE,
    SEED,
    WARMUP_STEPS,
    Run,
    best_runs,
    contenders_table,
    round_seconds,
    timed_run,
    train_reference,
)
from models.checkpoint import load_checkpoint
from models.evaluation import evaluate, unigram_perplexity
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import Tokenizer, TokenizerConfig
from models.training import split_ids
from models.vocab import Vocab

CORPUS_PATH = Path("wikitext-2") / "train.txt"
TRAIN = "POST /train"
CONTENDERS = (REFERENCE, FIT, TRAIN)
EMBEDDING_DIM = 200
HIDDEN_SIZE = 200
NUM_LAYERS = 2
DROPOUT = 0.2
# The job reports its cumulative rate every LOG_EVERY steps; the first report splits the run
# into its first steps (a fresh worker process: first touches of memory, lazy initialisation)
# and the rest.
LOG_EVERY = 10
GOAL_RATIO = 1.0
TRAIN_TIMEOUT_SECONDS = 1800


@dataclass(frozen=True)
class Corpus:
    text: bytes
    vocab: Vocab
    train_ids: torch.Tensor
    val_ids: torch.Tensor


@dataclass(frozen=True)
class HttpRun:
    """One ``POST /train`` with ``wait: true``."""

    round_number: int
    model: str
    steps: int
    target_tokens: int
    tokens_per_second: float
    wall_seconds: float
    train_loss: float
    val_perplexity: float | None
    others_cpu_share: float | None
    worker_system_seconds: float | None
    worker_page_faults: int | None
    first_steps_seconds: float | None
    later_tokens_per_second: float | None

    @property
    def train_seconds(self) -> float:
        return self.target_tokens / self.tokens_per_second

    @property
    def name(self) -> str:
        return TRAIN

    @property
    def seconds(self) -> float:
        """The table's ``wall s``: from the POST to the finished answer."""
        return self.wall_seconds

    @property
    def reported_tokens_per_second(self) -> float:
        """The job's rate is fit's own, measured in the worker."""
        return self.tokens_per_second


# --- data and model, as app/services/training.py and app/jobs/worker.py make them --------------


def load_corpus(data_dir: Path, val_fraction: float) -> Corpus:
    raw = require_corpus(data_dir / CORPUS_PATH).read_bytes()
    text = raw.decode("utf-8").removeprefix("\ufeff")
    tokenizer = Tokenizer(TokenizerConfig(backend="whitespace"))
    per_line = [tokenizer.tokenize(line) for line in read_lines(text)]
    vocab = Vocab.build(per_line, order="first_seen", specials=[])
    ids = torch.tensor(vocab.encode(t for line in per_line for t in line), dtype=torch.long)
    train_ids, val_ids = split_ids(ids, val_fraction)
    return Corpus(raw, vocab, train_ids, val_ids)


def model_config(vocab_size: int) -> LanguageModelConfig:
    return LanguageModelConfig(
        vocab_size=vocab_size,
        embedding_dim=EMBEDDING_DIM,
        hidden_size=HIDDEN_SIZE,
        num_layers=NUM_LAYERS,
        cell="lstm",
        dropout=DROPOUT,
    )


def make_initial(vocab_size: int) -> RNNLanguageModel:
    """The initial weights of a created model, exactly as the worker seeds them."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return RNNLanguageModel(model_config(vocab_size))


# --- the service ---------------------------------------------------------------------------


def upload_corpus(server: Server, corpus: Corpus) -> str:
    status, _, body = post(
        f"{server.url}/corpora", corpus.text, content_type="text/plain", timeout=300
    )
    if status != 201:
        sys.exit(f"error: POST /corpora answered {status}: {body[:500]!r}")
    return json.loads(body)["corpus_id"]


def train_request(model: str, corpus_id: str, steps: int, val_fraction: float) -> dict:
    return {
        "model": model,
        "corpus_id": corpus_id,
        "create": {
            "tokenizer": {"backend": "whitespace"},
            "vocab": {"specials": [], "order": "first_seen"},
            "embedding_dim": EMBEDDING_DIM,
            "hidden_size": HIDDEN_SIZE,
            "num_layers": NUM_LAYERS,
            "cell": "lstm",
            "dropout": DROPOUT,
            "seed": SEED,
        },
        "seq_len": BPTT,
        "batch_size": BATCH_SIZE,
        "batching": "stream",
        "epochs": 1,
        "lr": LEARNING_RATE,
        "optimizer": "adam",
        "clip": CLIP,
        "seed": SEED,
        "val_fraction": val_fraction,
        "max_steps": steps,
        "log_every": LOG_EVERY,
        "wait": True,
    }


def check_job(job: dict, corpus: Corpus, steps: int) -> None:
    """The job trained on the data this script reproduced, for the steps asked."""
    data = job["data"]
    expected = {
        "train_tokens": len(corpus.train_ids),
        "val_tokens": len(corpus.val_ids),
        "vocab_size": len(corpus.vocab),
    }
    for key, value in expected.items():
        if data.get(key) != value:
            sys.exit(f"error: the job's {key} is {data.get(key)}, this script made {value}")
    if job["progress"]["step"] != steps:
        sys.exit(f"error: the job ran {job['progress']['step']} steps, not {steps}")


def timed_http_run(
    server: Server,
    corpus_id: str,
    corpus: Corpus,
    steps: int,
    val_fraction: float,
    round_number: int,
) -> HttpRun:
    model = f"wikitext2-r{round_number}"
    body = json.dumps(train_request(model, corpus_id, steps, val_fraction)).encode()
    before = sample_cpu()
    server_before = process_usage(server.process.pid)
    status, _, answer = post(f"{server.url}/train", body, timeout=TRAIN_TIMEOUT_SECONDS)
    after = sample_cpu()
    # The service with the job workers it has joined (their whole lives).
    server_used = usage_between(server_before, process_usage(server.process.pid))
    wall = after.wall - before.wall
    if status != 200:
        sys.exit(f"error: POST /train answered {status}: {answer[:1000]!r}")
    job = json.loads(answer)
    if job["status"] != "succeeded":
        sys.exit(f"error: the job {job['status']}: {job.get('error')}")
    check_job(job, corpus, steps)
    others = worker_system = worker_faults = None
    if server_used is not None:
        worker_system = server_used.children_system_seconds
        worker_faults = server_used.children_minor_page_faults
        others = others_cpu_share(before, after, server_used.tree_cpu_seconds)
    metrics = job["metrics"]
    first_seconds, later_rate = split_rate(metrics["history"]["steps"])
    run = HttpRun(
        round_number=round_number,
        model=model,
        steps=job["progress"]["step"],
        target_tokens=job["progress"]["step"] * BATCH_SIZE * BPTT,
        tokens_per_second=metrics["tokens_per_second"],
        wall_seconds=wall,
        train_loss=metrics["train_loss"],
        val_perplexity=metrics["val_perplexity"],
        others_cpu_share=others,
        worker_system_seconds=worker_system,
        worker_page_faults=worker_faults,
        first_steps_seconds=first_seconds,
        later_tokens_per_second=later_rate,
    )
    worker_usage = (
        "worker usage n/a"
        if worker_system is None or worker_faults is None
        else f"worker sys {worker_system:5.1f} s  {worker_faults / 1e6:5.1f}M page faults"
    )
    split = (
        ""
        if first_seconds is None or later_rate is None
        else f"  (steps 1-{LOG_EVERY} {first_seconds:.2f} s, then {later_rate:,.0f} targets/s)"
    )
    timeline = job_timeline(job, started_wall=time.time() - wall)
    print(
        f"  round {round_number}  {TRAIN:<20} {run.steps:4d} steps  {run.train_seconds:7.2f} s  "
        f"{run.tokens_per_second:6,.0f} targets/s{split}  loss {run.train_loss:.4f}  "
        f"{worker_usage}  "
        f"wall {run.wall_seconds:6.2f} s ({timeline})  "
        f"others {format_share(run.others_cpu_share)} of CPUs",
        flush=True,
    )
    return run


def split_rate(history: list[dict]) -> tuple[float | None, float | None]:
    """Seconds of the first LOG_EVERY steps, and the rate of the steps after them.

    Each report holds fit's cumulative rate at its step; elapsed training time is
    ``step * targets per step / rate``.
    """
    per_step = BATCH_SIZE * BPTT
    points = [
        (entry["step"], entry["step"] * per_step / entry["tokens_per_second"])
        for entry in history
        if entry.get("tokens_per_second")
    ]
    if len(points) < 2 or points[0][0] != LOG_EVERY:
        return None, None
    (first_step, first_elapsed), (last_step, last_elapsed) = points[0], points[-1]
    return first_elapsed, (last_step - first_step) * per_step / (last_elapsed - first_elapsed)


def job_timeline(job: dict, started_wall: float) -> str:
    """Where the wall time went: preparing (POST → queued), queued → worker, worker → done."""

    def seconds(stamp: str | None) -> float | None:
        if stamp is None:
            return None
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    created, began, ended = (
        seconds(job.get(key)) for key in ("created_at", "started_at", "finished_at")
    )
    if None in (created, began, ended):
        return "timeline n/a"
    return (
        f"prepare {created - started_wall:.1f} s, queue {began - created:.1f} s, "
        f"worker+publish {ended - began:.1f} s"
    )


def check_checkpoint(data_dir: Path, model: str, corpus: Corpus) -> RNNLanguageModel:
    checkpoint = load_checkpoint(data_dir / "models" / model / "v1")
    if checkpoint.vocab != corpus.vocab:
        sys.exit("error: the published vocabulary differs from the one this script built")
    if checkpoint.model.config != model_config(len(corpus.vocab)):
        sys.exit(f"error: the published network differs: {checkpoint.model.config}")
    return checkpoint.model


# --- rounds and report ---------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser("bench.train_http", __doc__)
    parser.add_argument("--steps", type=int, default=60, help="training steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument(
        "--val-fraction", type=float, default=0.01, help="held-out tail of the stream"
    )
    add_data_dir_argument(parser, holding="wikitext-2/train.txt")
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc defaults in this process (the job worker changes its own)",
    )
    arguments = parser.parse_args(argv)
    require_at_least_one(parser, arguments, ["steps", "rounds"])
    if not 0 < arguments.val_fraction <= 0.5:
        parser.error("--val-fraction must be in (0, 0.5]")
    return arguments


def results_table(runs: list[Run], http_runs: list[HttpRun], perplexities: dict[str, float]) -> str:
    best_local = best_runs(runs)
    best_http = max(http_runs, key=lambda run: run.tokens_per_second)
    headers = [
        "contender",
        "steps",
        "targets/s",
        "fit's own",
        "wall s",
        "vs reference",
        "train loss",
        "val ppl",
    ]
    return contenders_table(
        [best_local[REFERENCE], best_local[FIT], best_http], perplexities, headers
    )


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if not arguments.default_malloc:
        keep_freed_memory()  # what the job worker does; see the module docstring
    print(machine_description(SOFTWARE))
    print(
        f"torch.get_num_threads() = {torch.get_num_threads()} (the job worker: torch's default); "
        "malloc in this process: "
        + (
            "glibc defaults (--default-malloc)"
            if arguments.default_malloc
            else "keep_freed_memory(), as in the job worker"
        )
    )
    started = time.perf_counter()
    corpus = load_corpus(arguments.data_dir, arguments.val_fraction)
    print(
        f"wikitext-2 train.txt, whitespace words of non-blank lines: "
        f"{len(corpus.train_ids) + len(corpus.val_ids):,} tokens, vocabulary "
        f"{len(corpus.vocab):,}; training head {len(corpus.train_ids):,}, held-out tail "
        f"{len(corpus.val_ids):,} (val_fraction {arguments.val_fraction:g}); "
        f"loaded in {time.perf_counter() - started:.1f} s"
    )
    initial = make_initial(len(corpus.vocab))
    print(
        f"model: 2-layer LSTM {EMBEDDING_DIM}/{HIDDEN_SIZE}, dropout {DROPOUT}, "
        f"{initial.num_parameters():,} parameters; batch {BATCH_SIZE} x bptt {BPTT}, "
        f"Adam lr {LEARNING_RATE:g}, clip {CLIP}, seed {SEED}"
    )
    print(
        f"{arguments.steps} steps per run, {arguments.rounds} alternating round(s) "
        f"after a {WARMUP_STEPS}-step untimed warm-up\n"
    )
    runs: list[Run] = []
    http_runs: list[HttpRun] = []
    trained: dict[str, RNNLanguageModel] = {}
    server: Server | None = None
    with tempfile.TemporaryDirectory(prefix="bench-train-http-") as temporary:
        directory = Path(temporary)
        data_dir = directory / "data"
        size = len(corpus.text)
        try:
            server_started = time.perf_counter()
            server = start_server(
                "seqlab",
                "app.main:create_app",
                {
                    "SEQLAB_DATA_DIR": str(data_dir),
                    "SEQLAB_CREATE_DEMO_MODEL": "false",
                    "SEQLAB_TRAIN_DEMO_MODEL": "false",
                    "SEQLAB_LOG_LEVEL": "warning",
                    "SEQLAB_LIMITS__MAX_CORPUS_BYTES": str(max(size + 1, 16_777_216)),
                    "SEQLAB_LIMITS__MAX_TRAINING_CHARS": str(max(size + 1, 2_000_000)),
                },
                directory,
                cpus=None,
            )
            uploaded = time.perf_counter()
            corpus_id = upload_corpus(server, corpus)
            print(
                f"service ready in {uploaded - server_started:.1f} s; corpus uploaded "
                f"({size / 1e6:.1f} MB) in {time.perf_counter() - uploaded:.1f} s\n"
            )
            train_reference(copy.deepcopy(initial), corpus.train_ids, WARMUP_STEPS)
            for round_number in range(1, arguments.rounds + 1):
                for name in round_order(CONTENDERS, round_number):
                    if name == TRAIN:
                        http_runs.append(
                            timed_http_run(
                                server,
                                corpus_id,
                                corpus,
                                arguments.steps,
                                arguments.val_fraction,
                                round_number,
                            )
                        )
                    else:
                        run, model = timed_run(
                            name, initial, corpus.train_ids, arguments.steps, round_number
                        )
                        runs.append(run)
                        trained.setdefault(name, model)
            trained[TRAIN] = check_checkpoint(data_dir, http_runs[0].model, corpus)
        finally:
            if server is not None:
                stop_server(server)

    evaluation_started = time.perf_counter()
    perplexities = {
        name: math.exp(evaluate(model, corpus.val_ids, batch_size=EVAL_BATCH_SIZE, seq_len=BPTT))
        for name, model in trained.items()
    }
    evaluation_seconds = (time.perf_counter() - evaluation_started) / len(trained)
    reported = http_runs[0].val_perplexity
    print(f"\nbest of {arguments.rounds} round(s) per contender:")
    print(results_table(runs, http_runs, perplexities))
    print(
        f"\nval ppl: every model evaluated here on the same {len(corpus.val_ids):,} held-out ids "
        f"(evaluate, batch {EVAL_BATCH_SIZE}, bptt {BPTT}); the /train job itself reported "
        f"{'n/a' if reported is None else f'{reported:,.1f}'}; unigram perplexity (add-one, "
        f"from the training head): "
        f"{unigram_perplexity(corpus.train_ids, corpus.val_ids, len(corpus.vocab)):,.1f}; "
        f"one evaluation took {evaluation_seconds:.1f} s here"
    )
    baseline = max(run.tokens_per_second for run in runs if run.name == REFERENCE)
    ratio = max(run.tokens_per_second for run in http_runs) / baseline
    later = [run for run in http_runs if run.later_tokens_per_second is not None]
    if later:
        best_later = max(later, key=lambda run: run.later_tokens_per_second or 0.0)
        print(
            f"{TRAIN} in its fresh worker process: steps 1-{LOG_EVERY} took "
            f"{best_later.first_steps_seconds:.2f} s, the steps after them ran at "
            f"{best_later.later_tokens_per_second:,.0f} targets/s "
            f"({(best_later.later_tokens_per_second or 0.0) / baseline:.3f}x the reference loop, "
            f"which ran after a {WARMUP_STEPS}-step warm-up in a warm process)"
        )
    print(
        f"goal for /train: >= {GOAL_RATIO}x the reference loop — "
        f"{'met' if ratio >= GOAL_RATIO else 'NOT met'} ({ratio:.3f}x); val ppl no worse — "
        f"{'met' if perplexities[TRAIN] <= perplexities[REFERENCE] * 1.001 else 'NOT met'} "
        f"({perplexities[TRAIN]:,.1f} vs {perplexities[REFERENCE]:,.1f}, 0.1 % tolerance)"
    )
    if arguments.rounds > 1:
        spreads = {
            REFERENCE: spread(round_seconds(runs, REFERENCE)),
            FIT: spread(round_seconds(runs, FIT)),
            TRAIN: spread(run.train_seconds for run in http_runs),
        }
        print(
            f"run-to-run spread over {arguments.rounds} rounds: "
            + ", ".join(f"{name} {value:.1%}" for name, value in spreads.items())
        )
    print(f"total time {time.perf_counter() - started:.0f} s")
    worst = max(
        [r.others_cpu_share or 0.0 for r in runs] + [r.others_cpu_share or 0.0 for r in http_runs]
    )
    warn_if_contended(worst)


if __name__ == "__main__":
    main()
