from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app import binary
from app.batching import BatchedOperation
from app.deps import READ_ONLY, InferenceState, ReadState
from app.errors import NotFoundError, OverloadedError
from app.inline import INLINE_TOKENS
from app.problems import responses_for
from app.routers import (
    BINARY_MEDIA,
    INFERENCE_ERRORS,
    QueryVersion,
    batched,
    binary_answer,
    json_answer,
)
from app.routers.registry import NameParam, VersionQuery
from app.schemas.embed import EmbedRequest, EmbedResponse, NeighboursResponse
from app.services import embed as service

router = APIRouter(tags=["embeddings"])
# One flat lookup of every request's ids: nothing is padded.
EMBED = BatchedOperation("embed", service.compute_embed, padded=False, inline_limit=INLINE_TOKENS)


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses={**INFERENCE_ERRORS, 200: {"content": BINARY_MEDIA}},
    openapi_extra=READ_ONLY,
)
async def embed(
    request: EmbedRequest, http: Request, state: InferenceState, version: QueryVersion = None
) -> Response:
    """Word vectors: rows of the model's embedding matrix for each token, with OOV flags.

    With `Accept: application/vnd.safetensors`: `vectors` [texts, longest, dim] (zero past each
    text's end) and `lengths` [texts] as safetensors, the other fields in `__metadata__`.
    """
    wanted = binary.wants_binary(http.headers.get("accept"))
    prepare = partial(service.prepare_embed, binary=wanted)
    result = await batched(state, EMBED, prepare, request, version)
    if wanted:
        return binary_answer(result, result.model, result.version)
    return json_answer(result, result.model, result.version)


@router.get(
    "/models/{name}/neighbours",
    response_model=NeighboursResponse,
    responses=responses_for(NotFoundError, OverloadedError),
)
async def neighbours(
    name: NameParam,
    state: ReadState,
    token: Annotated[str, Query(min_length=1, max_length=256, description="A vocabulary token.")],
    k: Annotated[int, Query(ge=1, le=100, description="How many neighbours.")] = 10,
    version: VersionQuery = None,
) -> Response:
    """The nearest words to `token` by cosine similarity of their embedding rows."""
    result = await state.run(service.neighbours, name, version, token, k, state.registry)
    return json_answer(result, result.model, result.version)
