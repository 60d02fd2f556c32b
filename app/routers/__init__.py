"""One router per area; each handler resolves its access, calls one service, shapes the answer."""

from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Query, Request, Response
from pydantic import BaseModel

from app import binary
from app.batching import BatchedOperation, alone
from app.errors import (
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    OverloadedError,
    UnsupportedMediaTypeError,
)
from app.inline import runs_inline
from app.problems import responses_for
from app.registry import LoadedModel, ModelRegistry
from app.schemas.common import BinaryTensors
from app.settings import Limits
from app.state import ServiceState

RequestT = TypeVar("RequestT", bound=BaseModel)
AnswerT = TypeVar("AnswerT")

# What an inference route (a JSON body naming a model) can answer besides its 200. The 401
# is added by app.deps.publish_security where the settings protect the route.
INFERENCE_ERRORS = responses_for(
    NotFoundError, LimitExceededError, UnsupportedMediaTypeError, OverloadedError
)


# ``?version=N`` on a route whose body names a model: the same as ``"version": N`` in the body.
QueryVersion = Annotated[
    int | None,
    Query(ge=1, description="Pin a version, as `version` in the body does (they must agree)."),
]


def pin_version(request: RequestT, version: int | None) -> RequestT:
    """``request`` with the query's ``version``; a different one in the body is a 422."""
    if version is None:
        return request
    if getattr(request, "model", None) is None:
        raise InvalidInputError("'version' needs 'model'", field="query.version")
    body_version = getattr(request, "version", None)
    if body_version is not None and body_version != version:
        raise InvalidInputError(
            f"version {version} in the query and {body_version} in the body disagree",
            field="query.version",
        )
    return request.model_copy(update={"version": version})


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not read is a 422, never silently ignored.

    ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency in its thread
    pool, and that hop (for every request: it is the app's own dependency) took a quarter of a
    small request's time (py-spy, docs/benchmarks.md)."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not getattr(route, "include_in_schema", True):
        return  # pages (/, /docs) are not API operations: a tracking parameter must not break them
    known = _query_names(dependant)
    for name in request.query_params:
        if len(request.query_params.getlist(name)) > 1:
            raise InvalidInputError(
                f"query parameter {name!r} is given more than once", field=f"query.{name}"
            )
        if name not in known:
            accepted = ", ".join(sorted(known)) or "none"
            raise InvalidInputError(
                f"unknown query parameter {name!r} (this route accepts: {accepted})",
                field=f"query.{name}",
            )


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route reads, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def infer(
    state: ServiceState,
    operation: Callable[[RequestT, ModelRegistry, Limits], AnswerT],
    request: RequestT,
    version: int | None = None,
) -> AnswerT:
    """Run an inference service on ``request`` (with the query's ``version``): on the event
    loop when it is small and its model is in memory (a load from disk runs in a thread)."""
    request = pin_version(request, version)
    small = answered_inline(state, request)
    return await state.run(operation, request, state.registry, state.settings.limits, small=small)


def answered_inline(state: ServiceState, request: BaseModel) -> bool:
    """Whether a request's work is small (app.inline) and its model, if it names one, is in
    memory: a load from disk is never done on the event loop."""
    return runs_inline(request) and state.registry.is_loaded(
        getattr(request, "model", None), getattr(request, "version", None)
    )


class Prepared(Protocol):
    """A request ready to join a batch (app.batching): its model version and its shape."""

    @property
    def loaded(self) -> LoadedModel: ...

    @property
    def rows(self) -> int: ...

    @property
    def longest(self) -> int: ...


PreparedT = TypeVar("PreparedT", bound=Prepared)


async def batched(
    state: ServiceState,
    operation: BatchedOperation,
    prepare: Callable[[RequestT, ModelRegistry, Limits], PreparedT],
    request: RequestT,
    version: int | None = None,
) -> Any:
    """Prepare ``request`` (checks, segmentation: its own errors are its own), then compute
    its answer in one forward pass with the concurrent requests for the same model version
    (app.batching); alone when batching is off."""
    request = pin_version(request, version)
    small = answered_inline(state, request)
    limits = state.settings.limits
    prepared = await state.run(prepare, request, state.registry, limits, small=small)
    if state.batcher is None:
        return await state.run(alone, operation.compute, prepared, small=small)
    # The version object itself is the key: a model deleted and made anew never shares a batch
    # (the queue holds the object, so its id is not reused while the queue lives).
    return await state.batcher.submit(
        operation,
        id(prepared.loaded),
        prepared,
        rows=prepared.rows,
        longest=prepared.longest,
        small=small,
    )


def name_model(response: Response, name: str, version: int) -> None:
    """Every answer that used a model says which: the ``Seqlab-Model: name@version`` header."""
    response.headers["Seqlab-Model"] = f"{name}@{version}"


# The fields of an answer that go out as tensors in the binary form.
TENSOR_FIELDS = ("output", "hn", "cn", "states", "weights", "vectors")
# How the spec shows a safetensors body (an answer of the tensor routes, a request of
# /rnn/forward's tensor form).
BINARY_MEDIA = {binary.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}


def binary_answer(result: BinaryTensors, model: str | None, version: int | None) -> Response:
    """The answer as safetensors: its tensors, and its other fields as JSON metadata."""
    metadata = result.model_dump(mode="json", exclude_none=True, exclude=set(TENSOR_FIELDS))
    response = Response(binary.encode(result.tensors, metadata), media_type=binary.MEDIA_TYPE)
    if model is not None and version is not None:
        name_model(response, model, version)
    return response


def json_answer(result: BaseModel, model: str | None, version: int | None) -> Response:
    """Serialise a typed answer once, in Rust, without FastAPI validating it again.

    The routes declare their ``response_model`` for the docs; the service already built a
    validated model, so checking its (possibly large, tensor-valued) fields a second time
    would only cost time. ``None`` fields are left out, as ``response_model_exclude_none``.
    """
    response = Response(result.model_dump_json(exclude_none=True), media_type="application/json")
    if model is not None and version is not None:
        name_model(response, model, version)
    return response
