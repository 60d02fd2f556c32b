from fastapi import APIRouter, Response

from app.deps import READ_ONLY, InferenceState
from app.inline import runs_inline
from app.routers import INFERENCE_ERRORS, QueryVersion, answered_inline, name_model, pin_version
from app.schemas.tokenize import TokenizeRequest, TokenizeResponse
from app.services import tokenize as service

router = APIRouter(tags=["text"])


@router.post(
    "/tokenize",
    responses=INFERENCE_ERRORS,
    openapi_extra=READ_ONLY,
    response_model_exclude_none=True,
)
async def tokenize(
    request: TokenizeRequest,
    response: Response,
    state: InferenceState,
    version: QueryVersion = None,
) -> TokenizeResponse:
    """Segment one text or a batch with jieba; with `model`, its tokenizer and its ids."""
    request = pin_version(request, version)
    large = not runs_inline(request)
    result = await state.run(
        service.tokenize,
        request,
        state.registry,
        state.tokenizers,
        state.settings.limits,
        state.segmentation if large else None,  # large: on every core, in worker processes
        small=answered_inline(state, request),
        kind="segmentation",  # GIL-bound: its own, narrower queue
    )
    if result.model is not None and result.version is not None:
        name_model(response, result.model, result.version)
    return result
