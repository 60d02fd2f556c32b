"""``POST /tokenize``."""

from __future__ import annotations

from app.errors import located
from app.limits import check_limit, check_texts
from app.registry import ModelRegistry
from app.schemas.tokenize import TokenizeRequest, TokenizeResponse, TokenizerSettings
from app.segmentation import SegmentationPool, segment_here
from app.settings import Limits
from app.tokenizers import TokenizerCache


def tokenize(
    request: TokenizeRequest,
    registry: ModelRegistry,
    tokenizers: TokenizerCache,
    limits: Limits,
    pool: SegmentationPool | None = None,
) -> TokenizeResponse:
    """Segment the request's texts; with ``pool`` (a large request), in its worker processes."""
    texts = request.all_texts
    check_texts(limits, texts)
    loaded = None
    if request.model is not None:
        loaded = registry.get(request.model, request.version)
        tokenizer = loaded.tokenizer
    else:
        check_limit(limits, "max_user_words", len(request.user_words or ()))
        with located("body"):
            tokenizer = tokenizers.get(request.tokenizer_config())
    if pool is not None:
        segmentations = pool.segment(tokenizer, texts, offsets=request.offsets)
    else:
        segmentations = segment_here(tokenizer, texts, offsets=request.offsets)
    tokens = [s.tokens for s in segmentations]
    offsets = [s.offsets or [] for s in segmentations] if request.offsets else None
    response = TokenizeResponse(
        tokens=tokens,
        offsets=offsets,
        tokenizer=TokenizerSettings.from_config(tokenizer.config),
    )
    if loaded is not None:
        vocab = loaded.vocab
        response.ids = [vocab.encode(t) for t in tokens]
        response.oov = [[vocab.is_oov(token) for token in t] for t in tokens]
        response.model, response.version = loaded.name, loaded.version
    return response
