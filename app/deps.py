"""Access to the service for a route: one dependency that checks everything a route needs.

Each route takes exactly one of the ``…State`` dependencies below. It checks, in this order,
the API key (writes always when one is set, reads when ``protect_reads``), the media type of
a JSON body, and readiness, then hands the route the :class:`ServiceState`. One dependency
rather than a graph of small ones: FastAPI resolves every node on every request, and on the
small inference routes the graph cost more than the work (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from app.errors import NotReadyError, UnauthorizedError, UnsupportedMediaTypeError
from app.problems import problem_media_type_only, responses_for
from app.settings import Settings
from app.state import ServiceState

BEARER_SCHEME = "HTTPBearer"
# A read-only POST (inference) is marked so in the OpenAPI spec; every other write needs the key.
READ_ONLY = {"x-seqlab-read-only": True}
WRITE_METHODS = ("post", "put", "patch", "delete")
ALWAYS_OPEN = ("/health", "/ready")
_BODY_METHODS = ("POST", "PUT", "PATCH")


def _check_key(state: ServiceState, request: Request) -> None:
    key = state.settings.api_key
    if key is None:
        return
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise UnauthorizedError("this route needs 'Authorization: Bearer <key>'")
    # Constant-time comparison, so the key cannot be guessed byte by byte from timings.
    if not hmac.compare_digest(credentials.strip().encode(), key.get_secret_value().encode()):
        raise UnauthorizedError("the API key is not valid")


def _check_json(request: Request) -> None:
    """415 for a body that is not JSON (FastAPI would otherwise try to validate raw bytes)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"the body must be application/json, not {media_type or 'missing'}",
            errors=[
                {
                    "field": "header.content-type",
                    "message": "expected application/json",
                    "type": "media_type",
                }
            ],
        )


def _access(*, write: bool, json_body: bool, ready: bool = True) -> Any:
    async def dependency(request: Request) -> ServiceState:
        state: ServiceState = request.app.state.service
        if write or state.settings.protect_reads:
            _check_key(state, request)
        if json_body and request.method in _BODY_METHODS:
            _check_json(request)
        if ready and not state.ready:
            raise NotReadyError("jieba or the model registry is still loading; see /ready")
        return state

    return Depends(dependency)


# `async def` on purpose: a plain `def` dependency would run in the threadpool.
ReadState = Annotated[ServiceState, _access(write=False, json_body=False)]
InferenceState = Annotated[ServiceState, _access(write=False, json_body=True)]
WriteState = Annotated[ServiceState, _access(write=True, json_body=False)]
JsonWriteState = Annotated[ServiceState, _access(write=True, json_body=True)]
LoadingReadState = Annotated[ServiceState, _access(write=False, json_body=False, ready=False)]


def needs_key(path: str, method: str, operation: dict, settings: Settings) -> bool:
    """Whether an operation of the OpenAPI spec requires the API key under these settings."""
    if settings.api_key is None or path in ALWAYS_OPEN:
        return False
    writes = method in WRITE_METHODS and not operation.get("x-seqlab-read-only")
    return writes or settings.protect_reads


def publish_security(app: FastAPI, settings: Settings) -> None:
    """Make the spec say what the running settings enforce: bearer security and its 401; and
    type every problem answer under the media type it is sent as (``problem_media_type_only``)."""
    generate = app.openapi
    unauthorized = responses_for(UnauthorizedError)[401]

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            for path, operations in schema["paths"].items():
                for method, operation in operations.items():
                    responses = operation.setdefault("responses", {})
                    for response in responses.values():
                        problem_media_type_only(response)
                    if needs_key(path, method, operation, settings):
                        operation["security"] = [{BEARER_SCHEME: []}]
                        responses.setdefault("401", _openapi_response(schema, unauthorized))
                    else:
                        responses.pop("401", None)
            if settings.api_key is not None:
                schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
                schemes[BEARER_SCHEME] = {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The key set in SEQLAB_API_KEY.",
                }
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _openapi_response(schema: dict, entry: dict) -> dict:
    problem = {"$ref": "#/components/schemas/Problem"}
    return {
        "description": entry["description"],
        "content": {"application/problem+json": {"schema": problem}},
    }
