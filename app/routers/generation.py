import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from app.deps import READ_ONLY, InferenceState
from app.problems import describe, problem_body
from app.routers import INFERENCE_ERRORS, QueryVersion, infer, json_answer, pin_version
from app.schemas.generation import (
    GenerateRequest,
    GenerateResponse,
    PredictRequest,
    PredictResponse,
    ScoreRequest,
    ScoreResponse,
)
from app.services import generation as service

router = APIRouter(tags=["language model"])


@router.post(
    "/predict", response_model=PredictResponse, responses=INFERENCE_ERRORS, openapi_extra=READ_ONLY
)
async def predict(
    request: PredictRequest, state: InferenceState, version: QueryVersion = None
) -> Response:
    """The k most probable next words after a text (or each of `texts`, as one batch)."""
    result = await infer(state, service.predict, request, version)
    return json_answer(result, result.model, result.version)


@router.post(
    "/generate",
    response_model=GenerateResponse,
    responses={
        **INFERENCE_ERRORS,
        200: {
            "description": "The answer; with `stream`, server-sent events: `token` "
            '`{"choice", "token", "id"}` per token, then `done` with this answer '
            "(or `error` with a problem body).",
            "content": {"text/event-stream": {}},
        },
    },
    openapi_extra=READ_ONLY,
)
async def generate(
    request: GenerateRequest, state: InferenceState, version: QueryVersion = None
) -> Response:
    """Continue a prompt until `<eos>`, a `stop` string or `max_tokens` (`finish_reason`):
    greedy (temperature 0) or sampled (temperature, top_k, repetition_penalty, seed), `n` at
    once; `stream` sends each token as it is chosen."""
    if not request.stream:
        result = await infer(state, service.generate, request, version)
        return json_answer(result, result.model, result.version)
    request = pin_version(request, version)
    # The stream and its header name one version, even if a newer one is published meanwhile.
    loaded = state.registry.get(request.model, request.version)
    request = request.model_copy(update={"version": loaded.version})
    events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
    producer = asyncio.create_task(_produce(state, request, events))
    first = await events.get()
    if first[0] == "raise":  # before the first token: an answer with its own status
        raise first[1]  # type: ignore[misc]
    return StreamingResponse(
        _event_stream(first, events, producer),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "Seqlab-Model": loaded.label,
        },
    )


async def _produce(state, request: GenerateRequest, events: asyncio.Queue) -> None:
    """Generate in a thread; each token, then the answer (or the error), goes to ``events``."""
    loop = asyncio.get_running_loop()
    started = False

    def on_token(choice: int, token: str, token_id: int) -> None:
        nonlocal started
        started = True
        item = {"choice": choice, "token": token, "id": token_id}
        loop.call_soon_threadsafe(events.put_nowait, ("token", item))

    try:
        result = await state.run(
            service.generate, request, state.registry, state.settings.limits, on_token
        )
        await events.put(("done", result.model_dump(mode="json", exclude_none=True)))
    except Exception as error:
        if not started:
            await events.put(("raise", error))
        else:
            kind, detail, extra = describe(error)
            await events.put(("error", problem_body(kind, detail, "/generate", **extra)))


async def _event_stream(
    first: tuple[str, object], events: asyncio.Queue, producer: asyncio.Task
) -> AsyncIterator[str]:
    """The events numbered from 0 (``id:``): tokens, then ``done`` or ``error``."""
    event, data = first
    number = 0
    try:
        while True:
            yield f"id: {number}\nevent: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            number += 1
            if event in ("done", "error"):
                break
            event, data = await events.get()
    finally:
        await producer


@router.post(
    "/score", response_model=ScoreResponse, responses=INFERENCE_ERRORS, openapi_extra=READ_ONLY
)
async def score(
    request: ScoreRequest, state: InferenceState, version: QueryVersion = None
) -> Response:
    """Each token's log-probability given the tokens before it in its text, read as a fresh
    text, and the perplexity of each text and of all: the number training reports."""
    result = await infer(state, service.score, request, version)
    return json_answer(result, result.model, result.version)
