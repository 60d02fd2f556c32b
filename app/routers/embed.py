from fastapi import APIRouter, Depends, Response

from app.deps import READ_ONLY, RegistryDep, SettingsDep, StateDep, require_json, require_read_key
from app.errors import (
    LimitExceededError,
    NotFoundError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    responses_for,
)
from app.routers import name_model
from app.schemas.embed import EmbedRequest, EmbedResponse
from app.services import embed as service

router = APIRouter(
    tags=["embeddings"], dependencies=[Depends(require_read_key), Depends(require_json)]
)


@router.post(
    "/embed",
    responses=responses_for(
        UnauthorizedError, NotFoundError, LimitExceededError, UnsupportedMediaTypeError
    ),
    openapi_extra=READ_ONLY,
)
async def embed(
    request: EmbedRequest,
    response: Response,
    state: StateDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> EmbedResponse:
    """Word vectors: rows of the model's embedding matrix for each token, with OOV flags."""
    result = await state.run(service.embed, request, registry, settings.limits)
    name_model(response, result.model, result.version)
    return result
