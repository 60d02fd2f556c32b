"""Scoring texts: each token's log-probability given what precedes it in its text.

A text is read as a fresh text: from the state after ``<eos>`` when the model has one (the
first token is then predicted too, and so is the closing ``<eos>``), from zeros otherwise
(then the first token has nothing to be predicted from). Texts are scored in padded batches
of similar length; right padding never changes a real position's result, since a recurrent
layer reads left to right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from models.errors import ConfigError
from models.lm import RNNLanguageModel

# Scores computed per batch (positions × vocabulary for a full output): bounds the memory of
# one padded batch to ~64 MB of float32 whatever the vocabulary.
SCORE_ELEMENTS_PER_BATCH = 1 << 24


@torch.inference_mode()
def score_sequences(
    model: RNNLanguageModel,
    sequences: Sequence[Sequence[int] | torch.Tensor],
    start_id: int | None,
    pad_id: int = 0,
) -> list[torch.Tensor]:
    """Natural-log probabilities of each sequence's tokens, in float64 on the CPU.

    With ``start_id`` (``<eos>``) every token of a sequence is predicted, the first from the
    state after ``start_id``: ``(len,)`` values. Without, the first token only starts the
    state: ``(len - 1,)`` values, one per later token.
    """
    rows = [torch.as_tensor(sequence, dtype=torch.long).cpu() for sequence in sequences]
    if start_id is not None:
        rows = [torch.cat([torch.tensor([start_id]), row]) for row in rows]
    for index, row in enumerate(rows):
        if len(row) < 2:
            raise ConfigError(
                f"text {index} needs at least 2 tokens to be scored by a model without <eos>",
                field="text",
            )
    was_training = model.training
    model.eval()
    try:
        return _score_rows(model, rows, pad_id)
    finally:
        model.train(was_training)


def _score_rows(
    model: RNNLanguageModel, rows: list[torch.Tensor], pad_id: int
) -> list[torch.Tensor]:
    results: list[torch.Tensor] = [torch.empty(0)] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    budget = max(1, SCORE_ELEMENTS_PER_BATCH // model.config.vocab_size)  # positions at once
    start = 0
    while start < len(order):
        # Grow the batch while its padded size (the longest is the last) fits the budget.
        end = start + 1
        while end < len(order) and (end + 1 - start) * len(rows[order[end]]) <= budget:
            end += 1
        batch = [rows[i] for i in order[start:end]]
        longest = max(len(row) for row in batch)
        ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)  # (batch, longest)
        for position, row in enumerate(batch):
            ids[position, : len(row)] = row
        ids = ids.to(model.device)
        # A row longer than the budget is read in chunks, the state carried between them.
        chunk = max(1, budget // len(batch))
        pieces = []
        hidden = None
        for begin in range(0, longest - 1, chunk):
            stop = min(begin + chunk, longest - 1)
            values, hidden = model.target_log_probs(
                ids[:, begin:stop], ids[:, begin + 1 : stop + 1], hidden
            )  # (batch, stop - begin)
            pieces.append(values.double().cpu())
        values = torch.cat(pieces, dim=1)  # (batch, longest - 1)
        for position, index in enumerate(order[start:end]):
            results[index] = values[position, : len(rows[index]) - 1].clone()
        start = end
    return results


def text_perplexity(log_probs: Sequence[torch.Tensor]) -> float | None:
    """``exp(-mean)`` over all the values of all the texts; None when there are none."""
    count = sum(len(values) for values in log_probs)
    if count == 0:
        return None
    total = sum(float(values.sum()) for values in log_probs)
    return math.exp(min(-total / count, 700.0))
