"""app.batching.Batcher on its own, with a recording compute: what joins a pass, the padded
budget, one request's error against a failing pass, the queue bound, and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from app.batching import BatchedOperation, Batcher
from app.errors import NotReadyError, OverloadedError


class Recorder:
    """compute: item x → x * 10; records each pass; ``fail`` items raise their own error, and
    a pass holding ``poison`` fails as a whole."""

    def __init__(self) -> None:
        self.passes: list[list[Any]] = []

    def __call__(self, items: Sequence[Any]) -> list[Any]:
        self.passes.append(list(items))
        if "poison" in items and len(items) > 1:
            raise RuntimeError("the pass failed")
        return [ValueError(f"bad {item}") if item == "fail" else f"{item}!" for item in items]


async def run_inline(function, *args, small: bool) -> Any:
    await asyncio.sleep(0.01)  # a pass takes time: others arrive meanwhile
    return function(*args)


def operation(compute, padded: bool = True) -> BatchedOperation:
    return BatchedOperation("test", compute, padded=padded, inline_limit=512)


def batcher(**overrides) -> Batcher:
    settings = {"wait_seconds": 0.0, "max_tokens": 100, "max_waiting": 64} | overrides
    return Batcher(run_inline, **settings)


async def submit_all(target: Batcher, op: BatchedOperation, items, shapes=None):
    shapes = shapes or [(1, 1)] * len(items)
    return await asyncio.gather(
        *(
            target.submit(op, "key", item, rows=rows, longest=longest, small=True)
            for item, (rows, longest) in zip(items, shapes, strict=True)
        ),
        return_exceptions=True,
    )


def test_concurrent_requests_share_a_pass_and_get_their_own_answers():
    compute = Recorder()
    answers = asyncio.run(submit_all(batcher(), operation(compute), ["a", "b", "c"]))
    assert answers == ["a!", "b!", "c!"]
    assert compute.passes == [["a", "b", "c"]]


def test_one_requests_error_is_its_own():
    compute = Recorder()
    answers = asyncio.run(submit_all(batcher(), operation(compute), ["a", "fail", "c"]))
    assert answers[0] == "a!"
    assert isinstance(answers[1], ValueError)
    assert answers[2] == "c!"


def test_a_failing_pass_is_computed_again_request_by_request():
    compute = Recorder()
    answers = asyncio.run(submit_all(batcher(), operation(compute), ["a", "poison", "c"]))
    assert answers == ["a!", "poison!", "c!"]
    assert compute.passes == [["a", "poison", "c"], ["a"], ["poison"], ["c"]]


def test_the_budget_counts_padding():
    compute = Recorder()
    # One long row (60) beside rows of 1: padded, already 2 × 60 = 120 > 100.
    shapes = [(1, 60), (1, 1), (1, 1)]
    asyncio.run(submit_all(batcher(), operation(compute), ["long", "x", "y"], shapes))
    assert compute.passes == [["long"], ["x", "y"]]
    # The same sizes unpadded (a flat lookup) fit one pass: 60 + 1 + 1.
    flat = Recorder()
    asyncio.run(submit_all(batcher(), operation(flat, padded=False), ["long", "x", "y"], shapes))
    assert flat.passes == [["long", "x", "y"]]


def test_a_request_over_the_budget_alone_still_runs():
    compute = Recorder()
    answers = asyncio.run(submit_all(batcher(), operation(compute), ["huge"], [(4, 1000)]))
    assert answers == ["huge!"]


def test_past_the_queue_bound_a_request_is_refused_at_once():
    compute = Recorder()
    answers = asyncio.run(submit_all(batcher(max_waiting=2), operation(compute), list("abcd")))
    refused = [answer for answer in answers if isinstance(answer, OverloadedError)]
    assert refused
    assert all(answer.retry_after == 1 for answer in refused)
    assert [answer for answer in answers if isinstance(answer, str)]


def test_a_wait_gathers_requests_that_arrive_later():
    compute = Recorder()

    async def staggered() -> list[Any]:
        target, op = batcher(wait_seconds=1.0), operation(compute)

        async def later(item: str, delay: float) -> Any:
            await asyncio.sleep(delay)
            return await target.submit(op, "key", item, rows=1, longest=1, small=True)

        return await asyncio.gather(later("a", 0), later("b", 0.05), later("c", 0.1))

    assert asyncio.run(staggered()) == ["a!", "b!", "c!"]
    assert compute.passes == [["a", "b", "c"]]


def test_requests_waiting_at_shutdown_are_answered_not_left_hanging():
    async def shutdown() -> list[Any]:
        started = asyncio.Event()

        async def slow_run(function, *args, small: bool) -> Any:
            started.set()
            await asyncio.sleep(10)
            return function(*args)

        target = Batcher(slow_run, wait_seconds=0, max_tokens=100, max_waiting=64)
        op = operation(Recorder())
        tasks = [
            asyncio.ensure_future(target.submit(op, "key", item, rows=1, longest=1, small=True))
            for item in "ab"
        ]
        await started.wait()
        for drain in list(target._drains):
            drain.cancel()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)

    answers = asyncio.run(shutdown())
    assert all(isinstance(answer, NotReadyError) for answer in answers)


@pytest.mark.parametrize("padded", [True, False])
def test_different_keys_never_share_a_pass(padded):
    compute = Recorder()

    async def two_keys() -> list[Any]:
        target, op = batcher(), operation(compute, padded)
        return await asyncio.gather(
            target.submit(op, "one", "a", rows=1, longest=1, small=True),
            target.submit(op, "two", "b", rows=1, longest=1, small=True),
        )

    assert asyncio.run(two_keys()) == ["a!", "b!"]
    assert sorted(compute.passes) == [["a"], ["b"]]
