"""Bounds on request heads (request line and headers), in size and in time.

uvicorn's httptools protocol reads a head of any size (a 64 MiB header was answered 200 and
grew the server by 120 MiB) and waits for it for ever (slow or silent clients held sockets for
90 s and more). uvicorn has no public option for either with httptools (its
``h11_max_incomplete_event_size`` is for h11 only), so :func:`limited_protocol` gives it what its
``http`` setting documents it accepts: an ``asyncio.Protocol`` class. It subclasses uvicorn's
``HttpToolsProtocol`` and uses only documented seams: the ``asyncio.Protocol`` methods and
httptools' parser callbacks (``on_headers_complete``, ``on_message_complete``), each extended
with a call to the parent.

Bytes of a head are counted in ``data_received`` *before* the parser sees them:

- a request line longer than :attr:`HeadLimits.max_request_line` gets 414 ``URI_TOO_LONG``;
- a header line longer than :attr:`HeadLimits.max_line`, or a head larger than
  :attr:`HeadLimits.max_head` in total, gets 431 ``HEADERS_TOO_LARGE``;
- a connection that has not finished its head :attr:`HeadLimits.timeout` seconds after it
  opened (or after the first byte of the next request on a kept-alive connection) is closed,
  with 408 ``REQUEST_TIMEOUT`` if it sent part of a head (silently if it sent nothing).

A refused connection gets its answer, then the server stops writing (FIN) and discards what the
client still sends for up to :attr:`HeadLimits.linger` seconds, so that the client reads the
answer instead of a reset; nothing of the refused head is kept. The defaults follow mature
servers (nginx: 8 KiB lines, 32 KiB heads; Node.js: 16 KiB heads; hyper: ~400 KiB).
A pipelined head that arrives in the same read as the end of the previous request is counted from
the next read on (bounded by one read of the socket).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..masking import get_logger

__all__ = ["HeadLimits", "limited_protocol"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """Sizes in bytes, times in seconds."""

    #: Longest request line (method, target, version).
    max_request_line: int = 8 * 1024
    #: Longest header line (name, colon, value).
    max_line: int = 16 * 1024
    #: Largest head in total (request line and every header).
    max_head: int = 64 * 1024
    #: Seconds to finish a head, from the connection (or the next request's first byte).
    timeout: float = 5.0
    #: Seconds a refused connection is read (and discarded) before it is closed.
    linger: float = 1.0


_REASONS = {
    408: (b"Request Timeout", b'{"error":"Request head not received in time","code":"REQUEST_TIMEOUT"}'),
    414: (b"URI Too Long", b'{"error":"Request line too long","code":"URI_TOO_LONG"}'),
    431: (
        b"Request Header Fields Too Large",
        b'{"error":"Request header fields too large","code":"HEADERS_TOO_LARGE"}',
    ),
}


def _answer(status: int) -> bytes:
    phrase, body = _REASONS[status]
    return b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        status,
        phrase,
        len(body),
        body,
    )


_ANSWERS = {status: _answer(status) for status in _REASONS}


class _Watch:
    """Connections reading a head, and when each began; a sweep closes those past the timeout.

    One sweep every quarter of the timeout (at most once a second) while any head is being read:
    the request path pays a dict insert and delete, not a timer per request.
    """

    def __init__(self, limits: HeadLimits) -> None:
        self.limits = limits
        self.reading: dict[LimitedHttpToolsProtocol, float] = {}
        self.interval = min(1.0, max(0.05, limits.timeout / 4))
        self._armed: asyncio.TimerHandle | None = None

    def add(self, protocol: LimitedHttpToolsProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self.reading[protocol] = time.monotonic()
        if self._armed is None:
            self._armed = loop.call_later(self.interval, self._sweep, loop)

    def discard(self, protocol: LimitedHttpToolsProtocol) -> None:
        self.reading.pop(protocol, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._armed = None
        too_old = time.monotonic() - self.limits.timeout
        late = [p for p, since in self.reading.items() if since <= too_old]
        for protocol in late:
            self.reading.pop(protocol, None)
            protocol.head_timed_out()
        if late:
            log.info("event=head_timeout closed=%d timeout=%gs", len(late), self.limits.timeout)
        if self.reading:
            self._armed = loop.call_later(self.interval, self._sweep, loop)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded heads; made per server by :func:`limited_protocol`."""

    head_watch: ClassVar[_Watch]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_limits = self.head_watch.limits
        self.head_reading = True  # the next bytes belong to a head
        self.head_size = 0  # bytes of the current head so far
        self.head_line = 0  # bytes of its unfinished line so far
        self.head_first_line = True  # that line is the request line
        self.head_tail = b""  # the last bytes of the previous read, for an end of head split across reads
        self.head_refused = False

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self.head_watch.add(self, self.loop)  # a connection that sends nothing is timed too

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_watch.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.head_refused:
            return  # lingering: read and forget
        if self.head_reading:
            if self.head_size == 0 and self.head_line == 0:
                if len(data) <= self.head_limits.max_request_line and data.find(b"\n\r\n") >= 0:
                    super().data_received(data)  # a whole head in one read, under every limit: the busy path
                    return
                if self not in self.head_watch.reading:
                    self.head_watch.add(self, self.loop)  # the first byte of a kept-alive connection's next request
            status = self._head_check(data)
            if status:
                self.refuse(status)
                return
        super().data_received(data)

    # -- httptools parser callbacks -----------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self.head_reading = False
        self.head_watch.discard(self)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head_reading = True
        self.head_size = self.head_line = 0
        self.head_first_line = True
        self.head_tail = b""

    # -- the limits ---------------------------------------------------------------------------

    def _head_check(self, data: bytes) -> int:
        """0, or the status refusing the head once ``data`` (its next bytes) is added."""
        limits = self.head_limits
        end = data.find(b"\n\r\n")
        bare = data.find(b"\n\n", 0, len(data) if end < 0 else end)  # a head ending in bare LFs
        if bare >= 0:
            size = bare + 2
        elif end >= 0:
            size = end + 3
        else:
            size = len(data)
            if self.head_tail:
                joined = self.head_tail + data[:3]
                for terminator in (b"\n\r\n", b"\n\n"):
                    at = joined.find(terminator)
                    if at >= 0:
                        size = max(0, at + len(terminator) - len(self.head_tail))
                        break
        self.head_size += size
        if self.head_size > limits.max_head:
            return 431
        newline = data.find(b"\n", 0, size)
        if newline < 0:
            self.head_line += size
            if self.head_first_line:
                return 414 if self.head_line > limits.max_request_line else 0
            return 431 if self.head_line > limits.max_line else 0
        if self.head_first_line and self.head_line + newline > limits.max_request_line:
            return 414
        if self.head_line + newline > limits.max_line:
            return 431
        self.head_first_line = False
        start = newline + 1
        if size - start > limits.max_line:  # a long read: look at every line in it
            while (newline := data.find(b"\n", start, size)) >= 0:
                if newline - start > limits.max_line:
                    return 431
                start = newline + 1
        else:
            start = data.rfind(b"\n", start - 1, size) + 1
        self.head_line = size - start
        if self.head_line > limits.max_line:
            return 431
        if size == len(data):
            self.head_tail = data[-3:]
        return 0

    def refuse(self, status: int) -> None:
        """Answer ``status`` (408, 414 or 431), stop writing, and close after the linger time."""
        self.head_refused = True
        self.head_watch.discard(self)
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(_ANSWERS[status])
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(self.head_limits.linger, transport.close)
        if status != 408:
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            log.info("event=head_refused status=%d client=%s bytes=%d", status, client, self.head_size)

    def head_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        if self.head_size or self.head_line:
            self.refuse(408)
        else:
            self.transport.close()


def limited_protocol(limits: HeadLimits) -> type[LimitedHttpToolsProtocol]:
    """An HTTP protocol class for ``uvicorn.Config(http=…)`` that enforces ``limits``."""
    watch = _Watch(limits)
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"head_watch": watch})
