"""What the job tests share: a registry with one small model, managers over its data dir (on
both engines), jobs prepared as the service prepares them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from app.jobs.manager import JobManager
from app.jobs.protocol import PreparedJob
from app.jobs.store import JobRecord, JobStore
from app.layout import DataLayout
from app.registry import ModelRegistry
from app.schemas.registry import CreateModelRequest
from app.schemas.training import TrainRequest
from app.services.registry import create_model
from app.services.training import prepare_job
from app.settings import Limits
from app.tokenizers import TokenizerCache

TEXTS = ["我爱学习自然语言处理", "我爱机器学习", "我爱自然语言处理"] * 20
QUICK = {"seq_len": 4, "batch_size": 4, "epochs": 1, "lr": 0.01, "val_fraction": 0.1}
TINY_MODEL = {"embedding_dim": 8, "hidden_size": 8, "cell": "gru", "seed": 0}
BASE = "base"  # the model every fixture registry starts with, at version 1
JOB_TIMEOUT = 120.0
MakeManager = Callable[..., JobManager]


@pytest.fixture
def engine_url(database_url: str | None) -> str | None:
    """Every job test runs on SQLite and on PostgreSQL."""
    return database_url


@pytest.fixture
def tokenizers(jieba_cache_dir: Path) -> TokenizerCache:
    return TokenizerCache(jieba_cache_dir)


@pytest.fixture
def registry(layout: DataLayout, tokenizers: TokenizerCache) -> Iterator[ModelRegistry]:
    registry = ModelRegistry(layout, torch.device("cpu"), tokenizers)
    registry.load()
    request = CreateModelRequest.model_validate({"name": BASE, "texts": TEXTS[:3], **TINY_MODEL})
    create_model(request, registry, tokenizers, Limits())
    yield registry
    registry.close()


@pytest.fixture
def make_manager(layout: DataLayout, registry: ModelRegistry) -> Iterator[MakeManager]:
    """Loaded managers over the data dir's one job store; all closed at the end of the test."""
    managers: list[JobManager] = []

    def factory(max_running: int = 1) -> JobManager:
        manager = JobManager(
            layout.jobs,
            JobStore(layout.database),
            registry,
            device="cpu",
            max_running=max_running,
            threads=1,
        )
        manager.load()
        managers.append(manager)
        return manager

    yield factory
    for manager in managers:
        manager.close()
        manager.store.close()


def prepare(
    manager: JobManager,
    registry: ModelRegistry,
    tokenizers: TokenizerCache,
    model: str = BASE,
    **fields: Any,
) -> PreparedJob:
    """A job prepared into ``manager.job_dir``; keyword arguments are TrainRequest fields."""
    request = TrainRequest.model_validate({"model": model, "texts": TEXTS, **QUICK, **fields})
    job_id = manager.new_job_id()
    lines = list(request.texts or [])
    limits = Limits()
    return prepare_job(
        job_id, request, lines, registry, tokenizers, limits, manager.job_dir(job_id)
    )


def wait_until(
    manager: JobManager, job_id: str, predicate: Callable[[JobRecord], bool]
) -> JobRecord:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        record = manager.get(job_id)
        if predicate(record):
            return record
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached the expected state: {manager.get(job_id)}")
