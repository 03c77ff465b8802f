"""Stopping a child process (an embedded redis-server, a ``labsession serve``): SIGTERM, then SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable

__all__ = ["stop_process"]


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
