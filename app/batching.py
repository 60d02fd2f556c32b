"""Dynamic batching: concurrent requests for one model version answered by one forward pass.

A request that is ready to compute (validated, segmented, its model loaded: the "prepare" half
of a :class:`BatchedOperation`) joins the queue of its key (the operation and the model
version). One drain task per key takes what has gathered, up to a token budget, and runs the
operation's ``compute`` on all of it at once: in a worker thread, or on the event loop when the
whole batch is small (:mod:`app.inline`). Requests that arrive while a batch computes form the
next one, so under load batches grow by themselves and an idle service adds no delay; a wait
(``batch_wait_ms``) can hold the first request of a batch a little longer for company.

Each answer is the one the request would have had alone: ``compute`` pads, runs, and cuts
every request's rows back out (tested to 1e-6 in tests/app/test_batching.py). An error that
belongs to one request's rows fails that request only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.errors import NotReadyError, OverloadedError

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
# compute(items) -> one answer or exception per item, in order.
Compute = Callable[[Sequence[Any]], list[Any]]
Runner = Callable[..., Awaitable[Any]]


def answer_each(
    items: Sequence[ItemT], answer: Callable[[ItemT], ResultT]
) -> list[ResultT | Exception]:
    """``answer(item)`` for each item; an item whose answer raises gets its exception, the
    others their answers."""
    results: list[ResultT | Exception] = []
    for item in items:
        try:
            results.append(answer(item))
        except Exception as error:  # that request's own error (a limit, a bad id)
            results.append(error)
    return results


def alone(compute: Callable[[Sequence[ItemT]], list[ResultT | Exception]], item: ItemT) -> ResultT:
    """A batched computation run for one request: its answer, or its error raised."""
    (result,) = compute([item])
    if isinstance(result, Exception):
        raise result
    return result


@dataclass(frozen=True)
class BatchedOperation:
    """An operation whose concurrent requests share passes.

    ``compute`` answers a list of prepared requests (one answer or exception each, in order).
    ``padded``: the batch becomes one (rows, longest) tensor, so a batch costs its rows times
    its longest row (padding included); otherwise the sum of its requests' positions.
    ``inline_limit``: the most positions a batch of small requests may cost and still be
    computed on the event loop (:mod:`app.inline`'s bound for one such request).
    """

    name: str
    compute: Compute
    padded: bool
    inline_limit: int


@dataclass
class _Waiting:
    item: Any
    rows: int
    longest: int
    small: bool
    future: asyncio.Future[Any]
    arrived: float = field(default_factory=time.monotonic)


def batch_cost(batch: Sequence[_Waiting], padded: bool) -> int:
    """Token positions one pass over ``batch`` computes."""
    if not batch:
        return 0
    if padded:
        return sum(w.rows for w in batch) * max(w.longest for w in batch)
    return sum(w.rows * w.longest for w in batch)


@dataclass
class _Queue:
    operation: BatchedOperation
    waiting: list[_Waiting] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)


class Batcher:
    """One queue per (operation, key); ``run(function, argument, small=...)`` computes a batch
    (the service's :meth:`app.state.ServiceState.run`: a bounded thread pool, or inline when
    small)."""

    def __init__(
        self,
        run: Runner,
        *,
        wait_seconds: float,
        max_tokens: int,
        max_waiting: int,
        observe: Callable[[str, int], None] = lambda operation, size: None,
    ) -> None:
        self._run = run
        self.wait_seconds = wait_seconds
        self.max_tokens = max_tokens
        self.max_waiting = max_waiting
        self._observe = observe
        self._queues: dict[Hashable, _Queue] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        operation: BatchedOperation,
        key: Hashable,
        item: Any,
        *,
        rows: int,
        longest: int,
        small: bool,
    ) -> Any:
        """``item``'s answer (``rows`` texts, the longest ``longest`` positions), computed in a
        pass with the other items of ``(operation, key)``; 429 when too many already wait."""
        full_key = (operation.name, key)
        queue = self._queues.get(full_key)
        if queue is None:
            queue = self._queues[full_key] = _Queue(operation)
            drain = asyncio.get_running_loop().create_task(self._drain(full_key, queue))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        elif len(queue.waiting) >= self.max_waiting:
            raise OverloadedError(
                f"too busy: {len(queue.waiting)} {operation.name} requests for this model "
                "version wait for a forward pass; retry after the Retry-After seconds",
                retry_after=1,
                work="inference",
            )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue.waiting.append(_Waiting(item, rows, longest, small, future))
        if batch_cost(queue.waiting, operation.padded) >= self.max_tokens:
            queue.full.set()
        return await future

    async def _drain(self, key: Hashable, queue: _Queue) -> None:
        batch: list[_Waiting] = []
        try:
            while queue.waiting:
                await self._gather(queue)
                batch = self._take(queue)
                await self._compute(queue.operation, batch)
                batch = []
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]
            # Only when the task itself was cancelled (shutdown): nobody waits for ever.
            for waiting in [*batch, *queue.waiting]:
                if not waiting.future.done():
                    waiting.future.set_exception(NotReadyError("the service is stopping"))

    async def _compute(self, operation: BatchedOperation, batch: list[_Waiting]) -> None:
        items = [waiting.item for waiting in batch]
        small = (
            all(waiting.small for waiting in batch)
            and batch_cost(batch, operation.padded) <= operation.inline_limit
        )
        try:
            results = await self._run(_answers, operation.compute, items, small=small)
        except Exception as error:  # refused (429) before anything ran: as each would be alone
            results = [error] * len(batch)
        self._observe(operation.name, len(batch))
        for waiting, result in zip(batch, results, strict=True):
            if waiting.future.done():
                continue  # its client went away
            if isinstance(result, BaseException):
                waiting.future.set_exception(result)
            else:
                waiting.future.set_result(result)

    async def _gather(self, queue: _Queue) -> None:
        """Let the requests that are ready now join; with a wait, hold the first for company
        until the budget fills or its wait is over."""
        await asyncio.sleep(0)
        if self.wait_seconds <= 0 or queue.full.is_set():
            return
        remaining = queue.waiting[0].arrived + self.wait_seconds - time.monotonic()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.full.wait(), remaining)

    def _take(self, queue: _Queue) -> list[_Waiting]:
        """The oldest requests while the pass's cost stays within the budget (at least one)."""
        padded = queue.operation.padded
        taken = 1
        while (
            taken < len(queue.waiting)
            and batch_cost(queue.waiting[: taken + 1], padded) <= self.max_tokens
        ):
            taken += 1
        batch, queue.waiting = queue.waiting[:taken], queue.waiting[taken:]
        if batch_cost(queue.waiting, padded) < self.max_tokens:
            queue.full.clear()
        return batch


def _answers(compute: Compute, items: list[Any]) -> list[Any]:
    """``compute(items)``; if the pass as a whole fails (not one request's error: those come
    back as its answer), each request again alone, so one cannot fail the others."""
    try:
        return compute(items)
    except Exception:
        if len(items) == 1:
            raise
        return [_alone_or_error(compute, item) for item in items]


def _alone_or_error(compute: Compute, item: Any) -> Any:
    try:
        return compute([item])[0]
    except Exception as error:
        return error
