"""The ASGI middlewares: request bodies within their limit, binary tensor requests read into
their fields and their tensors, and metrics for every request."""

from __future__ import annotations

import json
import logging
import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import binary
from app.errors import InvalidInputError, LimitExceededError, RequestTimeoutError
from app.limits import over_limit
from app.metrics import Metrics
from app.problems import PROBLEM_MEDIA_TYPE, CarriedError, describe, problem_body

logger = logging.getLogger("seqlab")
# A safetensors body up to this size is decoded on the event loop (like a small JSON body).
SMALL_BINARY_BYTES = 16_384


class BodySizeLimitMiddleware:
    """Answer 413 to bodies over their limit, by Content-Length or while streaming, and 408
    to a body that stalls for ``body_timeout`` seconds between two of its chunks.

    The limit is ``max_bytes``, or a route's own (``per_path``: a corpus upload), or, for a
    POST of a given media type to a given route, that one's (``per_path_and_media_type``:
    safetensors to ``/rnn/forward``).

    uvicorn has neither of its own, so without this a client could make the service buffer any
    amount of memory, or hold a connection (and a task) by sending a body short of its
    Content-Length and then nothing.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        per_path: dict[str, tuple[str, int]] | None = None,
        per_path_and_media_type: dict[tuple[str, str], tuple[str, int]] | None = None,
        body_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.default = ("max_body_bytes", max_bytes)
        # Routes that take bigger bodies (a corpus upload) have their own named limit, and so do
        # binary bodies (safetensors), denser than JSON.
        self.per_path = per_path or {}
        self.per_path_and_media_type = per_path_and_media_type or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit_name, max_bytes = (
            self.per_path.get(scope["path"])
            or (
                scope["method"] == "POST"
                and self.per_path_and_media_type.get((scope["path"], media_type(scope)))
            )
            or self.default
        )
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > max_bytes:
                    await _reject(scope, send, over_limit(limit_name, declared, max_bytes))
                    return
        received = 0
        response_started = False
        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # afterwards receive() only waits for a disconnect: never cut that
                return await receive()
            try:
                with anyio.fail_after(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                raise CarriedError(
                    RequestTimeoutError(
                        f"the body stopped arriving: nothing for {self.body_timeout:g} s after "
                        f"{received} bytes"
                    )
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # Through FastAPI's body parsing, which lets only HTTP exceptions pass.
                    raise CarriedError(over_limit(limit_name, received, max_bytes))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except CarriedError as carried:
            if not response_started and isinstance(
                carried.error, LimitExceededError | RequestTimeoutError
            ):
                await _reject(scope, send, carried.error)


def media_type(scope: Scope) -> str:
    """The request's ``Content-Type`` without parameters, lowercased ('' if none)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


class BinaryTensorRequests:
    """A safetensors body (``application/vnd.safetensors``) to one of ``paths`` goes on as the
    JSON request it stands for (``app.binary.decode_request``: its fields, a placeholder for each
    tensor), so that the route validates it as it would the JSON one, with its tensors beside it
    in ``request.state.tensors``. Decoded off the event loop.
    """

    def __init__(self, app: ASGIApp, paths: tuple[str, ...], max_elements: int) -> None:
        self.app = app
        self.paths = paths
        self.max_elements = max_elements

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in self.paths
            or media_type(scope) != binary.MEDIA_TYPE
        ):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()  # the outer middleware's: within the binary body limit
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            if len(body) <= SMALL_BINARY_BYTES:  # microseconds: a thread hop would cost more
                fields, tensors = binary.decode_request(body, self.max_elements)
            else:
                fields, tensors = await anyio.to_thread.run_sync(
                    binary.decode_request, body, self.max_elements
                )
        except (InvalidInputError, LimitExceededError) as error:
            await _answer_problem(scope, send, error, close=False)
            return
        except Exception as error:  # a body no check foresaw: still the client's, never a 500
            logger.warning("unreadable safetensors body: %r", error)
            await _answer_problem(
                scope,
                send,
                InvalidInputError(
                    f"the body could not be read as safetensors ({error})", field="body"
                ),
                close=False,
            )
            return
        body = json.dumps(fields).encode()  # the other fields and placeholders: small
        headers = [
            (key, value)
            for key, value in scope["headers"]
            if key not in (b"content-type", b"content-length")
        ]
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        delivered = False

        async def json_receive() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        # The tensors themselves travel beside the request (request.state.tensors). The scope
        # is changed in place: the router writes the matched route into it, which the metrics
        # middleware outside reads for its label.
        scope["headers"] = headers
        scope.setdefault("state", {})["tensors"] = tensors
        await self.app(scope, json_receive, send)


async def _reject(
    scope: Scope, send: Send, error: LimitExceededError | RequestTimeoutError
) -> None:
    """A 413 or 408 problem answer, sent before the body was used; the connection closes."""
    await _answer_problem(scope, send, error, close=True)


async def _answer_problem(scope: Scope, send: Send, error: Exception, close: bool) -> None:
    kind, detail, extra = describe(error)
    body = json.dumps(problem_body(kind, detail, scope.get("path", ""), **extra)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": kind.status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *([(b"connection", b"close")] if close else []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Count every request and time it, labelled by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            # The template ("/models/{name}"), never the raw path: labels stay bounded.
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
