"""Using a trained model: next-word distributions, and generation that knows when to end.

Every context is read as a fresh text: after ``start_id`` (``<eos>``) when the model has
one, from zeros otherwise (:meth:`models.lm.RNNLanguageModel.start_state`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from models.errors import ConfigError
from models.lm import Hidden, RNNLanguageModel

# Sampling at a temperature this low is greedy anyway, and dividing log-probabilities by it
# overflows to -inf everywhere.
GREEDY_BELOW = 1e-4
FinishReason = Literal["eos", "stop", "length"]
# Below this a penalty only says "repeat": p^0.01 is ~1 for every seen token.
MIN_REPETITION_PENALTY = 0.01


@dataclass(frozen=True)
class Candidate:
    token_id: int
    probability: float


@dataclass
class Choice:
    """One generated continuation: its ids (without a closing ``<eos>``) and why it ended."""

    ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason = "length"


def _with_start(rows: Sequence[Sequence[int]], start_id: int | None) -> list[list[int]]:
    for row in rows:
        if len(row) == 0 and start_id is None:
            raise ConfigError("the context must hold at least one token", field="text")
    return [([start_id] if start_id is not None else []) + list(row) for row in rows]


@torch.inference_mode()
def next_token_log_probs(
    model: RNNLanguageModel,
    contexts: Sequence[Sequence[int]],
    start_id: int | None = None,
    pad_id: int = 0,
) -> tuple[torch.Tensor, Hidden]:
    """Log-probabilities ``(batch, vocab_size)`` of the token after each context, read from the
    fresh-text state, in one forward pass over a right-padded batch; and the state after each
    context (its last real token), ``(num_layers, batch, hidden)``."""
    rows = _with_start(contexts, start_id)
    lengths = torch.tensor([len(row) for row in rows])
    ids = torch.full((len(rows), int(lengths.max())), pad_id, dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.tensor(row)
    ids = ids.to(model.device)
    if len(set(lengths.tolist())) == 1:
        features, hidden = model.features(ids)
        last = features[:, -1]  # (batch, hidden)
    else:
        # The state after each row's own last token: pack so padding is never read.
        result = model.recurrent(ids, lengths=lengths)
        last = result.output[torch.arange(len(rows)), lengths.to(ids.device) - 1]
        hidden = result.hn if result.cn is None else (result.hn, result.cn)
    scores = model.output_scores(last)  # (batch, vocab)
    return torch.log_softmax(scores.float(), dim=-1), hidden


def top_k(
    model: RNNLanguageModel,
    ids: Sequence[int],
    k: int = 5,
    *,
    exclude_ids: Sequence[int] = (),
    start_id: int | None = None,
) -> list[Candidate]:
    """The ``k`` most probable next tokens after ``ids``, most probable first."""
    return top_k_batch(model, [ids], k, exclude_ids=exclude_ids, start_id=start_id)[0]


@torch.inference_mode()
def top_k_batch(
    model: RNNLanguageModel,
    contexts: Sequence[Sequence[int]],
    k: int = 5,
    *,
    exclude_ids: Sequence[int] = (),
    start_id: int | None = None,
) -> list[list[Candidate]]:
    """:func:`top_k` for every context, from one forward pass over the padded batch."""
    if k < 1:
        raise ConfigError("k must be at least 1", field="k")
    log_probs, _ = next_token_log_probs(model, contexts, start_id)
    return top_k_of(log_probs, k, exclude_ids)


def top_k_of(
    log_probs: torch.Tensor, k: int, exclude_ids: Sequence[int] = ()
) -> list[list[Candidate]]:
    """The ``k`` most probable tokens of each row of ``log_probs`` ``(batch, vocab)``, never one
    of ``exclude_ids``; most probable first."""
    if k < 1:
        raise ConfigError("k must be at least 1", field="k")
    if exclude_ids:
        log_probs = log_probs.clone()  # may be rows of a batch that other requests share
        # -inf, not a probability of 0: a real token whose probability underflows to 0 must
        # still rank above every excluded one.
        log_probs[:, list(exclude_ids)] = float("-inf")
    k = min(k, log_probs.size(-1) - len(set(exclude_ids)))  # never an excluded token
    top_log_probs, indices = torch.topk(log_probs, k, dim=-1)
    values = top_log_probs.exp()
    return [
        [Candidate(int(i), float(p)) for p, i in zip(row_p, row_i, strict=True)]
        for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def _pick(
    log_probs: torch.Tensor,
    temperature: float,
    top_k_size: int | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """One token id per row of ``log_probs`` ``(batch, vocab)``."""
    if temperature < GREEDY_BELOW:
        return torch.argmax(log_probs, dim=-1)
    # Temperature on the log scale: p^(1/T), renormalised; -inf (excluded) stays -inf.
    logits = log_probs / temperature
    if top_k_size is not None and top_k_size < logits.size(-1):
        threshold = torch.topk(logits, top_k_size, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    weights = torch.softmax(logits, dim=-1).cpu()
    return torch.multinomial(weights, 1, generator=generator)[:, 0].to(log_probs.device)


def _penalise(log_probs: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """The multiplicative repetition penalty (CTRL; Hugging Face's ``repetition_penalty``) on
    log-probabilities: a seen token's ``log p`` (≤ 0) is multiplied by ``penalty``, i.e. its
    probability becomes ``p^penalty`` before renormalising. ``seen`` is ``(batch, vocab)``."""
    # Only finite entries: -inf (an excluded token) times a penalty that rounds to 0 would be NaN.
    penalised = torch.where(seen & torch.isfinite(log_probs), log_probs * penalty, log_probs)
    return torch.log_softmax(penalised, dim=-1)


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
    start_id: int | None = None,
    eos_id: int | None = None,
    repetition_penalty: float = 1.0,
    n: int = 1,
    should_stop: Callable[[int, list[int]], bool] | None = None,
    on_token: Callable[[int, int], None] | None = None,
) -> list[Choice]:
    """``n`` continuations of ``prompt_ids``, each up to ``max_tokens`` ids, sampled together.

    ``temperature=0`` (or below 1e-4) is greedy: always the most probable token. Otherwise
    tokens are sampled from the distribution sharpened (T < 1) or flattened (T > 1) by
    ``temperature``, restricted to the ``top_k_size`` most probable when given. The same
    ``seed`` gives the same choices. ``exclude_ids`` (``<pad>``, ``<unk>``) are never produced.

    A choice ends (``finish_reason``) at ``eos_id`` (``eos``, not included in its ids), after
    any of ``stop_ids`` or when ``should_stop(choice, ids)`` says so (``stop``), or at
    ``max_tokens`` (``length``). To generate past text ends, leave ``eos_id`` out and put it in
    ``exclude_ids``. ``repetition_penalty`` > 1 makes every token already in the prompt or the
    choice less likely (:func:`_penalise`). ``on_token(choice, id)`` sees each token as it is
    chosen. The prompt is read once; the state is carried step by step.
    """
    if max_tokens < 0:
        raise ConfigError("max_tokens must be non-negative", field="max_tokens")
    if temperature < 0:
        raise ConfigError("temperature must be non-negative", field="temperature")
    if top_k_size is not None and top_k_size < 1:
        raise ConfigError("top_k must be at least 1", field="top_k")
    if not repetition_penalty >= MIN_REPETITION_PENALTY:
        raise ConfigError(
            f"repetition_penalty must be at least {MIN_REPETITION_PENALTY}",
            field="repetition_penalty",
        )
    if n < 1:
        raise ConfigError("n must be at least 1", field="n")
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else torch.seed())
    vocab_size = model.config.vocab_size
    device = model.device
    excluded = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    excluded[list(exclude_ids)] = True
    stops = set(stop_ids)
    choices = [Choice() for _ in range(n)]
    if max_tokens == 0:
        return choices
    log_probs, hidden = next_token_log_probs(model, [prompt_ids], start_id)
    log_probs = log_probs.expand(n, -1)  # (n, vocab): every choice starts from the prompt
    hidden = _repeat(hidden, n)
    seen = torch.zeros(n, vocab_size, dtype=torch.bool, device=device)  # (choice, vocab)
    seen[:, list(prompt_ids)] = True
    active = list(range(n))  # rows of the batch still generating, in choice order
    for _ in range(max_tokens):
        scores = log_probs.masked_fill(excluded, float("-inf"))
        if repetition_penalty != 1.0:
            scores = _penalise(scores, seen[active], repetition_penalty)
        allowed = torch.isfinite(scores).any(dim=-1)  # (rows,): some token may still be said
        # A row with every token excluded is finished below; give _pick something to draw on.
        drawable = torch.where(allowed.unsqueeze(-1), scores, torch.zeros_like(scores))
        picked = _pick(drawable, temperature, top_k_size, generator).tolist()
        still: list[int] = []
        for row, choice_index in enumerate(active):
            choice = choices[choice_index]
            token = int(picked[row])
            if not bool(allowed[row]):  # every token excluded: nothing left to say
                choice.finish_reason = "stop"
                continue
            if eos_id is not None and token == eos_id:
                choice.finish_reason = "eos"
                continue
            choice.ids.append(token)
            seen[choice_index, token] = True
            if on_token is not None:
                on_token(choice_index, token)
            stopped = should_stop is not None and should_stop(choice_index, choice.ids)
            if token in stops or stopped:
                choice.finish_reason = "stop"
                continue
            if len(choice.ids) == max_tokens:
                choice.finish_reason = "length"
                continue
            still.append(row)
        if not still:
            break
        keep = torch.tensor(still, device=device)
        next_ids = torch.tensor([[int(picked[row])] for row in still], device=device)
        hidden = _select(hidden, keep)
        active = [active[row] for row in still]
        log_probs, hidden = _step(model, next_ids, hidden)
    return choices


def _step(
    model: RNNLanguageModel, ids: torch.Tensor, hidden: Hidden
) -> tuple[torch.Tensor, Hidden]:
    scores, hidden = model(ids, hidden)  # (batch, 1, vocab)
    return torch.log_softmax(scores[:, -1].float(), dim=-1), hidden


def _repeat(hidden: Hidden, n: int) -> Hidden:
    if isinstance(hidden, tuple):
        return hidden[0].repeat(1, n, 1), hidden[1].repeat(1, n, 1)
    return hidden.repeat(1, n, 1)


def _select(hidden: Hidden, rows: torch.Tensor) -> Hidden:
    if isinstance(hidden, tuple):
        return hidden[0][:, rows], hidden[1][:, rows]
    return hidden[:, rows]
