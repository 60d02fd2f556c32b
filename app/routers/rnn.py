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
from app.schemas.rnn import RNNForwardRequest, RNNForwardResponse
from app.services import rnn as service

router = APIRouter(
    tags=["recurrent layer"], dependencies=[Depends(require_read_key), Depends(require_json)]
)


@router.post(
    "/rnn/forward",
    responses=responses_for(
        UnauthorizedError, NotFoundError, LimitExceededError, UnsupportedMediaTypeError
    ),
    openapi_extra=READ_ONLY,
    response_model_exclude_none=True,
)
async def rnn_forward(
    request: RNNForwardRequest,
    response: Response,
    state: StateDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> RNNForwardResponse:
    """Run a recurrent layer and see `output` (every step) and `hn` (every layer, last step)."""
    result = await state.run(service.forward, request, registry, settings.limits)
    if result.model is not None and result.version is not None:
        name_model(response, result.model, result.version)
    return result
