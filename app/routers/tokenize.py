from fastapi import APIRouter, Response

from app.deps import READ_ONLY, InferenceState
from app.errors import (
    LimitExceededError,
    NotFoundError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    responses_for,
)
from app.routers import name_model
from app.schemas.tokenize import TokenizeRequest, TokenizeResponse
from app.services import tokenize as service

router = APIRouter(tags=["text"])

# Short texts are cut on the event loop: a thread hop costs more than jieba does.
INLINE_CHARS = 2_000


@router.post(
    "/tokenize",
    responses=responses_for(
        UnauthorizedError, NotFoundError, LimitExceededError, UnsupportedMediaTypeError
    ),
    openapi_extra=READ_ONLY,
    response_model_exclude_none=True,
)
async def tokenize(
    request: TokenizeRequest, response: Response, state: InferenceState
) -> TokenizeResponse:
    """Segment one text or a batch with jieba; with `model`, its tokenizer and its ids."""
    arguments = (request, state.registry, state.tokenizers, state.settings.limits)
    if sum(len(text) for text in request.all_texts) <= INLINE_CHARS:
        result = service.tokenize(*arguments)
    else:
        result = await state.run(service.tokenize, *arguments)
    if result.model is not None and result.version is not None:
        name_model(response, result.model, result.version)
    return result
