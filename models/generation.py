"""Using a trained model: the next-word distribution, sampling and greedy generation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from models.errors import ConfigError
from models.lm import Hidden, RNNLanguageModel

# Sampling at a temperature this low is greedy anyway, and dividing log-probabilities by it
# overflows to -inf everywhere.
GREEDY_BELOW = 1e-4


@dataclass(frozen=True)
class Candidate:
    token_id: int
    probability: float


@torch.inference_mode()
def next_token_probabilities(
    model: RNNLanguageModel, ids: Sequence[int], hidden: Hidden | None = None
) -> tuple[torch.Tensor, Hidden]:
    """Probabilities ``(vocab_size,)`` of the token after ``ids``, and the state after them."""
    if len(ids) == 0:
        raise ConfigError("the context must hold at least one token", field="text")
    x = torch.tensor([list(ids)], dtype=torch.long, device=model.device)  # (1, seq)
    logits, hidden = model(x, hidden)  # (1, seq, vocab)
    return torch.softmax(logits[0, -1].float(), dim=-1), hidden


def top_k(
    model: RNNLanguageModel,
    ids: Sequence[int],
    k: int = 5,
    *,
    exclude_ids: Sequence[int] = (),
) -> list[Candidate]:
    """The ``k`` most probable next tokens after ``ids``, most probable first."""
    if k < 1:
        raise ConfigError("k must be at least 1", field="k")
    probabilities, _ = next_token_probabilities(model, ids)
    if exclude_ids:
        probabilities = probabilities.clone()
        probabilities[list(exclude_ids)] = 0.0
    k = min(k, probabilities.numel())
    values, indices = torch.topk(probabilities, k)
    return [
        Candidate(int(i), float(p)) for p, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def _pick(
    probabilities: torch.Tensor,
    temperature: float,
    top_k_size: int | None,
    generator: torch.Generator,
) -> int:
    if temperature < GREEDY_BELOW:
        return int(torch.argmax(probabilities))
    # Temperature on the log scale: p^(1/T), renormalised.
    logits = probabilities.clamp_min(1e-30).log() / temperature
    logits[probabilities == 0] = float("-inf")  # excluded tokens stay impossible
    if top_k_size is not None and top_k_size < logits.numel():
        threshold = torch.topk(logits, top_k_size).values[-1]
        logits[logits < threshold] = float("-inf")
    weights = torch.softmax(logits, dim=-1).cpu()
    return int(torch.multinomial(weights, 1, generator=generator))


@torch.inference_mode()
def generate(
    model: RNNLanguageModel,
    prompt_ids: Sequence[int],
    max_tokens: int,
    *,
    temperature: float = 1.0,
    top_k_size: int | None = None,
    seed: int | None = None,
    exclude_ids: Sequence[int] = (),
    stop_ids: Sequence[int] = (),
) -> list[int]:
    """Continue ``prompt_ids`` by up to ``max_tokens`` ids.

    ``temperature=0`` (or below 1e-4) is greedy: always the most probable token.
    Otherwise tokens are sampled from the distribution sharpened (T < 1) or flattened
    (T > 1) by ``temperature``, restricted to the ``top_k_size`` most probable when given.
    The same ``seed`` gives the same continuation. ``exclude_ids`` (e.g. ``<pad>``,
    ``<unk>``) are never produced; generation ends early after any of ``stop_ids``.
    The state is carried step by step,
    so the prompt is read once.
    """
    if max_tokens < 0:
        raise ConfigError("max_tokens must be non-negative", field="max_tokens")
    if temperature < 0:
        raise ConfigError("temperature must be non-negative", field="temperature")
    if top_k_size is not None and top_k_size < 1:
        raise ConfigError("top_k must be at least 1", field="top_k")
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else torch.seed())
    excluded = list(exclude_ids)
    stops = set(stop_ids)
    produced: list[int] = []
    probabilities, hidden = next_token_probabilities(model, prompt_ids)
    for _ in range(max_tokens):
        if excluded:
            probabilities = probabilities.clone()
            probabilities[excluded] = 0.0
        if float(probabilities.sum()) <= 0.0:
            break  # every token excluded: nothing left to say
        token = _pick(probabilities, temperature, top_k_size, generator)
        produced.append(token)
        if token in stops or len(produced) == max_tokens:
            break
        probabilities, hidden = next_token_probabilities(model, [token], hidden)
    return produced
