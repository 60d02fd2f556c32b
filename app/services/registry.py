"""Creating models and describing them (``/models``)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from app.errors import InvalidInputError, located
from app.limits import check_limit, check_value
from app.registry import LoadedModel, ModelRegistry
from app.schemas.registry import (
    CreateModelRequest,
    ModelConfigOut,
    ModelInfo,
    ModelSpec,
    VersionInfo,
    VocabPage,
)
from app.schemas.tokenize import TokenizerSettings
from app.settings import Limits
from app.tokenizers import TokenizerCache
from models.adaptive import choose_cutoffs
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.seeding import fresh_seed, seeded
from models.vocab import Vocab


def build_from_texts(
    spec: ModelSpec,
    texts: Iterable[str],
    tokenizers: TokenizerCache,
    limits: Limits,
    location: str = "body",
) -> tuple[list[list[str]], Vocab, LanguageModelConfig]:
    """Segment the texts, build the vocabulary and the network's config, as ``spec`` says.

    Shared by ``POST /models`` and training jobs that create their model; errors name their
    field under ``location``.
    """
    check_value(limits, "max_embedding_dim", spec.embedding_dim, f"{location}.embedding_dim")
    check_value(limits, "max_hidden_size", spec.hidden_size, f"{location}.hidden_size")
    check_value(limits, "max_num_layers", spec.num_layers, f"{location}.num_layers")
    check_limit(limits, "max_user_words", len(spec.tokenizer.user_words))
    with located(f"{location}.tokenizer"):
        tokenizer = tokenizers.get(spec.tokenizer.to_config())
    tokens = [tokenizer.tokenize(text) for text in texts]
    settings = spec.vocab
    with located(f"{location}.vocab"):
        vocab = Vocab.build(
            tokens,
            order=settings.order,
            specials=settings.specials,
            min_freq=settings.min_freq,
            max_size=settings.max_size,
        )
    if len(vocab) == len(settings.specials):
        raise InvalidInputError(
            "the texts give no tokens for the vocabulary (all dropped, or all under min_freq)",
            field="body.texts",
        )
    check_limit(limits, "max_vocab_size", len(vocab))
    cutoffs: tuple[int, ...] = ()
    if spec.output == "adaptive":
        if spec.cutoffs is not None:
            cutoffs = tuple(spec.cutoffs)
        else:
            counts = torch.bincount(
                torch.tensor([vocab.index(t) for line in tokens for t in line if t in vocab]),
                minlength=len(vocab),
            )
            with located(location):
                cutoffs = choose_cutoffs(counts)
    with located(location):
        config = LanguageModelConfig(
            vocab_size=len(vocab),
            embedding_dim=spec.embedding_dim,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            cell=spec.cell,
            nonlinearity=spec.nonlinearity,
            dropout=spec.dropout,
            tie_weights=spec.tie_weights,
            output=spec.output,
            cutoffs=cutoffs,
        )
    return tokens, vocab, config


def create_model(
    request: CreateModelRequest,
    registry: ModelRegistry,
    tokenizers: TokenizerCache,
    limits: Limits,
) -> LoadedModel:
    """Build the vocabulary from the texts, initialise the network, publish version 1."""
    characters = sum(len(text) for text in request.texts)
    check_limit(limits, "max_training_chars", characters)
    _, vocab, config = build_from_texts(request, request.texts, tokenizers, limits)
    seed = request.seed if request.seed is not None else fresh_seed()
    with seeded(seed):
        model = RNNLanguageModel(config)
    source = {
        "kind": "create",
        "seed": seed,
        "vocab": request.vocab.model_dump(),
        "texts": len(request.texts),
        "characters": characters,
    }
    return registry.publish(
        request.name, model, vocab, request.tokenizer.to_config(), create=True, source=source
    )


def model_info(loaded: LoadedModel, registry: ModelRegistry) -> ModelInfo:
    created_at, updated_at = registry.timestamps(loaded.name)
    return ModelInfo(
        name=loaded.name,
        version=loaded.version,
        versions=[row.version for row in registry.versions(loaded.name)],
        config=ModelConfigOut(**loaded.config.to_dict()),
        tokenizer=TokenizerSettings.from_config(loaded.tokenizer_config),
        vocab_size=len(loaded.vocab),
        specials=list(loaded.vocab.specials),
        num_parameters=loaded.model.num_parameters(),
        device=str(loaded.device),
        created_at=created_at,
        updated_at=updated_at,
        metrics=loaded.metrics,
        source=loaded.source,
    )


def version_infos(name: str, registry: ModelRegistry) -> list[VersionInfo]:
    return [
        VersionInfo(version=r.version, created_at=r.created_at, metrics=r.metrics, source=r.source)
        for r in registry.versions(name)
    ]


def vocab_page(loaded: LoadedModel, offset: int, limit: int) -> VocabPage:
    tokens = loaded.vocab.tokens
    return VocabPage(
        model=loaded.name,
        version=loaded.version,
        size=len(tokens),
        offset=offset,
        tokens=tokens[offset : offset + limit],
        specials=list(loaded.vocab.specials),
    )
