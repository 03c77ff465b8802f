"""Helpers shared by the tests: real processes, certificates, and the constants every test reads.

Timing: ``MS`` is one millisecond scaled by ``LABSESSION_TEST_TIME_SCALE`` (default 1), so a
slow machine can stretch every wait in one place instead of sprinkling sleeps. A test that
needs another task or process to have got somewhere waits on that state (an event, or
:func:`wait_until`), never a fixed sleep that a slow task outlasts unseen.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

__all__ = ["CANARY", "IN_CI", "MS", "REPO", "wait_until"]

MS = 0.001 * float(os.environ.get("LABSESSION_TEST_TIME_SCALE", "1"))
#: A password that must never appear in any output; tests grep for it.
CANARY = "canary-Pw-9f8e7d6c5b"
IN_CI = bool(os.environ.get("CI"))
#: The repository checkout the tests run from (notebooks/, runbooks/, pyproject.toml).
REPO = Path(__file__).resolve().parents[2]


async def wait_until(
    condition: Callable[[], object | Awaitable[object]],
    what: str,
    *,
    within: float = 5000 * MS,
    every: float = 2 * MS,
) -> None:
    """Poll ``condition`` (a function, or a coroutine function) until it returns something true;
    fail the test naming ``what`` if that takes more than ``within`` seconds.

    For a test that needs another task or process to have reached a state before it goes on: a
    fixed sleep passes unseen when that task is slow, and then the test tests nothing.
    """
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"waited {within:.2f} s for {what}")
        await asyncio.sleep(every)
