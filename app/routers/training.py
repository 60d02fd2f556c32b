import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from app.deps import JsonWriteState, ReadState, WriteState
from app.errors import ConflictError, LimitExceededError, NotFoundError, UnsupportedMediaTypeError
from app.problems import responses_for
from app.registry import NAME_PATTERN
from app.schemas.training import JobInfo, JobList, TrainRequest
from app.services import training as service

router = APIRouter(prefix="/train", tags=["training"])
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The job's id.")]
EVENT_POLL_SECONDS = 0.2
WAIT_POLL_SECONDS = 0.1


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
    )
    response.headers["Location"] = f"/train/{record.id}"
    if request.wait:
        # Poll rather than block a thread per waiting client.
        while not record.finished:
            await asyncio.sleep(WAIT_POLL_SECONDS)
            record = state.jobs.get(record.id)
        response.status_code = 200
    return service.job_info(record)


@router.get("", responses=responses_for())
async def list_jobs(
    state: ReadState,
    model: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
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
        **responses_for(NotFoundError),
    },
)
async def job_events(job_id: JobId, state: ReadState) -> StreamingResponse:
    """Server-sent events: `state` at once, then `progress` and `epoch`, and `done` at the end."""
    state.jobs.get(job_id)  # 404 before the stream starts
    return StreamingResponse(
        _event_stream(state, job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _event_stream(state, job_id: str) -> AsyncIterator[str]:
    record = state.jobs.get(job_id)
    # A client that connects late first gets the whole current state.
    yield _sse("state", service.job_info(record).model_dump(mode="json"))
    revision = record.revision
    epochs_sent = len(record.metrics.get("history", {}).get("epochs", []))
    while not record.finished:
        await asyncio.sleep(EVENT_POLL_SECONDS)
        record = state.jobs.get(job_id)
        if record.revision == revision:
            continue
        revision = record.revision
        epochs = record.metrics.get("history", {}).get("epochs", [])
        for epoch in epochs[epochs_sent:]:
            yield _sse("epoch", epoch)
        epochs_sent = len(epochs)
        if not record.finished:
            yield _sse("progress", {"status": record.status, **record.progress})
    yield _sse("done", service.job_info(record).model_dump(mode="json"))
