from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query, Response, status

from app.deps import JsonWriteState, ReadState, WriteState
from app.errors import ConflictError, LimitExceededError, NotFoundError, UnsupportedMediaTypeError
from app.problems import WRITE_ERRORS, responses_for
from app.registry import NAME_PATTERN
from app.routers import name_model
from app.schemas.registry import CreateModelRequest, ModelInfo, ModelList, VersionInfo, VocabPage
from app.services import registry as service

router = APIRouter(prefix="/models", tags=["models"])
NameParam = Annotated[str, Path(pattern=NAME_PATTERN, description="The model's name.")]
VersionQuery = Annotated[int | None, Query(ge=1, description="A version; the latest if omitted.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=responses_for(
        ConflictError, LimitExceededError, UnsupportedMediaTypeError, *WRITE_ERRORS
    ),
)
async def create_model(
    request: CreateModelRequest, response: Response, state: JsonWriteState
) -> ModelInfo:
    """Create a model: vocabulary from `texts`, random weights (seeded), version 1."""
    loaded = await state.run(
        service.create_model,
        request,
        state.registry,
        state.tokenizers,
        state.settings.limits,
        state.segmentation,
        kind="upload",
    )
    name_model(response, loaded.name, loaded.version)
    response.headers["Location"] = f"/models/{loaded.name}"
    return service.model_info(state.registry, loaded.name, loaded.version)


@router.get("", responses=responses_for())
async def list_models(state: ReadState) -> ModelList:
    """Every model, at its latest version (described from disk: nothing is loaded)."""
    # Off the event loop (a checkpoint's JSON may be read), outside the inference queue.
    return ModelList(models=await anyio.to_thread.run_sync(service.model_infos, state.registry))


@router.get("/{name}", responses=responses_for(NotFoundError))
async def get_model(
    name: NameParam, response: Response, state: ReadState, version: VersionQuery = None
) -> ModelInfo:
    """One model: configuration, tokenizer, vocabulary size, device (and whether it is loaded),
    versions, metrics."""
    info = await anyio.to_thread.run_sync(service.model_info, state.registry, name, version)
    name_model(response, info.name, info.version)
    return info


@router.get(
    "/{name}/versions",
    responses=responses_for(NotFoundError),
)
async def list_versions(name: NameParam, state: ReadState) -> list[VersionInfo]:
    """Every published version of a model, oldest first."""
    return service.version_infos(name, state.registry)


@router.get("/{name}/vocab", responses=responses_for(NotFoundError))
async def get_vocab(
    name: NameParam,
    response: Response,
    state: ReadState,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    version: VersionQuery = None,
) -> VocabPage:
    """A page of the vocabulary; a token's id is its index."""
    loaded = await state.run(state.registry.get, name, version)
    name_model(response, loaded.name, loaded.version)
    return service.vocab_page(loaded, offset, limit)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses_for(NotFoundError),
)
async def delete_model(name: NameParam, state: WriteState) -> None:
    """Delete a model, every version and its files."""
    await state.run(state.registry.delete, name, kind="upload")
