"""The application factory: ``uvicorn --factory app.main:create_app``."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from app import __version__, binary
from app.deps import publish_security
from app.errors import InsufficientStorageError, storage_error
from app.middleware import ServiceMiddleware
from app.problems import install_error_handlers
from app.routers import (
    archives,
    corpora,
    dataset,
    embed,
    generation,
    ops,
    registry,
    reject_unknown_query,
    rnn,
    tokenize,
    training,
)
from app.routers.docs import install_docs
from app.routers.playground import install_playground
from app.settings import Settings
from app.state import ServiceState
from models.errors import DeviceError

DESCRIPTION = """
Word-level text-sequence modeling, Chinese first: segment text with jieba, build vocabularies,
look up embeddings, run a recurrent layer and see its `output` and `hn`, and use next-word
language models. Every step of the classic RNN lesson is an endpoint whose answer shows the
shapes and values.

Errors are RFC 9457 problem JSON (`application/problem+json`). With `SEQLAB_API_KEY` set, routes
that change state need `Authorization: Bearer <key>`.
"""

TAGS = [
    {"name": "text", "description": "jieba segmentation."},
    {"name": "models", "description": "The model registry: vocabularies and networks, versioned."},
    {"name": "embeddings", "description": "Rows of a model's embedding matrix."},
    {
        "name": "recurrent layer",
        "description": "nn.RNN / LSTM / GRU forward passes, states visible.",
    },
    {"name": "dataset", "description": "The lesson's (x, y) windows and batches."},
    {"name": "language model", "description": "Next-word prediction and generation."},
    {"name": "training", "description": "Corpora and background training jobs."},
    {"name": "operations", "description": "Health, readiness, versions, limits, metrics."},
]


def configuration_problem(error: Exception, settings: Settings) -> str:
    """The one line a start that cannot go on prints."""
    if isinstance(error, DeviceError):
        return f"{error}; set SEQLAB_DEVICE=cpu (or auto, which falls back to the CPU)"
    root = settings.layout.root.resolve()
    storage = storage_error(error)
    if isinstance(storage, InsufficientStorageError):
        return f"the data directory {root} is on a full device ({error}); free some space"
    return (
        f"the data directory {root} cannot be written ({error}); make it writable by uid "
        f"{os.getuid()} (the container runs as uid 10001: chown -R 10001 a bind-mounted /data), "
        "or point SEQLAB_DATA_DIR elsewhere"
    )


# The routes that take a safetensors body (their tensor form's input, h0, c0).
BINARY_REQUEST_PATHS = ("/rnn/forward",)


def operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service. Nothing is loaded until the app starts (its lifespan)."""
    settings = settings or Settings()
    logging.getLogger("seqlab").setLevel(settings.log_level.upper())
    try:
        state = ServiceState(settings)
    except (DeviceError, OSError, sqlite3.Error) as error:
        # A configuration mistake: one line that says what and how to fix it, no traceback.
        raise SystemExit(f"seqlab: {configuration_problem(error, settings)}") from None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # jieba and the registry load in the background: /health answers at once and
        # /ready says 503 until they are loaded.
        state.start_in_background()
        yield
        state.close()

    app = FastAPI(
        title="seqlab",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # A query parameter no route reads (a typo, ?version= where none is taken) is a 422.
        dependencies=[Depends(reject_unknown_query)],
        # operationId = the handler's name (`tokenize`, `rnn_forward`): what a generated client
        # calls its functions, rather than FastAPI's `tokenize_tokenize_post`.
        generate_unique_id_function=operation_id,
    )
    app.state.service = state
    install_error_handlers(app)
    for router_module in (
        tokenize,
        registry,
        archives,
        embed,
        rnn,
        dataset,
        generation,
        training,
        corpora,
        ops,
    ):
        app.include_router(router_module.router)
    install_docs(app)
    install_playground(app)
    publish_security(app, settings)
    limits = settings.limits
    app.add_middleware(
        ServiceMiddleware,
        metrics=state.metrics,
        max_bytes=limits.max_body_bytes,
        # A corpus upload may be bigger; its multipart framing adds a little. A model archive
        # is bigger still, and goes to disk as it arrives.
        per_path={
            "/corpora": ("max_corpus_bytes", limits.max_corpus_bytes + 65_536),
            "/models/import": ("max_import_bytes", limits.max_import_bytes),
        },
        body_timeout=settings.body_timeout_seconds,
        # Binary bodies only where they are read: elsewhere a safetensors label buys nothing.
        per_path_and_media_type={
            (path, binary.MEDIA_TYPE): ("max_binary_body_bytes", limits.max_binary_body_bytes)
            for path in BINARY_REQUEST_PATHS
        },
        binary_paths=BINARY_REQUEST_PATHS,
        max_elements=limits.max_tensor_elements,
    )
    return app
