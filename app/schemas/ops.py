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
    models_loaded: int
    error: str | None = None


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
    jobs: dict[str, int] = Field(
        description="Training jobs: how many run at once, and how many unclean interruptions "
        "a job may resume from before it fails."
    )
    models_loaded: list[str]
    auth: dict[str, bool]
