"""BackendState: what one backend instance holds while it runs, all of it passed in or rebuilt from Redis.

Nothing here matters to another instance: sessions live in Redis only. The state keeps the
connection to the store, the set of open WebSockets (to count them and to close them on
shutdown), the session watcher, and the last result of the store monitor (for ``/health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from ..errors import RedisUnavailable
from ..masking import get_logger
from ..sessions.service import LabSessionService
from ..store.service import RedisService
from .accesslog import ACCESS_LOGGER, AccessLog
from .config import BackendConfig
from .errors import store_not_connected
from .jsonio import iso_time
from .loops import every, stop_task
from .watcher import SessionWatcher

__all__ = ["BackendState", "OpenSocket", "StoreState"]

log = get_logger(__name__)


class OpenSocket(Protocol):
    """An open WebSocket the state can ask to close (used on shutdown)."""

    def request_close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class StoreState:
    """The store as last seen by the monitor. ``checked_at`` is seconds since the epoch."""

    up: bool
    checked_at: float
    ping_ms: float | None = None
    cause: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"state": "up" if self.up else "down", "checkedAt": iso_time(self.checked_at)}
        if self.ping_ms is not None:
            out["pingMs"] = round(self.ping_ms, 2)
        if self.cause is not None:
            out["cause"] = self.cause
        return out


class BackendState:
    """One instance's running state; ``async with`` starts and stops its background tasks.

    ``clock`` returns seconds since the epoch (for timestamps); uptime uses the monotonic clock.
    """

    def __init__(
        self,
        config: BackendConfig,
        redis: RedisService,
        sessions: LabSessionService | None = None,
        *,
        clock: Callable[[], float] = time.time,
        version: str = "",
    ) -> None:
        self.config = config
        self.redis = redis
        self.sessions = sessions or LabSessionService(redis)
        self.clock = clock
        self.version = version
        self.watcher = SessionWatcher(self.sessions, config.session_poll_interval)
        #: The writer thread of the access log and the busiest info events (``None`` when the
        #: backend's loggers were above ``info`` when this state was made).
        self.log_writer: AccessLog | None = None
        if logging.getLogger("labsession.backend").isEnabledFor(logging.INFO):
            self.log_writer = AccessLog(sample=config.access_log_sample)
        #: The access log, or ``None`` when it is off (``access_log=False``, or its logger above ``info``).
        self.access_log: AccessLog | None = None
        if config.access_log and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO):
            self.access_log = self.log_writer
        self.sockets: set[OpenSocket] = set()
        self._no_sockets = asyncio.Event()
        self._no_sockets.set()
        self.store = StoreState(up=False, checked_at=clock(), cause="NOT_CHECKED")
        self.shutting_down = False
        self._started = time.monotonic()
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._connect_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the store (a failure is logged, not raised: readiness says 503 until it works)
        and start the store monitor and the session watcher."""
        if self.log_writer is not None:
            self.log_writer.start()
        await self.check_store()
        self._monitor = asyncio.create_task(self._monitor_loop(), name="labsession-store-monitor")
        self.watcher.start()

    async def aclose(self) -> None:
        """Stop background tasks and close the store connection; safe to call twice."""
        task, self._monitor = self._monitor, None
        grace = self.redis.settings.operation_timeout + 0.5
        await stop_task(task, self._stopping, grace)
        await self.watcher.stop(grace)
        await self.redis.aclose()
        if self.log_writer is not None:
            self.log_writer.close()

    async def __aenter__(self) -> BackendState:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def info(self, logger: logging.Logger, message: str) -> None:
        """An ``info`` event of ``logger``, already formatted: queued for the writer thread when it
        runs (no formatting or write on the event loop), else logged as usual."""
        if self.log_writer is not None and logger.isEnabledFor(logging.INFO):
            self.log_writer.note(logger.name, message)
        elif logger.isEnabledFor(logging.INFO):
            logger.info(message)

    def add_socket(self, socket: OpenSocket) -> None:
        self.sockets.add(socket)
        self._no_sockets.clear()

    def remove_socket(self, socket: OpenSocket) -> None:
        self.sockets.discard(socket)
        if not self.sockets:
            self._no_sockets.set()

    async def close_sockets(self, code: int, reason: str, grace: float) -> int:
        """Ask every open WebSocket to close with ``code``; wait up to ``grace`` seconds for them.

        Returns how many were still open when the wait ended. New WebSockets are refused from now on.
        """
        self.shutting_down = True
        for socket in list(self.sockets):
            socket.request_close(code, reason)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._no_sockets.wait()
        return len(self.sockets)

    # -- the store ---------------------------------------------------------------------------

    @property
    def uptime(self) -> float:
        """Seconds since this state was created."""
        return time.monotonic() - self._started

    def require_store(self) -> None:
        """Raise :class:`RedisUnavailable` when the first connection has not been made yet."""
        if not self.redis.connected:
            raise store_not_connected(self.redis.settings.endpoint, self.store.cause)

    async def check_store(self) -> StoreState:
        """PING the store (connecting first if needed) and record the result."""
        before = self.store
        try:
            if not self.redis.connected:
                async with self._connect_lock:
                    if not self.redis.connected:
                        await self.redis.connect()
            ping_ms = await self.redis.ping()
            self.store = StoreState(up=True, checked_at=self.clock(), ping_ms=ping_ms)
        except RedisUnavailable as exc:
            self.store = StoreState(up=False, checked_at=self.clock(), cause=exc.cause.value)
        if before.up != self.store.up or before.cause == "NOT_CHECKED":
            if self.store.up:
                log.info("event=store_up endpoint=%s", self.redis.settings.endpoint)
            else:
                log.warning("event=store_down endpoint=%s cause=%s", self.redis.settings.endpoint, self.store.cause)
        return self.store

    async def _monitor_loop(self) -> None:
        while await every(self.config.store_check_interval, self._stopping):
            try:
                await self.check_store()
            except Exception as exc:  # the monitor must outlive any one bad round
                log.warning("event=store_check_failed error=%s", type(exc).__name__)
