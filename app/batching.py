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
from typing import Any, Generic, TypeVar

from app.inline import INLINE_TOKENS

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


@dataclass
class _Waiting(Generic[ItemT]):
    item: ItemT
    tokens: int
    small: bool
    future: asyncio.Future[Any]
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class _Queue:
    compute: Compute
    waiting: list[_Waiting[Any]] = field(default_factory=list)
    tokens: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)


class Batcher:
    """One queue per key; ``run(function, argument, small=...)`` computes a batch (the service's
    :meth:`app.state.ServiceState.run`: a bounded thread pool, or inline when small)."""

    def __init__(
        self,
        run: Runner,
        *,
        wait_seconds: float,
        max_tokens: int,
        observe: Callable[[str, int], None] = lambda operation, size: None,
    ) -> None:
        self._run = run
        self.wait_seconds = wait_seconds
        self.max_tokens = max_tokens
        self._observe = observe
        self._queues: dict[Hashable, _Queue] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        operation: str,
        key: Hashable,
        item: ItemT,
        compute: Compute,
        *,
        tokens: int,
        small: bool,
    ) -> Any:
        """``item``'s answer, computed in a batch with the other items of ``(operation, key)``."""
        full_key = (operation, key)
        queue = self._queues.get(full_key)
        if queue is None:
            queue = self._queues[full_key] = _Queue(compute)
            drain = asyncio.get_running_loop().create_task(self._drain(operation, full_key, queue))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue.waiting.append(_Waiting(item, tokens, small, future))
        queue.tokens += tokens
        if queue.tokens >= self.max_tokens:
            queue.full.set()
        return await future

    async def _drain(self, operation: str, key: Hashable, queue: _Queue) -> None:
        try:
            while queue.waiting:
                await self._gather(queue)
                batch = self._take(queue)
                try:
                    results = await self._run(
                        queue.compute,
                        [waiting.item for waiting in batch],
                        small=all(waiting.small for waiting in batch)
                        and sum(waiting.tokens for waiting in batch) <= INLINE_TOKENS,
                    )
                except Exception as error:  # refused (429) or broken: every request hears it
                    results = [error] * len(batch)
                self._observe(operation, len(batch))
                for waiting, result in zip(batch, results, strict=True):
                    if waiting.future.done():
                        continue  # its client went away
                    if isinstance(result, BaseException):
                        waiting.future.set_exception(result)
                    else:
                        waiting.future.set_result(result)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]
            for waiting in queue.waiting:  # only when the task itself was cancelled (shutdown)
                if not waiting.future.done():
                    waiting.future.cancel()

    async def _gather(self, queue: _Queue) -> None:
        """Let the requests that are ready now join; with a wait, hold the first for company
        until the budget fills or its wait is over."""
        await asyncio.sleep(0)
        if self.wait_seconds <= 0 or queue.tokens >= self.max_tokens:
            return
        remaining = queue.waiting[0].arrived + self.wait_seconds - time.monotonic()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.full.wait(), remaining)

    def _take(self, queue: _Queue) -> list[_Waiting[Any]]:
        """The oldest requests up to the token budget (always at least one)."""
        taken, tokens = 0, 0
        for waiting in queue.waiting:
            if taken and tokens + waiting.tokens > self.max_tokens:
                break
            taken += 1
            tokens += waiting.tokens
        batch, queue.waiting = queue.waiting[:taken], queue.waiting[taken:]
        queue.tokens -= tokens
        if queue.tokens < self.max_tokens:
            queue.full.clear()
        return batch
