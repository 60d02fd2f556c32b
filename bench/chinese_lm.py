"""A Chinese word-level model trained for a fixed CPU budget on 西游记, against counting.

What ``POST /train`` does with a new model, written out: all of ``zh-classics/xiyouji.txt``
segmented by jieba (accurate mode), one text per line closed by ``<eos>``, a frequency-ordered
vocabulary of the words seen at least twice (``<pad>``, ``<unk>``, ``<eos>`` first), the last
5 % of the texts held out whole, an LSTM (embedding 200, hidden 400, dropout 0.2) with the
adaptive output (cutoffs from the counts) started at the unigram, trained by
``models.training.fit`` (Adam 0.003, batch 32 × bptt 35, clip 0.25) for ``--seconds`` of
wall-clock. Reported: the held-out perplexity, each text scored as a fresh text (what
``/score`` answers), beside the add-one unigram and the interpolated bigram of the same split,
and the model's perplexity before its first step (the unigram's: it starts from counting).

Run from the repository root: ``python -m bench.chinese_lm [--seconds 120]``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

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
from models.adaptive import choose_cutoffs
from models.boundaries import join_stream, split_texts
from models.evaluation import bigram_perplexity, evaluate, unigram_log_probs, unigram_perplexity
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import Tokenizer
from models.training import TrainingConfig, fit, split_ids
from models.vocab import Vocab


def main(argv: Sequence[str] | None = None) -> None:
    parser = benchmark_parser("bench.chinese_lm", __doc__)
    parser.add_argument("--seconds", type=float, default=120.0, help="training budget")
    add_data_dir_argument(parser, holding="zh-classics/xiyouji.txt")
    arguments = parser.parse_args(argv)
    from app.jobs.worker import keep_freed_memory

    keep_freed_memory()
    path = require_corpus(arguments.data_dir / "zh-classics" / "xiyouji.txt")
    started = time.perf_counter()
    texts = split_texts(path.read_text(encoding="utf-8"), "line")
    tokenizer = Tokenizer()
    per_text = [tokenizer.tokenize(text) for text in texts]
    segmented = time.perf_counter() - started
    vocab = Vocab.build(per_text, order="frequency", min_freq=2)
    ids = torch.tensor(join_stream(map(vocab.encode, per_text), vocab.eos_id))
    train_ids, val_ids = split_ids(ids, 0.05, vocab.eos_id)
    size = len(vocab)
    cutoffs = choose_cutoffs(torch.bincount(train_ids, minlength=size))
    torch.manual_seed(0)
    model = RNNLanguageModel(
        LanguageModelConfig(
            vocab_size=size,
            embedding_dim=200,
            hidden_size=400,
            dropout=0.2,
            output="adaptive",
            cutoffs=cutoffs,
        )
    )
    model.start_from_counts(unigram_log_probs(train_ids, size).float())
    before_training = math.exp(evaluate(model, val_ids, eos_id=vocab.eos_id))
    config = TrainingConfig(
        seq_len=35,
        batch_size=32,
        epochs=1000,
        lr=0.003,
        clip=0.25,
        seed=0,
        patience=2,
        max_seconds=arguments.seconds,
    )
    before = sample_cpu()
    result = fit(model, train_ids, val_ids, config, eos_id=vocab.eos_id)
    after = sample_cpu()
    share = others_cpu_share(before, after)
    unigram = unigram_perplexity(train_ids, val_ids, size)
    bigram = bigram_perplexity(train_ids, torch.cat([train_ids[-1:], val_ids]), size)
    print(machine_description(["torch", "jieba"]))
    print(
        f"西游记: {len(texts):,} texts, {len(ids):,} tokens ({len(train_ids):,} train, "
        f"{len(val_ids):,} held out: the last {int((val_ids == vocab.eos_id).sum())} texts), "
        f"vocabulary {size:,} (min_freq 2), cutoffs {list(cutoffs)}; segmented in "
        f"{segmented:.1f} s"
    )
    print(
        f"LSTM 200/400, adaptive output: {result.steps:,} steps in {result.elapsed_seconds:.0f} s, "
        f"{result.tokens_per_second:,.0f} target tokens/s, {len(result.epochs)} epoch(s), "
        f"stopped: {result.stop_reason}"
    )
    rows = [
        ["add-one unigram", f"{unigram:.1f}", "1.00"],
        ["interpolated bigram", f"{bigram:.1f}", f"{bigram / unigram:.2f}"],
        [
            "the model before its first step",
            f"{before_training:.1f}",
            f"{before_training / unigram:.2f}",
        ],
        [
            "the model after training",
            f"{result.val_perplexity:.1f}",
            f"{result.val_perplexity / unigram:.2f}",
        ],
    ]
    print(format_table(["held-out perplexity", "value", "÷ unigram"], rows))
    warn_if_contended(share or 0.0)


if __name__ == "__main__":
    main()
