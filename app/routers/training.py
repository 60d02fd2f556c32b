import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import StreamingResponse

from app.deps import JsonWriteState, ReadState, WriteState
from app.errors import ConflictError, LimitExceededError, NotFoundError, UnsupportedMediaTypeError
from app.problems import WRITE_ERRORS, responses_for
from app.registry import NAME_PATTERN
from app.schemas.training import JobInfo, JobList, TrainRequest
from app.services import training as service

router = APIRouter(prefix="/train", tags=["training"])
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The job's id.")]
EVENT_POLL_SECONDS = 0.2
WAIT_POLL_SECONDS = 0.1
WAIT_LIMIT_SECONDS = 600.0  # `wait` holds a request at most this long


@router.post(
    "",
    status_code=202,
    responses={
        200: {"model": JobInfo, "description": "With `wait`: the finished job."},
        **responses_for(
            NotFoundError,
            ConflictError,
            LimitExceededError,
            UnsupportedMediaTypeError,
            *WRITE_ERRORS,
        ),
    },
)
async def train(request: TrainRequest, response: Response, state: JsonWriteState) -> JobInfo:
    """Train a next-word model in a background worker process; a new version on success."""
    record = await state.run(
        service.submit,
        request,
        state.jobs,
        state.registry,
        state.tokenizers,
        state.corpora,
        state.settings.limits,
        state.segmentation,
        kind="upload",
    )
    response.headers["Location"] = f"/train/{record.id}"
    if request.wait:
        # Poll rather than block a thread per waiting client; past the limit, the 202 as if
        # `wait` had not been asked (the job goes on; its `links` say where to follow it).
        deadline = asyncio.get_running_loop().time() + WAIT_LIMIT_SECONDS
        while not record.finished and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(WAIT_POLL_SECONDS)
            record = state.jobs.get(record.id)
        if record.finished:
            response.status_code = 200
    return service.job_info(record)


@router.get("", responses=responses_for())
async def list_jobs(
    state: ReadState,
    model: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    status: Literal["queued", "starting", "running", "succeeded", "failed", "cancelled"]
    | None = None,
) -> JobList:
    """Jobs, oldest first, filtered by model and status."""
    return JobList(jobs=[service.job_info(r) for r in state.jobs.list(model, status)])


@router.get(
    "/{job_id}",
    responses=responses_for(NotFoundError),
)
async def get_job(job_id: JobId, state: ReadState) -> JobInfo:
    """Status, progress (epoch, step, fraction, ETA), metrics and history, error."""
    return service.job_info(state.jobs.get(job_id))


@router.delete(
    "/{job_id}",
    responses=responses_for(NotFoundError, ConflictError),
)
async def cancel_job(job_id: JobId, state: WriteState) -> JobInfo:
    """Cancel a queued or running job (within a second); nothing is published."""
    record = await anyio.to_thread.run_sync(state.jobs.cancel, job_id)
    return service.job_info(record)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."},
        204: {"description": "Reconnected after `done`: nothing more will come."},
        **responses_for(NotFoundError),
    },
)
async def job_events(
    job_id: JobId,
    state: ReadState,
    last_event_id: Annotated[
        str | None,
        Header(description="Resume after this event (sent by a reconnecting EventSource)."),
    ] = None,
) -> Response:
    """Server-sent events: `state` at once, then `progress` and `epoch`, and `done` at the end.

    Every event has an `id:`; a client that reconnects with `Last-Event-ID` gets what it
    missed (the epochs since, the latest progress, `done`) and nothing twice; after `done` it
    gets a 204, which tells an EventSource to stop reconnecting.
    """
    record = state.jobs.get(job_id)  # 404 before the stream starts
    resume = _parse_event_id(last_event_id)
    if resume is not None:
        epochs = len(record.metrics.get("history", {}).get("epochs", []))
        if resume[2] and record.finished and resume[:2] == (epochs, record.revision):
            return Response(status_code=204)  # it saw this job's `done`
        if resume[2] or resume[0] > epochs or resume[1] > record.revision:
            resume = None  # an id from another job or another life: start afresh, with `state`
    return StreamingResponse(
        _event_stream(state, job_id, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _parse_event_id(value: str | None) -> tuple[int, int, bool] | None:
    """``(epochs sent, revision, done)`` from an id ``E-R`` or ``E-R-done``; None if not ours."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[:2]):
        return None
    if len(parts) == 3 and parts[2] != "done":
        return None
    return int(parts[0]), int(parts[1]), len(parts) == 3


def _sse(event: str, data: object, event_id: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _event_stream(
    state, job_id: str, resume: tuple[int, int, bool] | None
) -> AsyncIterator[str]:
    record = state.jobs.get(job_id)
    if resume is None:
        # A client that connects the first time gets the whole current state.
        revision = record.revision
        epochs_sent = len(record.metrics.get("history", {}).get("epochs", []))
        yield _sse(
            "state",
            service.job_info(record).model_dump(mode="json"),
            f"{epochs_sent}-{revision}",
        )
    else:
        epochs_sent, revision = resume[0], resume[1]
    # An id says what the client has: the epochs sent, and the revision whose progress it saw.
    # An epoch event keeps the revision of the progress before it, so a client that drops
    # between an epoch and the progress after it still gets that progress on reconnecting.
    while True:
        if record.revision != revision:
            epochs = record.metrics.get("history", {}).get("epochs", [])
            for epoch in epochs[epochs_sent:]:
                epochs_sent += 1
                yield _sse("epoch", epoch, f"{epochs_sent}-{revision}")
            revision = record.revision
            if not record.finished:
                progress = {"status": record.status, **record.progress}
                yield _sse("progress", progress, f"{epochs_sent}-{revision}")
        if record.finished:
            break
        await asyncio.sleep(EVENT_POLL_SECONDS)
        record = state.jobs.get(job_id)
    done = service.job_info(record).model_dump(mode="json")
    yield _sse("done", done, f"{epochs_sent}-{revision}-done")
