"""The service's one ASGI middleware: request bodies within their limit, binary tensor requests
read into their fields and their tensors, and metrics for every request."""

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


class ServiceMiddleware:
    """The one ASGI layer around the app (one layer: each costs a call and a send wrapper on
    every request). For every HTTP request it:

    * answers 413 to a body over its limit, by Content-Length or while streaming, and 408 to a
      body that stalls for ``body_timeout`` seconds between two of its chunks (uvicorn has
      neither: a client could make the service buffer any amount, or hold a connection and a
      task by sending less than its Content-Length and then nothing). The limit is
      ``max_bytes``, or a route's own (``per_path``: a corpus upload), or, for a POST of a given
      media type to a given route, that one's (``per_path_and_media_type``: safetensors to
      ``/rnn/forward``);
    * turns a safetensors body (``application/vnd.safetensors``) to one of ``binary_paths``
      into the JSON request it stands for (``app.binary.decode_request``: its fields, a
      placeholder for each tensor), so that the route validates it as it would the JSON one,
      with its tensors beside it in ``request.state.tensors``;
    * counts the request and times it, labelled by route template and status (a request refused
      at the door by its Content-Length is not counted: it never reached a route).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_bytes: int,
        per_path: dict[str, tuple[str, int]] | None = None,
        per_path_and_media_type: dict[tuple[str, str], tuple[str, int]] | None = None,
        body_timeout: float = 30.0,
        binary_paths: tuple[str, ...] = (),
        max_elements: int = 0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.body_timeout = body_timeout
        self.default = ("max_body_bytes", max_bytes)
        self.per_path = per_path or {}
        self.per_path_and_media_type = per_path_and_media_type or {}
        self.binary_paths = binary_paths
        self.max_elements = max_elements

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        content_type = media_type(scope) if method == "POST" else ""
        limit_name, max_bytes = (
            self.per_path.get(scope["path"])
            or (content_type and self.per_path_and_media_type.get((scope["path"], content_type)))
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
        started = time.perf_counter()
        status = 500
        response_started = False
        received = 0
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

        async def recording_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        try:
            app_receive: Receive = limited_receive
            if content_type == binary.MEDIA_TYPE and scope["path"] in self.binary_paths:
                app_receive = await self._binary_request(scope, limited_receive, recording_send)
                if app_receive is None:
                    return  # answered (a problem) or the client left
            await self.app(scope, app_receive, recording_send)
        except CarriedError as carried:
            if response_started or not isinstance(
                carried.error, LimitExceededError | RequestTimeoutError
            ):
                raise
            await _reject(scope, recording_send, carried.error)  # counted with its status
        finally:
            route = scope.get("route")
            # The template ("/models/{name}"), never the raw path: labels stay bounded.
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)

    async def _binary_request(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Read and decode a safetensors body; the JSON request it stands for as a receive
        (the scope's headers changed in place, its tensors in the scope's state), or None once
        a problem was answered or the client left."""
        chunks = []
        while True:
            message = await receive()  # within the binary body limit
            if message["type"] == "http.disconnect":
                return None
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
            return None
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
            return None
        json_body = json.dumps(fields).encode()  # the other fields and placeholders: small
        headers = [
            (key, value)
            for key, value in scope["headers"]
            if key not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(json_body)),
        ]
        delivered = False

        async def json_receive() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": json_body, "more_body": False}

        # The tensors travel beside the request (request.state.tensors). The scope is changed
        # in place: the router writes the matched route into it, which the metrics read.
        scope["headers"] = headers
        scope.setdefault("state", {})["tensors"] = tensors
        return json_receive


def media_type(scope: Scope) -> str:
    """The request's ``Content-Type`` without parameters, lowercased ('' if none)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


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
