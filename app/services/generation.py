"""``POST /predict`` and ``POST /generate``: using a model's output layer."""

from __future__ import annotations

from app.limits import check_limit, check_texts
from app.registry import LoadedModel, ModelRegistry
from app.schemas.generation import (
    Candidate,
    GenerateRequest,
    GenerateResponse,
    PredictRequest,
    PredictResponse,
)
from app.services.text import encode_texts
from app.settings import Limits
from models import generation


def _never_produced(loaded: LoadedModel) -> list[int]:
    vocab = loaded.vocab
    return [i for i in (vocab.pad_id, vocab.unk_id) if i is not None]


def predict(request: PredictRequest, registry: ModelRegistry, limits: Limits) -> PredictResponse:
    loaded = registry.get(request.model, request.version)
    check_limit(limits, "max_top_k", request.k)
    check_texts(limits, [request.text])
    encoded = encode_texts(loaded, [request.text], "text")
    exclude = [loaded.vocab.pad_id] if loaded.vocab.pad_id is not None else []
    candidates = generation.top_k(loaded.model, encoded.ids[0], request.k, exclude_ids=exclude)
    return PredictResponse(
        model=loaded.name,
        version=loaded.version,
        tokens=encoded.tokens[0],
        ids=encoded.ids[0],
        candidates=[
            Candidate(
                token=loaded.vocab.token(c.token_id), id=c.token_id, probability=c.probability
            )
            for c in candidates
        ],
    )


def generate(request: GenerateRequest, registry: ModelRegistry, limits: Limits) -> GenerateResponse:
    loaded = registry.get(request.model, request.version)
    check_limit(limits, "max_generate_tokens", request.max_tokens)
    check_texts(limits, [request.prompt])
    encoded = encode_texts(loaded, [request.prompt], "prompt")
    produced = generation.generate(
        loaded.model,
        encoded.ids[0],
        request.max_tokens,
        temperature=request.temperature,
        top_k_size=request.top_k,
        seed=request.seed,
        exclude_ids=_never_produced(loaded),
    )
    tokens = loaded.vocab.decode(produced)
    return GenerateResponse(
        model=loaded.name,
        version=loaded.version,
        prompt_tokens=encoded.tokens[0],
        tokens=tokens,
        ids=produced,
        text=join_tokens([request.prompt, *tokens]),
    )


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
