"""An adaptive softmax output layer for big vocabularies (Grave et al., 2017).

The vocabulary, sorted by frequency, is cut into a *head* (the most frequent words plus one
entry per tail cluster) and tail clusters of rarer words whose scores are computed from a
smaller projection of the hidden state, and only for the targets that fall in them. On
WikiText-2's 33k words most targets are in the head, so a training step computes a few
thousand scores per position instead of 33k.

:class:`AdaptiveOutput` is ``torch.nn.AdaptiveLogSoftmaxWithLoss`` with a bias on every tail
cluster, so that :meth:`AdaptiveOutput.start_from_log_probs` can start it at any
distribution exactly (a unigram: see :meth:`models.lm.RNNLanguageModel.start_from_counts`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.errors import ConfigError

DIV_VALUE = 4.0
# The head covers the words that make up this share of the training text; the first tail the
# next ones up to the second share; the rest is the last tail.
HEAD_COVERAGE = 0.8
FIRST_TAIL_COVERAGE = 0.95
SMALLEST_CLUSTER = 8


def choose_cutoffs(counts: Sequence[int] | torch.Tensor) -> tuple[int, ...]:
    """Cutoffs for a frequency-sorted vocabulary from its words' training counts.

    The head holds the most frequent words covering :data:`HEAD_COVERAGE` of the tokens, a
    first tail those up to :data:`FIRST_TAIL_COVERAGE`, a second tail the rest; a cluster
    under :data:`SMALLEST_CLUSTER` words merges with its neighbour. ``counts[i]`` is the count
    of id ``i``; specials (never or rarely seen) count as they are.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    size = counts.numel()
    check_vocab_size(size)
    # Coverage by rank of frequency: the vocabulary is meant to be sorted, but specials come
    # first and may be rare, so rank by count rather than by id.
    ranked = torch.sort(counts, descending=True).values
    total = float(ranked.sum())
    coverage = ranked.cumsum(0) / total if total > 0 else torch.linspace(0, 1, size)
    cutoffs: list[int] = []
    for share in (HEAD_COVERAGE, FIRST_TAIL_COVERAGE):
        cutoff = int(torch.searchsorted(coverage, torch.tensor(share, dtype=torch.float64))) + 1
        previous = cutoffs[-1] if cutoffs else 0
        if cutoff - previous >= SMALLEST_CLUSTER and size - cutoff >= SMALLEST_CLUSTER:
            cutoffs.append(cutoff)
    if not cutoffs:  # a small or flat vocabulary: split it in two
        cutoffs.append(size // 2)
    return tuple(cutoffs)


def check_vocab_size(size: int) -> None:
    """Raise :class:`ConfigError` (field ``output``) for a vocabulary too small to cut."""
    if size < 2:
        raise ConfigError(
            f"an adaptive output needs a vocabulary of at least 2 tokens, got {size}",
            field="output",
        )


def check_cutoffs(cutoffs: Sequence[int], vocab_size: int, hidden_size: int) -> None:
    """Raise :class:`ConfigError` (field ``cutoffs``) unless ``cutoffs`` fit the layer."""
    check_vocab_size(vocab_size)
    values = list(cutoffs)
    if not values:
        raise ConfigError("an adaptive output needs at least one cutoff", field="cutoffs")
    if values != sorted(set(values)) or values[0] < 1 or values[-1] > vocab_size - 1:
        raise ConfigError(
            f"cutoffs must be distinct, increasing, between 1 and vocab_size - 1 = "
            f"{vocab_size - 1}; got {values}",
            field="cutoffs",
        )
    smallest = int(hidden_size // (DIV_VALUE ** len(values)))
    if smallest < 1:
        raise ConfigError(
            f"{len(values)} tail clusters need hidden_size ≥ {int(DIV_VALUE ** len(values))} "
            f"(each cluster's projection is {DIV_VALUE:g}× smaller); got {hidden_size}",
            field="cutoffs",
        )


class AdaptiveOutput(nn.AdaptiveLogSoftmaxWithLoss):
    """``AdaptiveLogSoftmaxWithLoss`` with a head bias and a bias on each tail cluster."""

    def __init__(self, in_features: int, n_classes: int, cutoffs: Sequence[int]):
        check_cutoffs(cutoffs, n_classes, in_features)
        super().__init__(in_features, n_classes, list(cutoffs), div_value=DIV_VALUE, head_bias=True)
        for cluster in self.tail:
            projection: nn.Linear = cluster[1]
            # Same initial weight, plus a bias (zero) the within-cluster distribution can start at.
            biased = nn.Linear(projection.in_features, projection.out_features, bias=True)
            with torch.no_grad():
                biased.weight.copy_(projection.weight)
                biased.bias.zero_()
            cluster[1] = biased

    def target_log_probs(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``log p(target)`` per row: ``features`` ``(N, in)``, ``targets`` ``(N,)`` → ``(N,)``."""
        return self(features, targets).output

    def start_from_log_probs(self, log_probs: torch.Tensor) -> None:
        """Predict ``log_probs`` ``(n_classes,)`` for every input: zero weights, biases set.

        The head's bias is the log-probability of each shortlist word and of each cluster's
        total; each cluster's bias the log-probability of its words within the cluster.
        """
        log_probs = log_probs.double()
        with torch.no_grad():
            head = [log_probs[: self.shortlist_size]]
            bounds = zip(self.cutoffs, self.cutoffs[1:], strict=False)  # cutoffs end with V
            for index, (start, stop) in enumerate(bounds):
                cluster = log_probs[start:stop]
                total = torch.logsumexp(cluster, dim=0)
                head.append(total.unsqueeze(0))
                projection: nn.Linear = self.tail[index][1]
                projection.weight.zero_()
                projection.bias.copy_((cluster - total).to(projection.bias))
            self.head.weight.zero_()
            self.head.bias.copy_(torch.cat(head).to(self.head.bias))
