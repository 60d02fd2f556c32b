from functools import partial

from fastapi import APIRouter, Request, Response

from app import binary
from app.batching import BatchedOperation
from app.deps import READ_ONLY, InferenceState
from app.inline import INLINE_STEPS
from app.routers import (
    BINARY_MEDIA,
    INFERENCE_ERRORS,
    QueryVersion,
    batched,
    binary_answer,
    infer,
    json_answer,
)
from app.schemas.rnn import RNNForwardRequest, RNNForwardResponse
from app.services import rnn as service

router = APIRouter(tags=["recurrent layer"])
# The texts' ids right-padded into one (texts, longest) pass; on the event loop only as many
# steps as one small request may take (app.inline).
RNN_TEXTS = BatchedOperation("rnn", service.compute_texts, padded=True, inline_limit=INLINE_STEPS)

# The tensor form may also come as safetensors: `input` (and `h0`, `c0`) as tensors, the other
# fields as JSON in the header's __metadata__["request"] (app.binary).
BINARY_REQUEST = {"requestBody": {"content": BINARY_MEDIA}}


@router.post(
    "/rnn/forward",
    response_model=RNNForwardResponse,
    response_model_exclude_none=True,
    responses={**INFERENCE_ERRORS, 200: {"content": BINARY_MEDIA}},
    openapi_extra=READ_ONLY | BINARY_REQUEST,
)
async def rnn_forward(
    request: RNNForwardRequest, http: Request, state: InferenceState, version: QueryVersion = None
) -> Response:
    """Run a recurrent layer and see `output` (every step) and `hn` (every layer, last step).

    With `Accept: application/vnd.safetensors` the answer is the same tensors as safetensors
    (the other fields in its `__metadata__["seqlab"]`, JSON); the tensor form's `input`, `h0`
    and `c0` may be sent that way too (`Content-Type: application/vnd.safetensors`, the other
    fields in `__metadata__["request"]`).
    """
    sent = getattr(http.state, "tensors", None)
    if sent:  # a binary request: its input, h0, c0 (app.middleware.ServiceMiddleware)
        request.tensors.update(sent)
    wanted = binary.wants_binary(http.headers.get("accept"))
    if service.batchable(request):
        prepare = partial(service.prepare_texts, binary=wanted)
        result = await batched(state, RNN_TEXTS, prepare, request, version)
    else:
        result = await infer(state, partial(service.forward, binary=wanted), request, version)
    if wanted:
        return binary_answer(result, result.model, result.version)
    return json_answer(result, result.model, result.version)
