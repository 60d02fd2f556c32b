import os
import platform
from importlib.metadata import version

import anyio
import torch
from fastapi import APIRouter, Request, Response

from app import __version__
from app.database import redacted
from app.deps import LoadingReadState
from app.errors import NotReadyError
from app.metrics import CONTENT_TYPE
from app.problems import responses_for
from app.schemas.ops import Health, Info, LoadedVersion, ModelMemory, Readiness

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> Health:
    """The process is alive (it may still be loading: see /ready)."""
    return Health(status="ok")


@router.get("/ready", responses=responses_for(NotReadyError))
async def ready(request: Request, response: Response) -> Readiness:
    """200 once jieba and the registry are loaded and the data dir takes writes; 503 until
    then, or while it does not (full, read-only), with the reason in `error`."""
    state = request.app.state.service
    storage = await anyio.to_thread.run_sync(state.storage_problem) if state.ready else None
    ready = state.ready and storage is None
    if not ready:
        response.status_code = 503
    return Readiness(
        ready=ready,
        jieba=state.jieba_ready,
        registry=state.registry_ready,
        models=len(state.registry) if state.registry_ready else 0,
        models_loaded=len(state.registry.loaded_versions()),
        error=state.start_error or storage,
    )


@router.get("/info", responses=responses_for())
async def info(state: LoadingReadState) -> Info:
    """Versions of the service and its libraries, the device, the limits, the models loaded."""
    settings = state.settings
    loaded = state.registry.loaded_versions()
    return Info(
        service="seqlab",
        version=__version__,
        python=platform.python_version(),
        torch=torch.__version__,
        jieba=version("jieba"),
        fastapi=version("fastapi"),
        device=str(state.device),
        cuda_available=torch.cuda.is_available(),
        limits=settings.limits.model_dump(),
        admission={
            "small": state.small_requests.describe(),
            **{
                kind: state.admission(kind).describe()
                for kind in ("inference", "segmentation", "upload")
            },
        },
        connections=settings.connections.model_dump(),
        jobs={
            "max_running": settings.max_running_jobs,
            "max_interruptions": settings.job_max_interruptions,
            "may_run_jobs": settings.run_jobs,
            "runs_jobs": state.jobs.runs_jobs,
        },
        database={
            "engine": state.database.dialect,
            "url": redacted(state.database.url),
            "schema_revision": state.schema_revision,
            "notifications": state.listener.notifications if state.listener else None,
        },
        process={"pid": os.getpid(), "workers": settings.workers},
        batching={
            "enabled": settings.batch_max_tokens > 0,
            "wait_ms": settings.batch_wait_ms,
            "max_tokens": settings.batch_max_tokens,
        },
        segmentation={
            "processes": state.segmentation.processes,
            "ready": state.segmentation.ready,
            "chunks": state.segmentation.chunks,
            "restarts": state.segmentation.restarts,
            "fallbacks": state.segmentation.fallbacks,
        },
        models_loaded=sorted({label.rsplit("@", 1)[0] for label, _ in loaded}),
        model_memory=ModelMemory(
            device=str(state.device),
            budget_bytes=settings.model_memory,
            used_bytes=sum(size for _, size in loaded),
            preload_models=settings.preload_models,
            loaded=[LoadedVersion(label=label, bytes=size) for label, size in loaded],
        ),
        auth={
            "api_key_required_for_writes": settings.api_key is not None,
            "reads_protected": settings.protect_reads,
        },
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."},
        **responses_for(),
    },
)
async def metrics(state: LoadingReadState) -> Response:
    """Prometheus metrics: requests and latency per route, models loaded."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
