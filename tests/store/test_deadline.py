"""Deadline: asyncio.timeout's semantics (its own expiry becomes TimeoutError, anyone else's
cancellation passes through, nesting works), at a coarse resolution of deadlines.TICK."""

from __future__ import annotations

import asyncio
import time

import pytest

from labsession.store.deadline import TICK, Deadline, _sweeper

from support import wait_until


async def test_a_block_that_overruns_raises_timeout_error_soon_after_its_bound() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with Deadline(0.2) as deadline:
            await asyncio.sleep(5)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 0.2 + TICK + 0.1
    assert deadline.expired


async def test_a_block_that_finishes_in_time_leaves_nothing_behind() -> None:
    for _ in range(100):
        async with Deadline(1.0) as deadline:
            await asyncio.sleep(0)
        assert not deadline.expired
    sweeper = _sweeper(asyncio.get_running_loop())
    assert sweeper.active == {}
    # The sweeper stops once nothing is pending: at its next tick, so within a few ticks.
    await wait_until(lambda: sweeper.handle is None, "the idle sweeper to stop", within=TICK * 5)


async def test_none_means_no_bound() -> None:
    async with Deadline(None) as deadline:
        await asyncio.sleep(TICK * 3)
    assert not deadline.expired


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    inside = asyncio.Event()

    async def guarded() -> None:
        async with Deadline(5.0):
            inside.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await asyncio.wait_for(inside.wait(), 1.0)  # cancelled inside the Deadline, not before it
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_inner_of_two_nested_deadlines_expires_alone() -> None:
    async with Deadline(5.0) as outer:
        with pytest.raises(TimeoutError):
            async with Deadline(0.1):
                await asyncio.sleep(5)
        await asyncio.sleep(0)  # the outer block goes on, uncancelled
    assert not outer.expired


async def test_when_the_outer_deadline_expires_the_inner_lets_it_through() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with Deadline(0.1) as outer:
            async with Deadline(5.0) as inner:
                await asyncio.sleep(5)
    assert outer.expired and not inner.expired
    assert time.monotonic() - started < 0.1 + TICK + 0.1


async def test_many_tasks_each_get_their_own_bound() -> None:
    async def one(delay: float, work: float) -> str:
        try:
            async with Deadline(delay):
                await asyncio.sleep(work)
            return "done"
        except TimeoutError:
            return "timeout"

    results = await asyncio.gather(*(one(0.15, 0.3 if i % 2 else 0.01) for i in range(200)))
    assert results == ["done" if i % 2 == 0 else "timeout" for i in range(200)]


async def test_covers_a_nested_bound_only_while_running_in_its_own_task_and_ending_first() -> None:
    async with Deadline(1.0) as outer:
        assert outer.covers(1.0) and outer.covers(3.0)
        assert not outer.covers(0.5)  # a shorter nested bound may fire first: it must be armed
        other_task = await asyncio.create_task(_covers_from_another_task(outer))
        assert not other_task  # the outer bound cancels this task, not that one
    assert not outer.covers(3.0)  # finished
    assert not Deadline(1.0).covers(3.0)  # never armed
    assert not Deadline(None).covers(3.0)


async def _covers_from_another_task(deadline: Deadline) -> bool:
    return deadline.covers(3.0)
