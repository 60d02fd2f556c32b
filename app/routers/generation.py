from fastapi import APIRouter, Response

from app.deps import READ_ONLY, InferenceState
from app.routers import INFERENCE_ERRORS, infer, json_answer
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
    result = await infer(state, service.predict, request)
    return json_answer(result, result.model, result.version)


@router.post(
    "/generate",
    response_model=GenerateResponse,
    responses=INFERENCE_ERRORS,
    openapi_extra=READ_ONLY,
)
async def generate(request: GenerateRequest, state: InferenceState) -> Response:
    """Continue a prompt: greedy (temperature 0) or sampled (temperature, top_k, seed)."""
    result = await infer(state, service.generate, request)
    return json_answer(result, result.model, result.version)
