import asyncio
import json
import threading
from collections.abc import AsyncIterator

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from app.batching import BatchedOperation
from app.deps import READ_ONLY, InferenceState
from app.inline import INLINE_TOKENS
from app.problems import describe, problem_body
from app.routers import (
    INFERENCE_ERRORS,
    QueryVersion,
    batched,
    infer,
    json_answer,
    pin_version,
)
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
# Their texts are right-padded into one (texts, longest) pass.
PREDICT = BatchedOperation(
    "predict", service.compute_predict, padded=True, inline_limit=INLINE_TOKENS
)
SCORE = BatchedOperation("score", service.compute_score, padded=True, inline_limit=INLINE_TOKENS)


@router.post(
    "/predict", response_model=PredictResponse, responses=INFERENCE_ERRORS, openapi_extra=READ_ONLY
)
async def predict(
    request: PredictRequest, state: InferenceState, version: QueryVersion = None
) -> Response:
    """The k most probable next words after a text (or each of `texts`, as one batch)."""
    result = await batched(state, PREDICT, service.prepare_predict, request, version)
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
    # The stream and its header name one version, even if a newer one is published meanwhile
    # (looked up off the event loop: a pinned old version may have to be read from disk).
    loaded = await state.run(state.registry.get, request.model, request.version)
    request = request.model_copy(update={"version": loaded.version})
    stream = _TokenStream(state, request)
    first = await stream.start()
    return StreamingResponse(
        stream.events(first),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "Seqlab-Model": loaded.label,
        },
    )


class ClientGoneError(Exception):
    """The client of a stream went away: generation stops at its next token."""


class _TokenStream:
    """One streamed generation: the thread that generates puts each token, then the answer
    (or the error), on a queue that the response reads; a client that leaves stops it."""

    def __init__(self, state, request: GenerateRequest) -> None:
        self.state = state
        self.request = request
        self.queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.producer: asyncio.Task | None = None

    async def start(self) -> tuple[str, object]:
        """Start generating; the first event, or raise the error that came before it (then the
        answer is an ordinary problem response with its own status)."""
        self.producer = asyncio.create_task(self._produce())
        first = await self.queue.get()
        if first[0] == "raise":
            raise first[1]  # type: ignore[misc]
        return first

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        started = False

        def on_token(choice: int, token: str, token_id: int) -> None:
            nonlocal started
            if self.cancelled.is_set():
                raise ClientGoneError
            started = True
            item = {"choice": choice, "token": token, "id": token_id}
            loop.call_soon_threadsafe(self.queue.put_nowait, ("token", item))

        state = self.state
        try:
            result = await state.run(
                service.generate, self.request, state.registry, state.settings.limits, on_token
            )
            await self.queue.put(("done", result.model_dump(mode="json", exclude_none=True)))
        except ClientGoneError:
            return
        except Exception as error:  # every error is answered: as a status, or as an event
            if not started:
                await self.queue.put(("raise", error))
            else:
                kind, detail, extra = describe(error)
                await self.queue.put(("error", problem_body(kind, detail, "/generate", **extra)))

    async def events(self, first: tuple[str, object]) -> AsyncIterator[str]:
        """The events numbered from 0 (``id:``): tokens, then ``done`` or ``error``."""
        event, data = first
        number = 0
        try:
            while True:
                payload = json.dumps(data, ensure_ascii=False)
                yield f"id: {number}\nevent: {event}\ndata: {payload}\n\n"
                number += 1
                if event in ("done", "error"):
                    break
                event, data = await self.queue.get()
        finally:  # also when the client disconnects: the thread stops at its next token
            self.cancelled.set()
            if self.producer is not None:
                await self.producer


@router.post(
    "/score", response_model=ScoreResponse, responses=INFERENCE_ERRORS, openapi_extra=READ_ONLY
)
async def score(
    request: ScoreRequest, state: InferenceState, version: QueryVersion = None
) -> Response:
    """Each token's log-probability given the tokens before it in its text, read as a fresh
    text, and the perplexity of each text and of all: the number training reports."""
    result = await batched(state, SCORE, service.prepare_score, request, version)
    return json_answer(result, result.model, result.version)
