"""``POST /predict``, ``/generate`` and ``/score``: using a model's output layer.

Each request's text is read as a fresh text: after ``<eos>`` when the model ends its texts
with it (:attr:`app.registry.LoadedModel.eos_id`), from zeros for models without.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from app.batching import answer_each
from app.errors import InvalidInputError
from app.limits import check_limit, check_texts, check_value
from app.registry import LoadedModel, ModelRegistry
from app.schemas.generation import (
    Candidate,
    GenerateChoice,
    GenerateRequest,
    GenerateResponse,
    PredictRequest,
    PredictResponse,
    PredictResult,
    ScoreRequest,
    ScoreResponse,
    TextScore,
)
from app.services.text import encode_texts
from app.settings import Limits
from models import generation
from models.scoring import score_sequences, text_perplexity

TokenListener = Callable[[int, str, int], None]  # (choice, token, id)


def _never_produced(loaded: LoadedModel) -> list[int]:
    vocab = loaded.vocab
    return [i for i in (vocab.pad_id, vocab.unk_id) if i is not None]


@dataclass(frozen=True)
class PreparedTexts:
    """A request checked and encoded, ready to join a batch of its model version."""

    request: PredictRequest | ScoreRequest
    loaded: LoadedModel
    tokens: list[list[str]]
    ids: list[list[int]]
    oov: list[list[bool]]

    @property
    def rows(self) -> int:
        return len(self.ids)

    @property
    def longest(self) -> int:
        """Positions of its longest row in a pass (with the start token before it)."""
        return max(map(len, self.ids)) + 1


def prepare_predict(
    request: PredictRequest, registry: ModelRegistry, limits: Limits
) -> PreparedTexts:
    """Everything of ``/predict`` but the forward pass: the checks, segmentation, ids."""
    loaded = registry.get(request.model, request.version)
    check_value(limits, "max_top_k", request.k, "body.k")
    texts = request.all_texts
    check_texts(limits, texts)
    encoded = encode_texts(loaded, texts, request.field)
    check_limit(limits, "max_tokens_per_forward", sum(map(len, encoded.ids)))
    return PreparedTexts(request, loaded, encoded.tokens, encoded.ids, encoded.oov)


def compute_predict(items: Sequence[PreparedTexts]) -> list[PredictResponse | Exception]:
    """The answers of ``/predict`` requests for one model version, from one forward pass."""
    loaded = items[0].loaded
    contexts = [row for item in items for row in item.ids]
    log_probs, _ = generation.next_token_log_probs(loaded.model, contexts, loaded.eos_id)
    # <pad> is never a next word. <eos> is one when the model ends texts (the text may end
    # here); in a model that does not, "<eos>" is a token like any other, as it always was.
    exclude = [loaded.vocab.pad_id] if loaded.vocab.pad_id is not None else []
    starts = list(accumulate((len(item.ids) for item in items), initial=0))

    def answer(position: int) -> PredictResponse:
        item = items[position]
        rows = log_probs[starts[position] : starts[position + 1]]  # (texts, vocab)
        request = item.request
        assert isinstance(request, PredictRequest)
        batches = generation.top_k_of(rows, request.k, exclude)
        results = [
            PredictResult(
                tokens=tokens,
                ids=ids,
                candidates=[
                    Candidate(
                        token=loaded.vocab.token(c.token_id),
                        id=c.token_id,
                        probability=c.probability,
                    )
                    for c in candidates
                ],
            )
            for tokens, ids, candidates in zip(item.tokens, item.ids, batches, strict=True)
        ]
        if request.text is not None:
            only = results[0]
            return PredictResponse(
                model=loaded.name,
                version=loaded.version,
                tokens=only.tokens,
                ids=only.ids,
                candidates=only.candidates,
            )
        return PredictResponse(model=loaded.name, version=loaded.version, results=results)

    return answer_each(range(len(items)), answer)


def generate(
    request: GenerateRequest,
    registry: ModelRegistry,
    limits: Limits,
    on_token: TokenListener | None = None,
) -> GenerateResponse:
    """Generate as ``request`` says; ``on_token`` sees each token as it is chosen (streaming)."""
    loaded = registry.get(request.model, request.version)
    check_value(limits, "max_generate_tokens", request.max_tokens, "body.max_tokens")
    if request.top_k is not None:
        check_value(limits, "max_top_k", request.top_k, "body.top_k")
    check_texts(limits, [request.prompt])
    encoded = encode_texts(loaded, [request.prompt], "prompt")
    vocab = loaded.vocab
    exclude = _never_produced(loaded)
    eos_id = loaded.eos_id
    if eos_id is not None and request.ignore_eos:
        exclude.append(eos_id)  # the text never ends: <eos> is never produced
        eos_id = None

    pieces: list[list[str]] = [[] for _ in range(request.n)]  # each choice's tokens so far

    def should_stop(choice: int, ids: list[int]) -> bool:
        # A stop string is searched in the continuation's own text (it may span tokens).
        if not request.stop:
            return False
        pieces[choice].append(vocab.token(ids[-1]))
        continuation = join_tokens(pieces[choice])
        return any(stop in continuation for stop in request.stop)

    def tell(choice: int, token_id: int) -> None:
        if on_token is not None:
            on_token(choice, vocab.token(token_id), token_id)

    produced = generation.generate(
        loaded.model,
        encoded.ids[0],
        request.max_tokens,
        temperature=request.temperature,
        top_k_size=request.top_k,
        seed=request.seed,
        exclude_ids=exclude,
        start_id=loaded.eos_id,
        eos_id=eos_id,
        repetition_penalty=request.repetition_penalty,
        n=request.n,
        should_stop=should_stop,
        on_token=tell,
    )
    choices = [
        GenerateChoice(
            text=join_tokens([request.prompt, *vocab.decode(choice.ids)]),
            tokens=vocab.decode(choice.ids),
            ids=choice.ids,
            finish_reason=choice.finish_reason,
        )
        for choice in produced
    ]
    if request.n == 1:
        only = choices[0]
        return GenerateResponse(
            model=loaded.name,
            version=loaded.version,
            prompt_tokens=encoded.tokens[0],
            text=only.text,
            tokens=only.tokens,
            ids=only.ids,
            finish_reason=only.finish_reason,
        )
    return GenerateResponse(
        model=loaded.name,
        version=loaded.version,
        prompt_tokens=encoded.tokens[0],
        choices=choices,
    )


def prepare_score(request: ScoreRequest, registry: ModelRegistry, limits: Limits) -> PreparedTexts:
    """Everything of ``/score`` but the forward pass: checks, segmentation, ids (with the
    closing ``<eos>`` that is scored too, for a model that ends its texts)."""
    loaded = registry.get(request.model, request.version)
    texts = request.all_texts
    check_texts(limits, texts)
    encoded = encode_texts(loaded, texts, request.field)
    eos_id = loaded.eos_id
    check_limit(limits, "max_tokens_per_forward", sum(map(len, encoded.ids)) + len(texts))
    tokens = [list(row) for row in encoded.tokens]
    ids = [list(row) for row in encoded.ids]
    oov = [list(row) for row in encoded.oov]
    if eos_id is not None:  # every text ends, as in training: its <eos> is scored too
        for position in range(len(texts)):
            tokens[position].append(loaded.vocab.token(eos_id))
            ids[position].append(eos_id)
            oov[position].append(False)
    else:
        for position, row in enumerate(ids):
            if len(row) < 2:
                raise InvalidInputError(
                    f"text {position} has one token: a model without <eos> predicts a text's "
                    "tokens from the second on",
                    field=f"body.{request.field}" + (f".{position}" if request.texts else ""),
                )
    return PreparedTexts(request, loaded, tokens, ids, oov)


def compute_score(items: Sequence[PreparedTexts]) -> list[ScoreResponse | Exception]:
    """The answers of ``/score`` requests for one model version, from one padded pass."""
    loaded = items[0].loaded
    eos_id = loaded.eos_id
    pad = loaded.vocab.pad_id if loaded.vocab.pad_id is not None else 0
    every = score_sequences(loaded.model, [row for item in items for row in item.ids], eos_id, pad)
    starts = list(accumulate((len(item.ids) for item in items), initial=0))

    def answer(position: int) -> ScoreResponse:
        item = items[position]
        values = every[starts[position] : starts[position + 1]]
        scores = []
        for row, scored in enumerate(values):
            log_probs: list[float | None] = scored.tolist()
            if eos_id is None:
                log_probs = [None, *log_probs]
            scores.append(
                TextScore(
                    tokens=item.tokens[row],
                    ids=item.ids[row],
                    log_probs=log_probs,
                    perplexity=text_perplexity([scored]),
                    oov=item.oov[row],
                )
            )
        return ScoreResponse(
            model=loaded.name,
            version=loaded.version,
            perplexity=text_perplexity(values),
            scores=scores,
        )

    return answer_each(range(len(items)), answer)


def join_tokens(pieces: list[str]) -> str:
    """Concatenate as Chinese is written; a space only between two Latin/digit words."""
    text = ""
    for piece in pieces:
        if (
            text
            and piece
            and text[-1].isascii()
            and text[-1].isalnum()
            and piece[0].isascii()
            and piece[0].isalnum()
        ):
            text += " "
        text += piece
    return text
