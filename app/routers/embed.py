from fastapi import APIRouter, Response

from app.deps import READ_ONLY, InferenceState
from app.errors import (
    LimitExceededError,
    NotFoundError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    responses_for,
)
from app.routers import SMALL_WORK, json_answer
from app.schemas.embed import EmbedRequest, EmbedResponse
from app.services import embed as service

router = APIRouter(tags=["embeddings"])


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses=responses_for(
        UnauthorizedError, NotFoundError, LimitExceededError, UnsupportedMediaTypeError
    ),
    openapi_extra=READ_ONLY,
)
async def embed(request: EmbedRequest, state: InferenceState) -> Response:
    """Word vectors: rows of the model's embedding matrix for each token, with OOV flags."""
    size = sum(map(len, request.texts or request.tokens or request.ids or [request.text or ""]))
    result = await state.run(
        service.embed, request, state.registry, state.settings.limits, small=size <= SMALL_WORK
    )
    return json_answer(result, result.model, result.version)
