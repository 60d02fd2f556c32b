"""Limits on a connection before its request reaches the app: header size and count, URL length,
the time to send the headers, connections at once, small requests in flight; and problem JSON
for what the HTTP parser refuses.

uvicorn's httptools protocol has none of these limits (a 20 MB header is read whole; a client
that connects and sends nothing is held until it leaves) and answers a malformed request with a
``400 text/plain``. :func:`limited_protocol` returns its subclass with the limits of the
settings; ``seqlab serve`` (and so ``make serve`` and the container) runs uvicorn with it. The
body is the app's part: its size limit and stall timeout are in :mod:`app.middleware`.

Small inference requests are answered on the event loop (:mod:`app.inline`), whose ready queue
is then their queue: with 256 of them in hand, the loop answers the last — and ``/health`` —
hundreds of milliseconds late. The service's :class:`~app.admission.Gate` bounds how many are in
flight; past it a request is answered ``429`` here, as soon as its head is read, without a trip
through the app (no routing, no parsing, no work: tens of microseconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.admission import Gate
from app.errors import (
    HeadersTooLargeError,
    MalformedRequestError,
    OverloadedError,
    RequestTimeoutError,
    ServiceError,
    TooManyConnectionsError,
    UrlTooLongError,
)
from app.inline import small_at_the_door
from app.problems import PROBLEM_MEDIA_TYPE, describe, problem_body
from app.settings import ConnectionLimits

logger = logging.getLogger("seqlab.connections")


class _RefusedError(Exception):
    """Raised from a parser callback to stop reading a request that is over a limit (the
    answer is ``self._refusal``: the parser wraps whatever a callback raises)."""


def _answer(
    status: int,
    reason: str,
    media_type: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    close: bool = False,
) -> bytes:
    """A whole HTTP/1.1 answer, as bytes on the wire."""
    lines = [
        b"HTTP/1.1 %d %s" % (status, reason.encode("ascii", "replace")),
        b"content-type: " + media_type.encode(),
        b"content-length: %d" % len(body),
        *(f"{name}: {value}".encode("latin-1") for name, value in (headers or {}).items()),
    ]
    if close:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _problem_answer(error: ServiceError, path: str | None, *, close: bool) -> bytes:
    """The problem JSON answering ``error`` (with ``Retry-After`` for a 429)."""
    kind, detail, extra = describe(error)
    body = json.dumps(problem_body(kind, detail, path, **extra), ensure_ascii=False).encode()
    headers = {}
    if isinstance(error, OverloadedError | TooManyConnectionsError):
        headers["retry-after"] = str(getattr(error, "retry_after", 1))
    return _answer(kind.status, kind.title, PROBLEM_MEDIA_TYPE, body, headers, close)


# GET /health's answer, as the route gives it (app/routers/ops.py): alive, whatever the load.
_HEALTH_ANSWER = _answer(200, "OK", "application/json", b'{"status":"ok"}')


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`ConnectionLimits` (set by a subclass)."""

    limits: ConnectionLimits = ConnectionLimits()
    small_requests: Gate | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = False  # between a request's first byte and its last header
        self._head_bytes = 0  # bytes received while reading the head (an upper bound)
        self._header_bytes = 0  # the URL and the headers read so far (exact)
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: ServiceError | None = None
        self._answered = False  # this request was answered here: its body is dropped
        self._body_timer: asyncio.TimerHandle | None = None  # for that body, not to be held
        self._deferred_refusal: ServiceError | None = None  # once the answer ahead is sent

    # -- the connection -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                TooManyConnectionsError(
                    f"the service holds {self.limits.max_connections} connections, its limit "
                    "(SEQLAB_CONNECTIONS__MAX_CONNECTIONS); try again shortly"
                )
            )
            return
        self._begin_head()  # a client that connects and sends nothing is cut too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after this chunk: httptools buffers a header until it ends, so the
        # limit is applied to the bytes received, before a huge header is held whole.
        if (
            self._reading_head
            and not self.transport.is_closing()
            and self._head_bytes > self.limits.max_header_bytes + self.limits.max_url_bytes
        ):
            self._refuse(self._headers_too_large())

    def send_400_response(self, msg: str) -> None:
        """What the parser refuses (or a limit stopped): problem JSON, not uvicorn's text."""
        error = self._refusal or MalformedRequestError(
            f"the request is not valid HTTP/1.1 ({msg.rstrip('.')}): e.g. a negative "
            "Content-Length, both Transfer-Encoding and Content-Length, or a bad request line"
        )
        self._refusal = None
        self._refuse(error)

    # -- parser callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        # A request answered here may have armed the keep-alive timeout (on_response_complete)
        # in the middle of a chunk that holds the next one: that one must not be cut by it.
        self._unset_keepalive_if_required()
        super().on_message_begin()
        self._header_bytes = 0
        self._header_count = 0
        if not self._reading_head:
            self._head_bytes = 0
            self._begin_head()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._refusal = UrlTooLongError(
                f"the URL is over {self.limits.max_url_bytes} bytes "
                "(SEQLAB_CONNECTIONS__MAX_URL_BYTES); send large inputs in the body"
            )
            raise _RefusedError(self._refusal.detail)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if (
            self._header_count > self.limits.max_headers
            or self._header_bytes > self.limits.max_header_bytes
        ):
            self._refusal = self._headers_too_large()
            raise _RefusedError(self._refusal.detail)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._stop_head_timer()
        gate = self.small_requests
        if self.parser.should_upgrade() or gate is None:  # (a WebSocket is uvicorn's part)
            super().on_headers_complete()
            return
        method = self.parser.get_method()
        url = httptools.parse_url(self.url)
        path = unquote_to_bytes(url.path) if b"%" in url.path else url.path
        # Answered here only when nothing is pipelined ahead (answers keep their order) and
        # the client is not slow to read them (they would pile up unread).
        here = (self.cycle is None or self.cycle.response_complete) and not self.flow.write_paused
        if here and method == b"GET" and path == b"/health" and not url.query:
            self._answer_here(_HEALTH_ANSWER)  # no task: never behind the loop's queue
            return
        if not small_at_the_door(method, path, _content_length(self.headers)):
            super().on_headers_complete()
            return
        app: ASGIApp
        if here:
            try:
                gate.enter()  # its task starts at once: it is in flight from now
            except OverloadedError as error:
                self._answer_here(_problem_answer(error, path.decode("latin-1"), close=False))
                return
            app = _Counted(self.app, gate, entered=True)
        else:  # waits its turn behind the request ahead: counted when it starts, if it may
            app = _Counted(self.app, gate, entered=False)
        # uvicorn starts (or queues, when pipelined) ``self.app`` for this request: this one.
        usual, self.app = self.app, app
        try:
            super().on_headers_complete()
        finally:
            self.app = usual

    def on_body(self, body: bytes) -> None:
        if not self._answered:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._answered:
            self._answered = False
            self._stop_body_timer()
            if not self.parser.should_keep_alive():  # HTTP/1.0, or Connection: close
                self.transport.close()
                return
            self.on_response_complete()  # keep-alive, or the next pipelined request
            return
        super().on_message_complete()

    # -- internals ------------------------------------------------------------------------
    def _answer_here(self, answer: bytes) -> None:
        """Write a whole answer now, from the parser's callback; the request's body (if any)
        is dropped as it arrives, within the header timeout (else the connection is closed:
        a body that never comes must not hold it), and the connection is kept alive."""
        self._answered = True
        self.transport.write(answer)
        self._body_timer = self.loop.call_later(
            self.limits.header_timeout_seconds, self.transport.close
        )

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _headers_too_large(self) -> HeadersTooLargeError:
        return HeadersTooLargeError(
            f"the request's headers are over {self.limits.max_header_bytes} bytes or "
            f"{self.limits.max_headers} fields (SEQLAB_CONNECTIONS__MAX_HEADER_BYTES, "
            "SEQLAB_CONNECTIONS__MAX_HEADERS)"
        )

    def _begin_head(self) -> None:
        self._reading_head = True
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(
            self.limits.header_timeout_seconds, self._head_timed_out
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self._refuse(
                RequestTimeoutError(
                    f"the request's headers did not arrive within "
                    f"{self.limits.header_timeout_seconds:g} s "
                    "(SEQLAB_CONNECTIONS__HEADER_TIMEOUT_SECONDS)"
                )
            )

    def _refuse(self, error: ServiceError) -> None:
        """Answer ``error`` and close the connection (what follows cannot be read as HTTP);
        after the answers to the requests ahead of it, so answers keep their order."""
        self._reading_head = False
        self._stop_head_timer()
        logger.info("refused a connection's request: %s", error.detail)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not self.pipeline and cycle.more_body and not cycle.response_started:
                # The bad bytes are this request's own body (a broken chunk): it can never be
                # whole, so it gets the answer, and its app task a disconnect.
                cycle.disconnected = True
                cycle.message_event.set()
            else:
                self._deferred_refusal = error
                self.transport.pause_reading()  # nothing more is read from this connection
                return
        self.transport.write(_problem_answer(error, None, close=True))
        self.transport.close()

    def on_response_complete(self) -> None:
        if self._deferred_refusal is not None and not self.pipeline:
            error, self._deferred_refusal = self._deferred_refusal, None
            self.server_state.total_requests += 1
            self.transport.write(_problem_answer(error, None, close=True))
            self.transport.close()
            return
        super().on_response_complete()  # the next pipelined request, if any, starts


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _Counted:
    """The app, for one request counted in ``gate`` until it is answered. ``entered``: the
    request was counted when its head was read (its task starts at once); otherwise it is
    counted when it starts (a pipelined one, which may never start if its client leaves) and
    refused with a 429 then if the gate is full."""

    def __init__(self, app: ASGIApp, gate: Gate, *, entered: bool) -> None:
        self.app = app
        self.gate = gate
        self.entered = entered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.entered:
            try:
                self.gate.enter()
            except OverloadedError as error:
                await _Refusal(error)(scope, receive, send)
                return
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.leave()


class _Refusal:
    """A 429 problem for one request; the connection stays open (uvicorn drops its body)."""

    def __init__(self, error: OverloadedError) -> None:
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, detail, extra = describe(self.error)
        body = json.dumps(problem_body(kind, detail, scope["path"], **extra)).encode()
        headers = [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.error.retry_after).encode()),
        ]
        await send({"type": "http.response.start", "status": kind.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def limited_protocol(
    limits: ConnectionLimits, small_requests: Gate | None = None
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with these limits, and the service's
    gate on small requests (``None``: no gate)."""
    return type(
        "SeqlabHttpProtocol",
        (LimitedHttpToolsProtocol,),
        {"limits": limits, "small_requests": small_requests},
    )
