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
from app.schemas.generation import (
    GenerateRequest,
    GenerateResponse,
    PredictRequest,
    PredictResponse,
)
from app.services import generation as service

router = APIRouter(
    tags=["language model"], dependencies=[Depends(require_read_key), Depends(require_json)]
)
errors = responses_for(
    UnauthorizedError, NotFoundError, LimitExceededError, UnsupportedMediaTypeError
)


@router.post("/predict", responses=errors, openapi_extra=READ_ONLY)
async def predict(
    request: PredictRequest,
    response: Response,
    state: StateDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> PredictResponse:
    """The k most probable next words after a text, with their probabilities."""
    result = await state.run(service.predict, request, registry, settings.limits)
    name_model(response, result.model, result.version)
    return result


@router.post("/generate", responses=errors, openapi_extra=READ_ONLY)
async def generate(
    request: GenerateRequest,
    response: Response,
    state: StateDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> GenerateResponse:
    """Continue a prompt: greedy (temperature 0) or sampled (temperature, top_k, seed)."""
    result = await state.run(service.generate, request, registry, settings.limits)
    name_model(response, result.model, result.version)
    return result
