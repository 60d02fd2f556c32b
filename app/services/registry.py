"""Creating models and describing them (``/models``)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from app.errors import InvalidInputError, NotFoundError, located
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
from app.segmentation import SegmentationPool, tokens_of
from app.settings import Limits
from app.tokenizers import TokenizerCache
from models.adaptive import choose_cutoffs
from models.errors import CheckpointError
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.seeding import fresh_seed, seeded
from models.vocab import Vocab


def build_from_texts(
    spec: ModelSpec,
    texts: Iterable[str],
    tokenizers: TokenizerCache,
    limits: Limits,
    location: str = "body",
    pool: SegmentationPool | None = None,
) -> tuple[list[list[str]], Vocab, LanguageModelConfig]:
    """Segment the texts (on every core with ``pool``), build the vocabulary and the network's
    config, as ``spec`` says.

    Shared by ``POST /models`` and training jobs that create their model; errors name their
    field under ``location``.
    """
    check_value(limits, "max_embedding_dim", spec.embedding_dim, f"{location}.embedding_dim")
    check_value(limits, "max_hidden_size", spec.hidden_size, f"{location}.hidden_size")
    check_value(limits, "max_num_layers", spec.num_layers, f"{location}.num_layers")
    check_limit(limits, "max_user_words", len(spec.tokenizer.user_words))
    with located(f"{location}.tokenizer"):
        tokenizer = tokenizers.get(spec.tokenizer.to_config())
    tokens = tokens_of(tokenizer, list(texts), pool)
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
    pool: SegmentationPool | None = None,
) -> LoadedModel:
    """Build the vocabulary from the texts, initialise the network, publish version 1."""
    characters = sum(len(text) for text in request.texts)
    check_limit(limits, "max_training_chars", characters)
    _, vocab, config = build_from_texts(request, request.texts, tokenizers, limits, pool=pool)
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


def model_info(registry: ModelRegistry, name: str, version: int | None = None) -> ModelInfo:
    """A model at its latest (or the given) version, described without loading it."""
    summary = registry.describe(name, version)
    created_at, updated_at = registry.timestamps(name)
    return ModelInfo(
        name=summary.name,
        version=summary.version,
        versions=[row.version for row in registry.versions(name)],
        config=ModelConfigOut(**summary.config.to_dict()),
        tokenizer=TokenizerSettings.from_config(summary.tokenizer_config),
        vocab_size=summary.vocab_size,
        specials=list(summary.specials),
        num_parameters=summary.num_parameters,
        device=summary.device,
        loaded=summary.loaded,
        created_at=created_at,
        updated_at=updated_at,
        metrics=summary.metrics,
        source=summary.source,
    )


def model_infos(registry: ModelRegistry) -> list[ModelInfo]:
    """Every model at its latest version; one deleted meanwhile is left out."""
    infos = []
    for name in registry.names():
        try:
            infos.append(model_info(registry, name))
        except NotFoundError:
            continue
        except (CheckpointError, OSError):  # its files went with a deletion just now
            if name in registry.names():
                raise
    return infos


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
