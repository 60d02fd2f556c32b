"""Held-out evaluation: a model's cross-entropy on a stream, and the counting baseline."""

from __future__ import annotations

import math

import torch

from models.boundaries import split_stream
from models.dataset import StreamBatches, as_id_tensor
from models.errors import ConfigError
from models.lm import Hidden, RNNLanguageModel
from models.scoring import score_sequences


@torch.no_grad()
def evaluate(
    model: RNNLanguageModel,
    ids: torch.Tensor,
    *,
    batch_size: int = 10,
    seq_len: int = 35,
    eos_id: int | None = None,
) -> float:
    """Mean cross-entropy per target (nats) over a whole held-out stream.

    With ``eos_id`` the stream is a sequence of texts, each closed by ``<eos>``, and each is
    scored as a fresh text from the state after ``<eos>``, every token a target
    (:func:`models.scoring.score_sequences`): exactly what ``/score`` answers for those texts.

    Without it the stream is read as the published word-level figures are (pytorch/examples
    ``word_language_model``): columns of ``batch_size``, bptt chunks, state carried throughout.
    """
    ids = as_id_tensor(ids)
    if eos_id is not None:
        if len(ids) == 0:
            raise ConfigError("the held-out stream is empty", field="val_fraction")
        values = score_sequences(model, split_stream(ids, eos_id), eos_id)
        return -float(sum(v.sum() for v in values)) / sum(len(v) for v in values)
    batch_size = max(1, min(batch_size, len(ids) // 2))
    stream = StreamBatches(ids, batch_size, seq_len)
    if stream.num_targets == 0:
        raise ConfigError("the held-out stream is too short to evaluate", field="val_fraction")
    was_training = model.training
    model.eval()
    device = model.device
    hidden: Hidden | None = None
    total_loss = 0.0
    for x, y in stream:
        values, hidden = model.target_log_probs(x.to(device), y.to(device), hidden)
        total_loss -= values.double().sum().item()
    model.train(was_training)
    return total_loss / stream.num_targets


def unigram_log_probs(train_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``(vocab_size,)`` natural-log probabilities of add-one-smoothed word counts."""
    counts = torch.bincount(as_id_tensor(train_ids), minlength=vocab_size).double() + 1.0
    return (counts / counts.sum()).log()


def unigram_perplexity(train_ids: torch.Tensor, eval_ids: torch.Tensor, vocab_size: int) -> float:
    """Perplexity on ``eval_ids`` of add-one-smoothed word frequencies from ``train_ids``.

    The baseline a language model must beat: it knows how common each word is, not its context.
    """
    log_probs = unigram_log_probs(train_ids, vocab_size)
    return math.exp(-log_probs[as_id_tensor(eval_ids)].mean().item())


BIGRAM_WEIGHTS = tuple(step / 20 for step in range(1, 20))  # 0.05 … 0.95


def bigram_perplexity(train_ids: torch.Tensor, eval_ids: torch.Tensor, vocab_size: int) -> float:
    """Perplexity on ``eval_ids`` of an interpolated bigram counted on ``train_ids``.

    ``p(w | v) = λ · c(v, w) / c(v) + (1 − λ) · p_unigram(w)`` (add-one unigram; a context
    never seen in training falls back to the unigram alone), scored on every target
    ``eval_ids[1:]`` (:func:`evaluate` leaves out the few a column layout drops). ``λ`` is
    the one of
    :data:`BIGRAM_WEIGHTS` that suits the held-out text best: the baseline's best case, so a
    model that beats it has learned more than which word tends to follow which.
    """
    train_ids, eval_ids = as_id_tensor(train_ids), as_id_tensor(eval_ids)
    if len(eval_ids) < 2:
        raise ConfigError("the held-out stream is too short to evaluate", field="val_fraction")
    unigram = unigram_log_probs(train_ids, vocab_size).exp()
    # Pairs as one int64 code (previous · V + next): sparse counts, no V × V matrix.
    train_pairs = train_ids[:-1] * vocab_size + train_ids[1:]
    codes, pair_counts = torch.unique(train_pairs, return_counts=True)  # sorted codes
    context_counts = torch.bincount(train_ids[:-1], minlength=vocab_size).double()
    previous, target = eval_ids[:-1], eval_ids[1:]
    wanted = previous * vocab_size + target
    position = torch.searchsorted(codes, wanted).clamp(max=max(len(codes) - 1, 0))
    seen = (codes[position] == wanted) if len(codes) else torch.zeros_like(wanted, dtype=torch.bool)
    pair = torch.where(seen, pair_counts[position].double(), torch.zeros(len(wanted)).double())
    contexts = context_counts[previous]
    bigram = torch.where(contexts > 0, pair / contexts.clamp(min=1.0), 0.0)
    known = contexts > 0
    best = math.inf
    for weight in BIGRAM_WEIGHTS:
        mixed = torch.where(
            known, weight * bigram + (1 - weight) * unigram[target], unigram[target]
        )
        best = min(best, -mixed.log().mean().item())
    return math.exp(best)


def perplexity(loss: float | None) -> float | None:
    """exp of a mean cross-entropy in nats; None stays None."""
    if loss is None:
        return None
    return math.exp(min(loss, 700.0))  # exp overflows past ~709
