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
from app.schemas.rnn import RNNForwardRequest, RNNForwardResponse
from app.services import rnn as service

router = APIRouter(tags=["recurrent layer"])


@router.post(
    "/rnn/forward",
    response_model=RNNForwardResponse,
    response_model_exclude_none=True,
    responses=responses_for(
        UnauthorizedError, NotFoundError, LimitExceededError, UnsupportedMediaTypeError
    ),
    openapi_extra=READ_ONLY,
)
async def rnn_forward(request: RNNForwardRequest, state: InferenceState) -> Response:
    """Run a recurrent layer and see `output` (every step) and `hn` (every layer, last step)."""
    result = await state.run(
        service.forward, request, state.registry, state.settings.limits, small=_small(request)
    )
    return json_answer(result, result.model, result.version)


def _small(request: RNNForwardRequest) -> bool:
    """A handful of steps over a small layer: microseconds of work."""
    if request.input is not None:
        steps = len(request.input) * max((len(row) for row in request.input), default=0)
        hidden = request.rnn.hidden_size * request.rnn.num_layers if request.rnn else SMALL_WORK
        return steps <= 64 and hidden <= SMALL_WORK
    texts = request.texts or [request.text or ""]
    return sum(map(len, texts)) <= 64
