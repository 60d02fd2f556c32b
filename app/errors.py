"""One table from error type to HTTP status, and RFC 9457 problem answers for every error.

Handlers look a raised exception up along its class hierarchy (as Starlette does), so one
row covers a whole family: every :class:`models.errors.ConfigError` is a 422, every
:class:`NotFoundError` a 404. The OpenAPI ``responses`` of each route come from the same
table through :func:`responses_for`, so the docs never drift from the code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import ConfigError, UnknownIdError, UnknownTokenError

logger = logging.getLogger("seqlab")
PROBLEM_MEDIA_TYPE = "application/problem+json"


class ServiceError(Exception):
    """Base of the service's own errors; ``extra`` goes into the problem body."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class UnauthorizedError(ServiceError):
    """Missing or wrong API key."""


class NotFoundError(ServiceError):
    """Unknown model, version or other resource."""


class ConflictError(ServiceError):
    """A name is taken, or the resource is busy."""


class LimitExceededError(ServiceError):
    """A request over one of the configured limits."""

    def __init__(self, limit: str, value: int, maximum: int, what: str) -> None:
        super().__init__(
            f"{what}: {value} is over the limit {limit} = {maximum}",
            limit=limit,
            value=value,
            maximum=maximum,
        )


class UnsupportedMediaTypeError(ServiceError):
    """The body is not of a media type the route reads."""


class InvalidInputError(ServiceError):
    """Input that is well-formed but cannot be used (shapes that don't fit, empty texts…)."""

    def __init__(self, detail: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        if field is not None:
            self.extra["errors"] = [{"field": field, "message": detail, "type": "invalid"}]


class OverloadedError(ServiceError):
    """Too many requests of a kind in flight."""


class NotReadyError(ServiceError):
    """The service is still loading jieba or the registry."""


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
    OverloadedError: ErrorKind(429, "Overloaded", "overloaded"),
    NotReadyError: ErrorKind(503, "Not ready", "not-ready"),
}
INTERNAL = ErrorKind(500, "Internal server error", "internal")


@contextmanager
def located(prefix: str) -> Iterator[None]:
    """Name where in the request a modeling-core error comes from.

    ``models/`` knows a field by its own name ("specials"); the request nests it
    ("body.vocab.specials"). Errors raised inside the block get the prefix.
    """
    try:
        yield
    except (ConfigError, UnknownTokenError, UnknownIdError) as error:
        field = getattr(error, "field", None)
        error.field = f"{prefix}.{field}" if field else prefix  # type: ignore[union-attr]
        raise


_LOCATIONS = ("body", "query", "path", "header")


def kind_of(error_type: type[BaseException]) -> ErrorKind | None:
    for cls in error_type.__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return None


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


def problem_response(
    kind: ErrorKind,
    detail: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:seqlab:problem:{kind.slug}",
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update({key: value for key, value in extra.items() if value is not None})
    return JSONResponse(
        body, status_code=kind.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def responses_for(*error_types: type[Exception]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the errors a route can answer with (422 always included)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error_type in (RequestValidationError, *error_types):
        kind = kind_of(error_type)
        if kind is None:
            raise TypeError(f"{error_type.__name__} is not in the error table")
        entry = responses.setdefault(
            kind.status,
            {"model": Problem, "description": kind.title, "content": {PROBLEM_MEDIA_TYPE: {}}},
        )
        if kind.title not in entry["description"]:
            entry["description"] += f"; {kind.title}"
    return responses


def _field_of(location: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in location)


def _validation_problems(error: RequestValidationError) -> list[dict[str, str]]:
    problems = []
    for item in error.errors():
        location = list(item.get("loc", ()))
        # Tagged unions add the tag to the location; keep the path a user wrote.
        problems.append(
            {"field": _field_of(location), "message": item.get("msg", ""), "type": item["type"]}
        )
    return problems


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
    kind = kind_of(type(error)) or INTERNAL
    extra: dict[str, Any] = {}
    headers = None
    if isinstance(error, ServiceError):
        detail, extra = error.detail, dict(error.extra)
    else:
        detail = str(error)
        field = getattr(error, "field", None)
        if field is not None:
            if not field.startswith(_LOCATIONS):
                field = f"body.{field}"
            extra["errors"] = [{"field": field, "message": detail, "type": kind.slug}]
    if isinstance(error, UnauthorizedError):
        headers = {"WWW-Authenticate": "Bearer"}
    return problem_response(kind, detail, request, headers, **extra)


async def _handle_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (no route, wrong method, body too large) as problems too."""
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
    extra = getattr(error, "extra", None) or {}
    return problem_response(kind, detail, request, headers or None, **extra)


def _allowed_methods(request: Request) -> list[str]:
    """The methods of every documented path template that matches the request's path."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


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
    app.add_exception_handler(Exception, _handle_unexpected)
