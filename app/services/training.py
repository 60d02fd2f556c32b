"""``/train`` and ``/corpora``: submitting jobs and describing them."""

from __future__ import annotations

from app.corpora import Corpus
from app.errors import ConflictError
from app.jobs.files import discard
from app.jobs.prepare import prepare_job, read_lines
from app.jobs.store import JobRecord
from app.limits import check_limit
from app.schemas.training import (
    CorpusInfo,
    JobInfo,
    JobMetrics,
    JobProgress,
    TrainRequest,
)
from app.state import ServiceState


def submit(request: TrainRequest, state: ServiceState) -> JobRecord:
    """Check and prepare the data (422/404/409 at once), then queue the job."""
    limits = state.settings.limits
    if request.texts is not None:
        check_limit(limits, "max_training_chars", sum(len(text) for text in request.texts))
        lines = [text for text in request.texts if text.strip()]
    else:
        lines = read_lines(state.corpora.read_text(request.corpus_id or ""))
    if request.create is not None and state.jobs.creating(request.model):
        raise ConflictError(f"another job is already creating model {request.model!r}")
    job_id = state.jobs.new_job_id()
    job_dir = state.jobs.job_dir(job_id)
    try:
        prepared = prepare_job(
            job_id, request, lines, state.registry, state.tokenizers, limits, job_dir
        )
    except BaseException:
        discard(job_dir)
        raise
    return state.jobs.submit(job_id, prepared)


def job_info(record: JobRecord) -> JobInfo:
    return JobInfo(
        job_id=record.id,
        status=record.status,  # type: ignore[arg-type]
        model=record.model,
        create=record.create_model,
        version=record.version,
        base_version=record.base_version,
        progress=JobProgress(**record.progress),
        metrics=JobMetrics(**record.metrics),
        data=record.data,
        settings=record.settings,
        error=record.error,
        worker_pid=record.worker_pid,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        links={
            "self": f"/train/{record.id}",
            "events": f"/train/{record.id}/events",
            "model": f"/models/{record.model}",
        },
    )


def corpus_info(corpus: Corpus) -> CorpusInfo:
    return CorpusInfo(
        corpus_id=corpus.id,
        filename=corpus.filename,
        bytes=corpus.bytes,
        lines=corpus.lines,
        chars=corpus.chars,
        created_at=corpus.created_at,
    )
