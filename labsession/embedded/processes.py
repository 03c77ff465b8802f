"""Child processes (an embedded redis-server, a ``labsession serve``): stopping one (SIGTERM, then
SIGKILL), and the parts every wrapper of one shares: ``with`` blocks, pid, freeze and thaw."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from types import TracebackType
from typing import Self

__all__ = ["ChildProcess", "Lifecycle", "stop_process"]


def stop_process(process: subprocess.Popen[bytes], timeout: float, *, ask: Callable[[], bool] | None = None) -> int:
    """Stop ``process`` and return its exit code: SIGTERM, then SIGKILL after ``timeout`` seconds.

    ``ask`` is a polite request tried first (True when the process took it; it then gets up
    to a second to exit by itself). A frozen (SIGSTOPped) process is woken first: it cannot
    act on SIGTERM.
    """
    try:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            if ask is not None and ask():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=min(timeout, 1.0))
            if process.poll() is None:
                process.terminate()
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout)
    except ProcessLookupError:  # it exited between poll() and a signal
        return process.wait(timeout)


class Lifecycle:
    """``with`` and ``async with`` over :meth:`start` and :meth:`close`: the block starts the object
    and always closes it, also when starting failed; the async forms run both in a worker thread."""

    def start(self) -> object:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        try:
            await asyncio.to_thread(self.start)
        except BaseException:
            await asyncio.to_thread(self.close)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)


class ChildProcess(Lifecycle):
    """A :class:`Lifecycle` around one child process, ``_process`` (``None`` while there is none)."""

    _process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def freeze(self) -> None:
        """SIGSTOP the process: it keeps its sockets open but answers nothing."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen process."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGCONT)
