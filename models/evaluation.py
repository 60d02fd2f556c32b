"""Held-out evaluation: a model's cross-entropy on a stream, and the counting baseline."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.dataset import StreamBatches, as_id_tensor
from models.errors import ConfigError
from models.lm import Hidden, RNNLanguageModel


@torch.no_grad()
def evaluate(
    model: RNNLanguageModel, ids: torch.Tensor, *, batch_size: int = 10, seq_len: int = 35
) -> float:
    """Mean cross-entropy per target over a whole held-out stream, state carried throughout.

    This is how the published word-level figures are measured (pytorch/examples
    ``word_language_model``): columns of ``batch_size``, bptt chunks, no state reset.
    """
    ids = as_id_tensor(ids)
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
        logits, hidden = model(x.to(device), hidden)
        total_loss += nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), y.to(device).reshape(-1), reduction="sum"
        ).item()
    model.train(was_training)
    return total_loss / stream.num_targets


def unigram_perplexity(train_ids: torch.Tensor, eval_ids: torch.Tensor, vocab_size: int) -> float:
    """Perplexity on ``eval_ids`` of add-one-smoothed word frequencies from ``train_ids``.

    The baseline a language model must beat: it knows how common each word is, not its context.
    """
    counts = torch.bincount(as_id_tensor(train_ids), minlength=vocab_size).double() + 1.0
    log_probs = (counts / counts.sum()).log()
    return math.exp(-log_probs[as_id_tensor(eval_ids)].mean().item())


def perplexity(loss: float | None) -> float | None:
    """exp of a mean cross-entropy in nats; None stays None."""
    if loss is None:
        return None
    return math.exp(min(loss, 700.0))  # exp overflows past ~709
