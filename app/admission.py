"""Admission control: bounded, fair queues in front of the work that runs in threads, and a
bound on the small requests answered on the event loop.

Each class of threaded work (large inference; segmentation of large texts; uploads and
training submissions) has its own :class:`Admission`: at most ``running`` at once, at most
``queued`` waiting behind them (first come, first served: anyio's capacity limiter wakes
waiters in order). Past that, or when a request has waited ``deadline`` seconds without
starting, it is refused at once with :class:`OverloadedError` (429 with ``Retry-After``) rather
than answered twenty seconds late; nothing it asked for is computed.

Small requests run on the event loop, whose own ready queue is their queue: a :class:`Gate`
bounds how many are in flight at once and refuses the rest at the door, before their body is
parsed (``app.connections``, under ``seqlab serve``), so that ``/health`` and ``/ready`` —
which never pass through any of this — wait behind a bounded amount of work.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from app.errors import OverloadedError

# How fast the average service time follows new measurements (for Retry-After).
SMOOTHING = 0.2


class Admission:
    """One class of work's running slots and bounded queue."""

    def __init__(
        self,
        kind: str,
        running: int,
        queued: int,
        deadline: float,
        on_shed: Callable[[str, str], None] | None = None,
    ) -> None:
        self.kind = kind
        self.running = running
        self.queued = queued
        self.deadline = deadline
        self._limiter = anyio.CapacityLimiter(running)
        self._waiting = 0
        self._service_seconds = 0.05  # a first guess; follows the measured durations
        self._on_shed = on_shed

    @property
    def waiting(self) -> int:
        return self._waiting

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, at the measured pace."""
        ahead = self._waiting + 1
        return max(1, math.ceil(ahead * self._service_seconds / self.running))

    def _shed(self, reason: str, detail: str) -> OverloadedError:
        if self._on_shed is not None:
            self._on_shed(self.kind, reason)
        return OverloadedError(detail, retry_after=self.retry_after(), work=self.kind)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one running slot for the block; raise :class:`OverloadedError` instead of
        queueing past the bound or waiting past the deadline."""
        busy = self._limiter.borrowed_tokens >= self._limiter.total_tokens
        if busy and self._waiting >= self.queued:
            raise self._shed(
                "queue_full",
                f"too busy: {self.running} {self.kind} requests running and {self._waiting} "
                "waiting, the most this service queues; retry after the Retry-After seconds",
            )
        self._waiting += 1
        try:
            with anyio.move_on_after(self.deadline) as waited:
                await self._limiter.acquire()
        finally:
            self._waiting -= 1
        if waited.cancelled_caught:
            raise self._shed(
                "deadline",
                f"too busy: waited {self.deadline:g} s for a free {self.kind} slot; nothing "
                "was computed, retry after the Retry-After seconds",
            )
        started = time.perf_counter()
        try:
            yield
        finally:
            self._limiter.release()
            spent = time.perf_counter() - started
            self._service_seconds += SMOOTHING * (spent - self._service_seconds)

    def describe(self) -> dict[str, float | int]:
        return {"running": self.running, "queued": self.queued, "deadline_seconds": self.deadline}


class Gate:
    """At most ``limit`` requests of a class in flight at once; past it, refused at once (no
    queue: for work on the event loop, the loop's ready queue is the queue)."""

    def __init__(
        self, kind: str, limit: int, on_shed: Callable[[str, str], None] | None = None
    ) -> None:
        self.kind = kind
        self.limit = limit
        self.active = 0
        self._on_shed = on_shed

    def enter(self) -> None:
        """Count one more request in, or raise :class:`OverloadedError`."""
        if self.active >= self.limit:
            if self._on_shed is not None:
                self._on_shed(self.kind, "too_many")
            raise OverloadedError(
                f"too busy: {self.active} {self.kind} requests in flight, the most this service "
                "takes at once; retry after the Retry-After seconds",
                retry_after=1,
                work=self.kind,
            )
        self.active += 1

    def leave(self) -> None:
        self.active -= 1

    def describe(self) -> dict[str, float | int]:
        return {"max_in_flight": self.limit}
