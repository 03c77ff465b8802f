"""Child processes (an embedded redis-server, a ``labsession serve``, a notebook kernel): starting one
so that it dies with its parent (:func:`spawn`, :func:`die_with_parent`), stopping one (SIGTERM, then
SIGKILL), and the parts every wrapper of one shares: ``with`` blocks, pid, freeze and thaw.

Dying with the parent: on Linux a child asks the kernel, between ``fork`` and ``exec``, for SIGKILL
when its parent goes (``prctl(PR_SET_PDEATHSIG)``), so a ``labsession health`` killed with SIGKILL,
which runs no cleanup at all, leaves no redis-server, backend or kernel behind. The kernel's notion
of the parent is the *thread* that forked, so :func:`spawn` forks from one thread that lives as long
as the process (starting a child from a short-lived worker thread would kill it when that thread
ends). Elsewhere children are started normally and stopped by their owners as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self

__all__ = ["ChildProcess", "Lifecycle", "die_with_parent", "spawn", "stop_process"]

_PR_SET_PDEATHSIG = 1
_prctl: Any = None


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that makes the child receive ``signum`` (SIGKILL)
    when the thread that started it ends (with its process, normally); ``None`` where Linux' ``prctl``
    is not.

    The C function is looked up here, before ``fork``: the child only makes the one call, and exits
    at once if its parent is already gone (it died between ``fork`` and the call).
    """
    global _prctl
    if not sys.platform.startswith("linux"):
        return None
    if _prctl is None:
        import ctypes

        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return None
    prctl, parent = _prctl, os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class _Spawner:
    """One daemon thread that forks every :func:`spawn` child: it lives as long as the process, so the
    children's ``PDEATHSIG`` fires when the process ends, not when some worker thread does."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._requests: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="labsession-spawner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            make, future = self._requests.get()
            try:
                future.set_result(make())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

    def call(self, make: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return make()
        future: Future[Any] = Future()
        self._requests.put((make, future))
        return future.result()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def spawn(args: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(args, **popen)``, the child dying with this process (see the module docstring)."""
    global _spawner
    preexec = die_with_parent()
    if preexec is None:
        return subprocess.Popen(args, **popen)
    with _spawner_lock:
        if _spawner is None or _spawner.pid != os.getpid():  # none yet, or this is a forked copy
            _spawner = _Spawner()
        spawner = _spawner
    process: subprocess.Popen[bytes] = spawner.call(lambda: subprocess.Popen(args, preexec_fn=preexec, **popen))
    return process


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
