"""Schemas of the operational routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    jieba: bool
    registry: bool
    models: int = Field(description="Models in the registry.")
    models_loaded: int = Field(
        description="Model versions loaded on the device: the others load on first use."
    )
    error: str | None = None


class LoadedVersion(BaseModel):
    label: str = Field(examples=["lesson-rnn@1"])
    bytes: int = Field(description="Its weights on the device.")


class ModelMemory(BaseModel):
    """What the registry keeps loaded (versions load on first use; past the budget the least
    recently used are unloaded)."""

    device: str
    budget_bytes: int = Field(description="SEQLAB_MODEL_MEMORY; 0: no bound.")
    used_bytes: int
    preload_models: int = Field(description="The most used models loaded at start-up.")
    loaded: list[LoadedVersion] = Field(description="Least recently used first.")


class Info(BaseModel):
    service: str
    version: str
    python: str
    torch: str
    jieba: str
    fastapi: str
    device: str
    cuda_available: bool
    limits: dict[str, Any]
    admission: dict[str, dict[str, float | int]] = Field(
        description="Per class of threaded work (inference, segmentation, upload): slots running "
        "at once, requests that may wait, and the deadline after which a waiting request is "
        "refused (429); for small requests on the event loop, how many may be in flight."
    )
    connections: dict[str, float | int] = Field(
        description="What one connection may send before its request reaches the app, and how "
        "many may be open (applied by `seqlab serve`: 431, 414, 408, 503 past them)."
    )
    jobs: dict[str, int | bool] = Field(
        description="Training jobs: how many run at once, how many unclean interruptions a job "
        "may resume from before it fails, whether this process may run them (`may_run_jobs`, "
        "SEQLAB_RUN_JOBS) and whether it does now (`runs_jobs`: of several that may, one does; "
        "the others record jobs for it)."
    )
    database: dict[str, str | int | None] = Field(
        description="Where the registry, jobs and corpora are recorded: `engine` (sqlite or "
        "postgresql), `url` (no password), `schema_revision` (Alembic), and with PostgreSQL the "
        "`notifications` of other replicas' changes received so far."
    )
    process: dict[str, int] = Field(
        description="This process (of `workers` that `seqlab serve` started on this port)."
    )
    batching: dict[str, bool | float | int] = Field(
        description="Dynamic batching of /embed, /predict, /score and text-form /rnn/forward: "
        "whether it is on, how long a batch's first request waits for others (ms), and the token "
        "positions one pass may hold."
    )
    segmentation: dict[str, bool | int] = Field(
        description="The worker processes that segment large requests on every core: how many "
        "(0: none, segmented in threads), whether they are ready, chunks they segmented, "
        "restarts after a worker died, requests segmented here because the pool broke."
    )
    models_loaded: list[str] = Field(description="Models with a version loaded on the device.")
    model_memory: ModelMemory
    auth: dict[str, bool]
