"""The service's domain errors: what went wrong, in words a user can act on, no HTTP.

The registry, corpora, jobs and services raise these; :mod:`app.problems` maps each class
(and its subclasses) to an HTTP status and a problem answer. Nothing here imports a web
framework, so the stores stay usable from the CLI and from plain Python.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from models.errors import ConfigError, UnknownIdError, UnknownTokenError


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


class NotReadyError(ServiceError):
    """The service is still loading jieba or the registry."""


class RequestTimeoutError(ServiceError):
    """The client stopped sending its headers or its body: the request is cut."""


class MalformedRequestError(ServiceError):
    """The bytes are not an HTTP/1.1 request the parser accepts (bad framing)."""


class UrlTooLongError(ServiceError):
    """The request line's URL is over the connection limit."""


class HeadersTooLargeError(ServiceError):
    """The request's headers are over the connection limits (bytes or fields)."""


class TooManyConnectionsError(ServiceError):
    """The service holds as many connections as it may: this one is closed at once."""


class OverloadedError(ServiceError):
    """Too much work queued: refused at once, to be retried after ``retry_after`` seconds."""

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class InsufficientStorageError(ServiceError):
    """The data directory's device is full (or over its quota): nothing was written."""


class StorageNotWritableError(ServiceError):
    """The data directory cannot be written (read-only, or not ours): nothing was written."""


_FULL = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def storage_error(error: BaseException) -> ServiceError | None:
    """The domain error a failed write under the data directory means, or None: a full device
    (507) or a directory that cannot be written (503), naming the path."""
    if isinstance(error, sqlite3.OperationalError):  # SQLite says it in words
        message = str(error).lower()
        if "disk is full" in message:
            error = OSError(errno.ENOSPC, "the database's disk is full")
        elif "readonly" in message or "read-only" in message:
            error = OSError(errno.EROFS, "the database is read-only")
        else:
            return None
    if not isinstance(error, OSError) or error.errno not in _FULL | _NOT_WRITABLE:
        return None
    path = error.filename or "the data directory"
    if error.errno in _FULL:
        return InsufficientStorageError(
            f"no space left on the device of {path} ({error.strerror}): nothing was written; "
            "free some space (old model versions, corpora) and try again",
            path=str(path),
        )
    return StorageNotWritableError(
        f"{path} cannot be written ({error.strerror}): nothing was written; the data directory "
        "must be writable by the service's user",
        path=str(path),
    )


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
