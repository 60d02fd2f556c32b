"""Errors as HTTP answers: one table from error type to status, and RFC 9457 problem JSON.

Handlers look a raised exception up along its class hierarchy (as Starlette does), so one
row covers a whole family: every :class:`models.errors.ConfigError` is a 422, every
:class:`~app.errors.NotFoundError` a 404. The OpenAPI ``responses`` of each route come from
the same table through :func:`responses_for`, and the ASGI middleware builds its answers
with :func:`problem_body`, so the docs and every answer agree with this one table.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import (
    ConflictError,
    HeadersTooLargeError,
    InsufficientStorageError,
    InvalidInputError,
    LimitExceededError,
    MalformedRequestError,
    NotFoundError,
    NotReadyError,
    OverloadedError,
    RequestTimeoutError,
    ServiceError,
    StorageNotWritableError,
    TooManyConnectionsError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    UrlTooLongError,
    storage_error,
)
from models.errors import ConfigError, UnknownIdError, UnknownTokenError

logger = logging.getLogger("seqlab")
PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ErrorKind:
    status: int
    title: str
    slug: str


# The one table. Order does not matter: lookup walks each exception's MRO.
ERROR_TABLE: dict[type[Exception], ErrorKind] = {
    UnauthorizedError: ErrorKind(401, "Unauthorized", "unauthorized"),
    NotFoundError: ErrorKind(404, "Not found", "not-found"),
    ConflictError: ErrorKind(409, "Conflict", "conflict"),
    LimitExceededError: ErrorKind(413, "Over a limit", "limit-exceeded"),
    UnsupportedMediaTypeError: ErrorKind(415, "Unsupported media type", "unsupported-media-type"),
    InvalidInputError: ErrorKind(422, "Invalid input", "invalid-input"),
    RequestValidationError: ErrorKind(422, "Invalid request", "validation"),
    ConfigError: ErrorKind(422, "Invalid settings", "invalid-settings"),
    UnknownTokenError: ErrorKind(422, "Unknown token", "unknown-token"),
    UnknownIdError: ErrorKind(422, "Unknown id", "unknown-id"),
    RequestTimeoutError: ErrorKind(408, "Request timeout", "request-timeout"),
    MalformedRequestError: ErrorKind(400, "Bad request", "malformed-request"),
    UrlTooLongError: ErrorKind(414, "URI too long", "url-too-long"),
    HeadersTooLargeError: ErrorKind(431, "Request header fields too large", "headers-too-large"),
    TooManyConnectionsError: ErrorKind(503, "Too many connections", "too-many-connections"),
    OverloadedError: ErrorKind(429, "Too many requests", "overloaded"),
    NotReadyError: ErrorKind(503, "Not ready", "not-ready"),
    StorageNotWritableError: ErrorKind(503, "Storage not writable", "storage-not-writable"),
    InsufficientStorageError: ErrorKind(507, "Insufficient storage", "insufficient-storage"),
}
INTERNAL = ErrorKind(500, "Internal server error", "internal")
_LOCATIONS = ("body", "query", "path", "header")


class FieldProblem(BaseModel):
    field: str = Field(description="Where: e.g. 'body.texts.0' or 'body.h0'.")
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=["urn:seqlab:problem:not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["model 'lesson' does not exist"])
    instance: str | None = Field(None, examples=["/embed"])
    errors: list[FieldProblem] | None = None
    limit: str | None = Field(None, description="The limit a 413 is about.")
    maximum: int | None = None
    value: int | None = None
    reason: str | None = Field(
        None,
        description="What is wrong with a model archive (POST /models/import), in one word: "
        "not-an-archive, foreign, unsafe-member, truncated, missing-member, damaged, "
        "checksum-mismatch, format-version, invalid-model.",
    )


class CarriedError(StarletteHTTPException):
    """A domain error carried through code that lets only HTTP exceptions pass unchanged.

    FastAPI turns any other exception raised while it reads a body into a 400;
    ``app.middleware.ServiceMiddleware`` raises this from ``receive`` so that the answer is still
    the table's.
    """

    def __init__(self, error: ServiceError) -> None:
        super().__init__(kind_of(type(error)).status, error.detail)
        self.error = error


def kind_of(error_type: type[BaseException]) -> ErrorKind:
    """The table's row for an exception type (its nearest listed ancestor), else 500."""
    for cls in error_type.__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return INTERNAL


def describe(error: Exception) -> tuple[ErrorKind, str, dict[str, Any]]:
    """The kind, the detail and the extra members of the problem answering ``error``."""
    kind = kind_of(type(error))
    if isinstance(error, ServiceError):
        return kind, error.detail, dict(error.extra)
    detail = str(error)
    extra: dict[str, Any] = {}
    field = getattr(error, "field", None)
    if field is not None:
        if not field.startswith(_LOCATIONS):
            field = f"body.{field}"
        extra["errors"] = [{"field": field, "message": detail, "type": kind.slug}]
    return kind, detail, extra


def problem_body(kind: ErrorKind, detail: str, instance: str | None, **extra: Any) -> dict:
    """The JSON members of a problem answer (``None`` members left out)."""
    body: dict[str, Any] = {
        "type": f"urn:seqlab:problem:{kind.slug}",
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


def problem_response(
    kind: ErrorKind,
    detail: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem_body(kind, detail, instance, **extra),
        status_code=kind.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


# What a route that writes under the data dir may answer besides: full (507), read-only (503)
# (and 429 when the uploads' queue is full).
WRITE_ERRORS = (InsufficientStorageError, StorageNotWritableError, OverloadedError)


def responses_for(*error_types: type[Exception]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the errors a route can answer with (422 always included).

    The 401 is not listed here: :func:`app.deps.publish_security` adds it to exactly the
    routes that the running settings protect.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for error_type in (RequestValidationError, *error_types):
        kind = kind_of(error_type)
        if kind is INTERNAL:
            raise TypeError(f"{error_type.__name__} is not in the error table")
        entry = responses.setdefault(
            kind.status,
            {"model": Problem, "description": kind.title, "content": {PROBLEM_MEDIA_TYPE: {}}},
        )
        if kind.title not in entry["description"]:
            entry["description"] += f"; {kind.title}"
    return responses


def problem_media_type_only(response: dict[str, Any]) -> None:
    """In an OpenAPI response of :func:`responses_for`, give the Problem schema to
    ``application/problem+json`` (what the service sends) and drop the ``application/json`` that
    FastAPI adds for a response ``model``: a client generator types a problem answer from the
    first media type it finds."""
    content = response.get("content", {})
    if PROBLEM_MEDIA_TYPE in content and "application/json" in content:
        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")


def _validation_problems(error: RequestValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(part) for part in item.get("loc", ())),
            "message": item.get("msg", ""),
            "type": item["type"],
        }
        for item in error.errors()
    ]


async def _handle_validation(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = _validation_problems(error)
    if any(p["type"] == "json_invalid" for p in problems):
        detail = "the body is not valid JSON: " + problems[0]["message"]
    else:
        first = problems[0] if problems else {"field": "body", "message": "invalid"}
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        detail = f"{first['field']}: {first['message']}{more}"
    return problem_response(ERROR_TABLE[RequestValidationError], detail, request, errors=problems)


async def _handle_known(request: Request, error: Exception) -> JSONResponse:
    kind, detail, extra = describe(error)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, UnauthorizedError) else None
    if isinstance(error, OverloadedError):
        headers = {"Retry-After": str(error.retry_after)}
    return problem_response(kind, detail, request, headers, **extra)


async def _handle_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (no route, wrong method, body too large) as problems too."""
    if isinstance(error, CarriedError):
        return await _handle_known(request, error.error)
    kind = next(
        (kind for kind in ERROR_TABLE.values() if kind.status == error.status_code),
        ErrorKind(error.status_code, _http_title(error.status_code), f"http-{error.status_code}"),
    )
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    if error.status_code == 400 and detail == "There was an error parsing the body":
        # FastAPI's answer to a body json.loads cannot take (not UTF-8, nested too deep):
        # the same 422 as any other malformed JSON.
        return problem_response(
            ERROR_TABLE[RequestValidationError],
            "the body is not valid JSON (not UTF-8, or nested too deeply)",
            request,
            errors=[{"field": "body", "message": "not parseable as JSON", "type": "json_invalid"}],
        )
    headers = dict(error.headers or {})
    if error.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    if error.status_code == 405:
        # Starlette names only the first matching route's methods; a path served by
        # several routes (GET and POST /models) allows them all.
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}"
    return problem_response(kind, detail, request, headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the spec documents for the request's path: a documented concrete path's own
    (OpenAPI matches a concrete path before the templates: ``/models/import`` is not
    ``/models/{name}``), else those of every path template that matches."""
    paths = request.app.openapi()["paths"]
    if request.url.path in paths:
        return sorted(method.upper() for method in paths[request.url.path])
    methods: set[str] = set()
    for template, operations in paths.items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


async def _handle_storage(request: Request, error: Exception) -> JSONResponse:
    """A failed write: a full or read-only data dir is said as such (507, 503), not a 500."""
    storage = storage_error(error)
    if storage is None:
        return await _handle_unexpected(request, error)
    logger.error("%s %s: %s", request.method, request.url.path, storage.detail)
    kind, detail, extra = describe(storage)
    return problem_response(kind, detail, request, **extra)


async def _handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(INTERNAL, "the server failed to answer this request", request)


def _http_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _handle_validation)  # type: ignore[arg-type]
    for error_type in ERROR_TABLE:
        if error_type is not RequestValidationError:
            app.add_exception_handler(error_type, _handle_known)
    app.add_exception_handler(StarletteHTTPException, _handle_http)  # type: ignore[arg-type]
    # Handled here, not by the catch-all below, which Starlette re-raises after answering.
    app.add_exception_handler(OSError, _handle_storage)
    app.add_exception_handler(sqlite3.Error, _handle_storage)
    app.add_exception_handler(Exception, _handle_unexpected)
