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
        description="Per class of work: slots running at once, requests that may wait, and the "
        "deadline after which a waiting request is refused (429)."
    )
    models_loaded: list[str]
    auth: dict[str, bool]
