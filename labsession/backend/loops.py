"""Background loops that stop by being asked, not by cancellation alone."""

from __future__ import annotations

import asyncio
import contextlib

from ..masking import get_logger

__all__ = ["every", "stop_task"]

log = get_logger(__name__)


async def every(interval: float, stopping: asyncio.Event) -> bool:
    """Wait ``interval`` seconds or until ``stopping`` is set; True while the loop should go on."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(interval):
            await stopping.wait()
    return not stopping.is_set()


async def stop_task(task: asyncio.Task[None] | None, stopping: asyncio.Event, grace: float) -> None:
    """Stop a background loop: set ``stopping``, wait up to ``grace`` seconds, then cancel.

    Loops stop at their next check rather than by cancellation, because a cancellation that
    lands inside a redis-py call can be swallowed (asyncio on Python 3.11 loses it in
    ``Condition.wait``), which would hang shutdown. The wait after cancelling is bounded too.
    """
    stopping.set()
    if task is None or task.done():
        return
    done, _ = await asyncio.wait([task], timeout=grace)
    if not done:
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=grace)
    if not done:
        log.warning("event=task_abandoned task=%s", task.get_name())
