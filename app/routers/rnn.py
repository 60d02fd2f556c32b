from fastapi import APIRouter, Response

from app.deps import READ_ONLY, InferenceState
from app.routers import INFERENCE_ERRORS, QueryVersion, infer, json_answer
from app.schemas.rnn import RNNForwardRequest, RNNForwardResponse
from app.services import rnn as service

router = APIRouter(tags=["recurrent layer"])


@router.post(
    "/rnn/forward",
    response_model=RNNForwardResponse,
    response_model_exclude_none=True,
    responses=INFERENCE_ERRORS,
    openapi_extra=READ_ONLY,
)
async def rnn_forward(
    request: RNNForwardRequest, state: InferenceState, version: QueryVersion = None
) -> Response:
    """Run a recurrent layer and see `output` (every step) and `hn` (every layer, last step)."""
    result = await infer(state, service.forward, request, version)
    return json_answer(result, result.model, result.version)
