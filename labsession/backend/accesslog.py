"""The access log: one line per HTTP request, kept off the request path.

Formatting a log record and writing it to stderr on the event loop cost ~50 µs per request: a
third of what a validate request costs the whole server. Here the request path only appends a
tuple to a queue (a few hundred nanoseconds); a writer thread wakes every ``interval`` seconds,
formats what is queued in the layout of the event log (``<time> INFO labsession.backend.access:
event=http rid=… GET /path 200 1.2ms``) and writes it with one call per batch.

Masking, as the logging backstop would: only the path and a request id offered by the client
come from outside (our own request ids are hex, the rest are ours), so those two pass
:func:`~labsession.masking.mask_text`; a path is masked once and remembered (busy sessions repeat).

The same writer carries the backend's busiest ``info`` events, a WebSocket's ``ws_connected``
and ``ws_closed`` (:meth:`AccessLog.note`), whether the access lines are on or off.

Switches (``BackendConfig``, from the environment or ``labsession serve``'s options):
``ACCESS_LOG=off`` (``--no-access-log``) writes none; ``ACCESS_LOG_SAMPLE=N``
(``--access-log-sample N``) writes one in every ``N`` requests answered below 400, and every
4xx and 5xx. A log level above ``info`` (``--log-level warning``) switches it off as before.

The queue is bounded (:attr:`AccessLog.limit` lines): when the stream cannot keep up, new lines
are dropped and counted, and the writer reports ``event=access_log_dropped count=N``.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import TextIO

from ..masking import mask_text
from .jsonio import safe_path

__all__ = ["ACCESS_LOGGER", "AccessLog"]

#: The logger name the lines carry (the event log's layout), and whose level switches them off.
ACCESS_LOGGER = "labsession.backend.access"

_Entry = tuple[float, str, bool, str, str, int, float]
_Note = tuple[float, str, str]
#: Distinct paths whose masked, printable form is kept between batches (busy sessions repeat).
_PATH_CACHE = 4096


class AccessLog:
    """One line per request, queued by :meth:`record` and written by a daemon thread.

    ``stream`` defaults to ``sys.stderr`` as found when the writer starts. ``sample`` keeps one
    in every ``sample`` requests answered below 400 (1 keeps all). Times are seconds.
    """

    def __init__(
        self, *, sample: int = 1, stream: TextIO | None = None, interval: float = 0.05, limit: int = 100_000
    ) -> None:
        if sample < 1:
            raise ValueError("sample must be 1 or more")
        self.sample = sample
        self.interval = interval
        self.limit = limit
        self.dropped = 0
        self._stream = stream
        self._queue: collections.deque[_Entry | _Note] = collections.deque()
        self._skipped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._second = -1
        self._stamp = ""
        self._paths: dict[str, str] = {}

    # -- the request path --------------------------------------------------------------------

    def record(self, rid: str, method: str, path: str, status: int, seconds: float, *, offered: bool = True) -> None:
        """Queue one request's line (called on the event loop; formats nothing).

        ``offered``: the request id came from the client (it is masked like the path)."""
        if status < 400 and self.sample > 1:
            self._skipped += 1
            if self._skipped < self.sample:
                return
            self._skipped = 0
        if len(self._queue) >= self.limit:
            self.dropped += 1
            return
        self._queue.append((time.time(), rid, offered, method, path, status, seconds))
        if self._closed:
            self.flush()

    def note(self, logger: str, message: str) -> None:
        """Queue one formatted ``info`` event of ``logger`` (a WebSocket opened or closed, say),
        written in the same layout and masked whole by the writer."""
        if len(self._queue) >= self.limit:
            self.dropped += 1
            return
        self._queue.append((time.time(), logger, message))
        if self._closed:
            self.flush()

    # -- the writer --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            self._closed = False
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="labsession-access-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the writer and write what is queued; later lines are written at once."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(5)
        self._closed = True
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Format and write every queued line (one write call)."""
        queue, lines, paths = self._queue, [], self._paths
        while queue:
            try:
                entry = queue.popleft()
            except IndexError:  # pragma: no cover - another flush emptied it
                break
            if len(entry) == 3:
                when, logger, message = entry
                lines.append(f"{self._time(when)} INFO {logger}: {mask_text(message)}\n")
                continue
            when, rid, offered, method, path, status, seconds = entry
            shown = paths.get(path)
            if shown is None:
                if len(paths) >= _PATH_CACHE:
                    paths.clear()
                shown = paths[path] = mask_text(safe_path(path))
            if offered:
                rid = mask_text(rid)
            lines.append(
                f"{self._time(when)} INFO {ACCESS_LOGGER}: event=http rid={rid} {method} "
                f"{shown} {status} {seconds * 1000:.1f}ms\n"
            )
        dropped, self.dropped = self.dropped, 0
        if dropped:
            lines.append(
                f"{self._time(time.time())} WARNING {ACCESS_LOGGER}: event=access_log_dropped count={dropped}\n"
            )
        if not lines:
            return
        stream = self._stream or sys.stderr
        try:
            stream.write("".join(lines))
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not take the server down
            pass

    def _time(self, when: float) -> str:
        """``when`` as logging's default ``asctime`` (``2026-11-26 06:25:01,123``), the date part cached."""
        second = int(when)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((when - second) * 1000):03d}"
