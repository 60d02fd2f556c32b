from fastapi import APIRouter, Depends, Response

from app.deps import (
    READ_ONLY,
    RegistryDep,
    SettingsDep,
    StateDep,
    TokenizersDep,
    require_json,
    require_read_key,
)
from app.errors import (
    LimitExceededError,
    NotFoundError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    responses_for,
)
from app.routers import name_model
from app.schemas.dataset import DatasetPreviewRequest, DatasetPreviewResponse
from app.services import dataset as service

router = APIRouter(
    tags=["dataset"], dependencies=[Depends(require_read_key), Depends(require_json)]
)


@router.post(
    "/dataset/preview",
    responses=responses_for(
        UnauthorizedError, NotFoundError, LimitExceededError, UnsupportedMediaTypeError
    ),
    openapi_extra=READ_ONLY,
    response_model_exclude_none=True,
)
async def preview(
    request: DatasetPreviewRequest,
    response: Response,
    state: StateDep,
    registry: RegistryDep,
    tokenizers: TokenizersDep,
    settings: SettingsDep,
) -> DatasetPreviewResponse:
    """The lesson's (x, y) windows, y shifted one step, and the batches a loader makes."""
    result = await state.run(service.preview, request, registry, tokenizers, settings.limits)
    if result.model is not None and result.version is not None:
        name_model(response, result.model, result.version)
    return result
