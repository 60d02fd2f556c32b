"""The ``demo`` model, created on first start so the docs' examples answer at once."""

from __future__ import annotations

import logging
from pathlib import Path

from app.registry import ModelRegistry
from app.schemas.registry import CreateModelRequest
from app.services.registry import create_model
from app.settings import Settings
from app.tokenizers import TokenizerCache

logger = logging.getLogger("seqlab")
SAMPLE = Path(__file__).parent / "samples" / "demo.txt"
DEMO_NAME = "demo"


def ensure_demo_model(
    registry: ModelRegistry, tokenizers: TokenizerCache, settings: Settings
) -> None:
    """On an empty registry, build ``demo``: the lesson's layer shapes (4 → 5, 2 layers, tanh)."""
    if len(registry) > 0:
        return
    texts = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    request = CreateModelRequest(
        name=DEMO_NAME,
        texts=texts,
        embedding_dim=4,
        hidden_size=5,
        num_layers=2,
        cell="rnn",
        nonlinearity="tanh",
        seed=0,
    )
    loaded = create_model(request, registry, tokenizers, settings.limits)
    logger.info("created the demo model: %d tokens in its vocabulary", len(loaded.vocab))
