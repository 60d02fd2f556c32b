from fastapi import APIRouter, Response

from app.deps import READ_ONLY, InferenceState
from app.routers import INFERENCE_ERRORS, QueryVersion, infer, json_answer
from app.schemas.embed import EmbedRequest, EmbedResponse
from app.services import embed as service

router = APIRouter(tags=["embeddings"])


@router.post(
    "/embed", response_model=EmbedResponse, responses=INFERENCE_ERRORS, openapi_extra=READ_ONLY
)
async def embed(
    request: EmbedRequest, state: InferenceState, version: QueryVersion = None
) -> Response:
    """Word vectors: rows of the model's embedding matrix for each token, with OOV flags."""
    result = await infer(state, service.embed, request, version)
    return json_answer(result, result.model, result.version)
