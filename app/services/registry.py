"""Creating models and describing them (``/models``)."""

from __future__ import annotations

from app.errors import InvalidInputError, located
from app.limits import check_limit
from app.registry import LoadedModel, ModelRegistry
from app.schemas.registry import (
    CreateModelRequest,
    ModelConfigOut,
    ModelInfo,
    VersionInfo,
    VocabPage,
)
from app.schemas.tokenize import TokenizerSettings
from app.services.seeding import fresh_seed, seeded
from app.settings import Limits
from app.tokenizers import TokenizerCache
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.vocab import Vocab


def create_model(
    request: CreateModelRequest,
    registry: ModelRegistry,
    tokenizers: TokenizerCache,
    limits: Limits,
) -> LoadedModel:
    """Build the vocabulary from the texts, initialise the network, publish version 1."""
    check_limit(limits, "max_training_chars", sum(len(text) for text in request.texts))
    check_limit(limits, "max_embedding_dim", request.embedding_dim)
    check_limit(limits, "max_hidden_size", request.hidden_size)
    check_limit(limits, "max_num_layers", request.num_layers)
    check_limit(limits, "max_user_words", len(request.tokenizer.user_words))
    with located("body.tokenizer"):
        tokenizer_config = request.tokenizer.to_config()
    tokenizer = tokenizers.get(tokenizer_config)
    settings = request.vocab
    with located("body.vocab"):
        vocab = Vocab.build(
            (tokenizer.tokenize(text) for text in request.texts),
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
    with located("body"):
        config = LanguageModelConfig(
            vocab_size=len(vocab),
            embedding_dim=request.embedding_dim,
            hidden_size=request.hidden_size,
            num_layers=request.num_layers,
            cell=request.cell,
            nonlinearity=request.nonlinearity,
            dropout=request.dropout,
            tie_weights=request.tie_weights,
        )
    seed = request.seed if request.seed is not None else fresh_seed()
    with seeded(seed):
        model = RNNLanguageModel(config)
    source = {
        "kind": "create",
        "seed": seed,
        "vocab": settings.model_dump(),
        "texts": len(request.texts),
        "characters": sum(len(text) for text in request.texts),
    }
    return registry.publish(
        request.name, model, vocab, tokenizer_config, create=True, source=source
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
