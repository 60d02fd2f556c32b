"""Enforcing the configured limits: request bodies at the ASGI level, sizes in services."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import LimitExceededError
from app.settings import Limits

_WHAT = {name: field.description or name for name, field in Limits.model_fields.items()}


def check_limit(limits: Limits, name: str, value: int) -> None:
    """Raise a 413 naming ``name`` when ``value`` is over it."""
    maximum = getattr(limits, name)
    if value > maximum:
        raise LimitExceededError(name, value, maximum, _WHAT[name].rstrip("."))


def check_texts(limits: Limits, texts: list[str]) -> None:
    check_limit(limits, "max_texts", len(texts))
    for text in texts:
        check_limit(limits, "max_text_chars", len(text))


class BodySizeLimitMiddleware:
    """Answer 413 to bodies over ``max_bytes``, by Content-Length or while streaming.

    uvicorn has no body limit of its own, so without this a client could make the service
    buffer any amount of memory.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, per_path: dict[str, tuple[str, int]] | None = None
    ) -> None:
        self.app = app
        self.default = ("max_body_bytes", max_bytes)
        # Routes that take bigger bodies (a corpus upload) have their own named limit.
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit_name, max_bytes = self.per_path.get(scope["path"], self.default)
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > max_bytes:
                    await self._reject(scope, send, declared, limit_name, max_bytes)
                    return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge(received, limit_name, max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge as error:
            if not response_started:
                await self._reject(scope, send, error.received, limit_name, max_bytes)

    async def _reject(
        self, scope: Scope, send: Send, size: int, limit_name: str, max_bytes: int
    ) -> None:
        body = json.dumps(
            {
                "type": "urn:seqlab:problem:limit-exceeded",
                "title": "Over a limit",
                "status": 413,
                "detail": (
                    f"request body: {size} bytes is over the limit {limit_name} = {max_bytes}"
                ),
                "instance": scope.get("path", ""),
                "limit": limit_name,
                "maximum": max_bytes,
                "value": size,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive``; FastAPI re-raises HTTP exceptions from body parsing as they are."""

    def __init__(self, received: int, limit_name: str, maximum: int) -> None:
        super().__init__(
            413, f"request body: over {received} bytes is over the limit {limit_name} = {maximum}"
        )
        self.received = received
        self.extra = {"limit": limit_name, "maximum": maximum, "value": received}
