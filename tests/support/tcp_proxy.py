"""A small asyncio TCP proxy on 127.0.0.1 for staging network faults in front of a real backend.

It forwards bytes both ways to ``upstream`` (``host``, ``port``), and can, while running:

* add a delay to every chunk in both directions (``delay`` seconds, order kept), like a slow link;
* cut connections that carried no byte in either direction for ``idle_timeout`` seconds, as a
  load balancer's idle timeout does (the TCP connection is aborted: no WebSocket close frame);
* cut every open connection now (:meth:`TcpProxy.drop_all`);
* point at another upstream (:meth:`TcpProxy.retarget`) for connections opened afterwards.

Use it inside a test's event loop::

    async with TcpProxy(("127.0.0.1", backend.port), idle_timeout=1.0) as proxy:
        url = proxy.url  # http://127.0.0.1:<free port>
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

__all__ = ["TcpProxy"]

_CHUNK = 65536


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    last_activity: float = field(default_factory=time.monotonic)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        """Cut both TCP connections at once (RST, no FIN), as a load balancer dropping them does."""
        for writer in (self.client, self.upstream):
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream``; ``delay`` and ``idle_timeout`` in seconds (0: off).

    Both may be changed while it runs. ``cut`` counts the connections it has cut.
    """

    def __init__(self, upstream: tuple[str, int], *, delay: float = 0.0, idle_timeout: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = delay
        self.idle_timeout = idle_timeout
        self.cut = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the proxy as a backend base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._watchdog = asyncio.create_task(self._watch_idle(), name="tcp-proxy-idle")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 5)

    def retarget(self, upstream: tuple[str, int]) -> None:
        """Send connections opened from now on to ``upstream``."""
        self.upstream = upstream

    def drop_all(self) -> int:
        """Cut every open connection now; returns how many."""
        links = list(self._links)
        for link in links:
            link.abort()
        self._links.clear()
        self.cut += len(links)
        return len(links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 5)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pipe(reader, up_writer, link)),
            asyncio.create_task(self._pipe(up_reader, writer, link)),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        self._links.discard(link)
        for side in (writer, up_writer):
            side.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        """Copy one direction; with a delay each chunk leaves ``delay`` s after it arrived, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                link.last_activity = time.monotonic()

        sender = asyncio.create_task(send())
        try:
            while True:
                data = await reader.read(_CHUNK)
                link.last_activity = time.monotonic()
                queue.put_nowait((time.monotonic() + self.delay, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            link.abort()
        finally:
            sender.cancel()

    async def _watch_idle(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            if self.idle_timeout <= 0:
                continue
            now = time.monotonic()
            for link in list(self._links):
                if now - link.last_activity >= self.idle_timeout:
                    link.abort()
                    self._links.discard(link)
                    self.cut += 1
