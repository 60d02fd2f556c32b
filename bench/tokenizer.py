"""Segmentation throughput of ``models.tokenizer.Tokenizer`` against jieba called directly.

Measured: characters per second over the whole of 红楼梦 (``zh-classics/hongloumeng.txt``),
segmented one line at a time, for four variants on the same text in the same process:

* ``jieba.lcut`` (baseline): a private ``jieba.Tokenizer()`` initialised once, accurate mode,
  HMM on. This is the floor of what any wrapper around jieba can cost.
* ``ours tokenize``: ``Tokenizer(TokenizerConfig()).tokenize(line)``; the goal is ≥ 0.9× the
  baseline.
* ``ours offsets``: ``segment(line, offsets=True)`` (jieba's ``tokenize`` plus a position map).
* ``ours nfkc+lower``: ``normalization="nfkc"`` and ``lowercase=True``.

Runs are interleaved (every repeat times every variant once, in a rotating order) and the
best of ``--repeats`` is kept, so that drift and background noise hit all variants alike.
Each pass also reports the share of the CPUs that *other* processes used meanwhile (from
``/proc/stat``), with a warning when it passes 10 %: such timings are not to be trusted.
The script also checks that ``ours tokenize`` yields the baseline's tokens once
whitespace-only tokens are removed from the baseline (``drop_whitespace`` is on by default).

Run from the repository root: ``python -m bench.tokenizer [--data-dir ../shared/data]``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jieba

from bench.common import (
    add_data_dir_argument,
    benchmark_parser,
    format_share,
    format_table,
    others_cpu_share,
    require_at_least_one,
    require_corpus,
    sample_cpu,
    warn_if_contended,
)
from models.tokenizer import Tokenizer, TokenizerConfig

CORPUS_PATH = Path("zh-classics") / "hongloumeng.txt"
GOAL_RATIO = 0.9

Segmenter = Callable[[str], object]


@dataclass(frozen=True)
class Variant:
    name: str
    segment: Segmenter


@dataclass(frozen=True)
class Measurement:
    name: str
    best_seconds: float
    characters: int

    @property
    def characters_per_second(self) -> float:
        return self.characters / self.best_seconds


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser("bench.tokenizer", __doc__)
    add_data_dir_argument(parser, holding="zh-classics/hongloumeng.txt")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per variant")
    arguments = parser.parse_args(argv)
    require_at_least_one(parser, arguments, ["repeats"])
    return arguments


def read_lines(data_dir: Path) -> list[str]:
    path = require_corpus(data_dir / CORPUS_PATH)
    return path.read_text(encoding="utf-8").splitlines()


def make_baseline() -> Segmenter:
    segmenter = jieba.Tokenizer()
    segmenter.initialize()
    # The bound method itself (accurate mode and HMM=True are lcut's defaults), so the
    # baseline pays for no wrapper call at all.
    return segmenter.lcut


def make_variants() -> list[Variant]:
    default = Tokenizer(TokenizerConfig())
    normalizing = Tokenizer(TokenizerConfig(normalization="nfkc", lowercase=True))
    return [
        Variant("jieba.lcut (baseline)", make_baseline()),
        Variant("ours tokenize", default.tokenize),
        Variant("ours offsets", functools.partial(default.segment, offsets=True)),
        Variant("ours nfkc+lower", normalizing.tokenize),
    ]


def time_pass(segment: Segmenter, lines: list[str]) -> tuple[float, float | None]:
    """Seconds of one pass over ``lines``, and other processes' CPU share meanwhile."""
    gc.collect()
    before = sample_cpu()
    for line in lines:
        segment(line)
    after = sample_cpu()
    return after.wall - before.wall, others_cpu_share(before, after)


def measure(
    variants: list[Variant], lines: list[str], repeats: int
) -> tuple[list[Measurement], float]:
    """Best-of-``repeats`` seconds per variant (each repeat rotates the order of the
    variants), and the highest CPU share other processes took during any pass."""
    best = {variant.name: float("inf") for variant in variants}
    worst_share = 0.0
    for repeat in range(repeats):
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            seconds, share = time_pass(variant.segment, lines)
            best[variant.name] = min(best[variant.name], seconds)
            worst_share = max(worst_share, share or 0.0)
            print(
                f"  repeat {repeat + 1}/{repeats}  {variant.name:<22} {seconds:7.3f} s"
                f"  (other processes: {format_share(share)} of the CPUs)"
            )
    characters = sum(len(line) for line in lines)
    measurements = [Measurement(v.name, best[v.name], characters) for v in variants]
    return measurements, worst_share


def compare_tokens(baseline: Segmenter, ours: Tokenizer, lines: list[str]) -> tuple[int, int]:
    """``(lines whose tokens differ, whitespace-only tokens removed from the baseline)``."""
    differing = 0
    removed = 0
    for line in lines:
        baseline_tokens = baseline(line)
        expected = [token for token in baseline_tokens if not token.isspace()]
        removed += len(baseline_tokens) - len(expected)
        if ours.tokenize(line) != expected:
            differing += 1
    return differing, removed


def check_offsets(ours: Tokenizer, lines: list[str]) -> int:
    """Lines where ``segment(offsets=True)`` disagrees with ``tokenize`` or with the text."""
    differing = 0
    for line in lines:
        segmentation = ours.segment(line, offsets=True)
        spans = segmentation.offsets or []
        same_tokens = segmentation.tokens == ours.tokenize(line)
        spans_match = all(
            line[start:end] == token
            for token, (start, end) in zip(segmentation.tokens, spans, strict=True)
        )
        if not (same_tokens and spans_match):
            differing += 1
    return differing


def results_table(measurements: list[Measurement]) -> str:
    baseline = measurements[0].characters_per_second
    rows = [
        [
            measurement.name,
            f"{measurement.best_seconds:.3f}",
            f"{measurement.characters_per_second:,.0f}",
            f"{measurement.characters_per_second / baseline:.3f}x",
        ]
        for measurement in measurements
    ]
    return format_table(["variant", "seconds", "chars/s", "vs baseline"], rows)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    lines = read_lines(arguments.data_dir)
    characters = sum(len(line) for line in lines)
    print(f"python {platform.python_version()}, jieba {jieba.__version__}")
    print(f"corpus: {CORPUS_PATH} — {len(lines):,} lines, {characters:,} characters")
    print(f"best of {arguments.repeats} interleaved repeats\n")
    variants = make_variants()
    measurements, worst_share = measure(variants, lines, arguments.repeats)
    print()
    print(results_table(measurements))

    ratio = measurements[1].characters_per_second / measurements[0].characters_per_second
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(f"\ngoal for 'ours tokenize': >= {GOAL_RATIO}x baseline — {verdict} ({ratio:.3f}x)")

    ours = Tokenizer(TokenizerConfig())
    differing, removed = compare_tokens(variants[0].segment, ours, lines)
    status = "identical" if differing == 0 else f"DIFFERENT on {differing:,} lines"
    print(
        f"tokens of 'ours tokenize' vs baseline: {status} on {len(lines):,} lines "
        f"(after removing the baseline's {removed:,} whitespace-only tokens)"
    )
    differing = check_offsets(ours, lines)
    status = "consistent" if differing == 0 else f"INCONSISTENT on {differing:,} lines"
    print(f"'ours offsets': tokens equal tokenize and line[start:end] == token: {status}")
    warn_if_contended(worst_share, during="a pass")


if __name__ == "__main__":
    main()
