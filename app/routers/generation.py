from fastapi import APIRouter, Response

from app.deps import READ_ONLY, InferenceState
from app.inline import runs_inline
from app.routers import INFERENCE_ERRORS, json_answer
from app.schemas.generation import (
    GenerateRequest,
    GenerateResponse,
    PredictRequest,
    PredictResponse,
)
from app.services import generation as service

router = APIRouter(tags=["language model"])


@router.post(
    "/predict", response_model=PredictResponse, responses=INFERENCE_ERRORS, openapi_extra=READ_ONLY
)
async def predict(request: PredictRequest, state: InferenceState) -> Response:
    """The k most probable next words after a text, with their probabilities."""
    result = await state.run(
        service.predict,
        request,
        state.registry,
        state.settings.limits,
        small=runs_inline(request),
    )
    return json_answer(result, result.model, result.version)


@router.post(
    "/generate",
    response_model=GenerateResponse,
    responses=INFERENCE_ERRORS,
    openapi_extra=READ_ONLY,
)
async def generate(request: GenerateRequest, state: InferenceState) -> Response:
    """Continue a prompt: greedy (temperature 0) or sampled (temperature, top_k, seed)."""
    result = await state.run(service.generate, request, state.registry, state.settings.limits)
    return json_answer(result, result.model, result.version)
