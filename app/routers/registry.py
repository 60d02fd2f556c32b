from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from app.deps import (
    RegistryDep,
    SettingsDep,
    StateDep,
    TokenizersDep,
    require_api_key,
    require_json,
    require_read_key,
)
from app.errors import (
    ConflictError,
    LimitExceededError,
    NotFoundError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    responses_for,
)
from app.registry import NAME_PATTERN
from app.routers import name_model
from app.schemas.registry import CreateModelRequest, ModelInfo, ModelList, VersionInfo, VocabPage
from app.services import registry as service

router = APIRouter(prefix="/models", tags=["models"])
NameParam = Annotated[str, Path(pattern=NAME_PATTERN, description="The model's name.")]
VersionQuery = Annotated[int | None, Query(ge=1, description="A version; the latest if omitted.")]
reads = [Depends(require_read_key)]
writes = [Depends(require_api_key)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[*writes, Depends(require_json)],
    responses=responses_for(
        UnauthorizedError, ConflictError, LimitExceededError, UnsupportedMediaTypeError
    ),
)
async def create_model(
    request: CreateModelRequest,
    response: Response,
    state: StateDep,
    registry: RegistryDep,
    tokenizers: TokenizersDep,
    settings: SettingsDep,
) -> ModelInfo:
    """Create a model: vocabulary from `texts`, random weights (seeded), version 1."""
    loaded = await state.run(service.create_model, request, registry, tokenizers, settings.limits)
    name_model(response, loaded.name, loaded.version)
    response.headers["Location"] = f"/models/{loaded.name}"
    return service.model_info(loaded, registry)


@router.get("", dependencies=reads, responses=responses_for(UnauthorizedError))
async def list_models(registry: RegistryDep) -> ModelList:
    """Every model, at its latest version."""
    return ModelList(
        models=[service.model_info(registry.get(n), registry) for n in registry.names()]
    )


@router.get(
    "/{name}", dependencies=reads, responses=responses_for(UnauthorizedError, NotFoundError)
)
async def get_model(
    name: NameParam, response: Response, registry: RegistryDep, version: VersionQuery = None
) -> ModelInfo:
    """One model: configuration, tokenizer, vocabulary size, device, versions, metrics."""
    loaded = registry.get(name, version)
    name_model(response, loaded.name, loaded.version)
    return service.model_info(loaded, registry)


@router.get(
    "/{name}/versions",
    dependencies=reads,
    responses=responses_for(UnauthorizedError, NotFoundError),
)
async def list_versions(name: NameParam, registry: RegistryDep) -> list[VersionInfo]:
    """Every published version of a model, oldest first."""
    return service.version_infos(name, registry)


@router.get(
    "/{name}/vocab", dependencies=reads, responses=responses_for(UnauthorizedError, NotFoundError)
)
async def get_vocab(
    name: NameParam,
    response: Response,
    registry: RegistryDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    version: VersionQuery = None,
) -> VocabPage:
    """A page of the vocabulary; a token's id is its index."""
    loaded = registry.get(name, version)
    name_model(response, loaded.name, loaded.version)
    return service.vocab_page(loaded, offset, limit)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=writes,
    responses=responses_for(UnauthorizedError, NotFoundError),
)
async def delete_model(name: NameParam, state: StateDep, registry: RegistryDep) -> None:
    """Delete a model, every version and its files."""
    await state.run(registry.delete, name)
