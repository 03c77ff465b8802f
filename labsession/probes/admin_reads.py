"""The two admin reads a latency diagnosis wants: ``SLOWLOG GET`` and ``LATENCY LATEST``.

Both are ``@admin @dangerous`` commands: a read-only ACL user may not run them, each refusal
lands in the server's ``ACL LOG`` as a security event, and Upstash refuses them outright. So
the caller asks for them only when the run may use admin commands (not ``read_only``), each
is asked once with no retry, and a refusal is a result (:attr:`AdminRead.refused`), never an
exception and never a fault of the server.

A slow log entry holds the command's arguments, which may include session JSON and its
secrets: only the command's name is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis import exceptions as rx

from ..errors import RedisCause
from ..store.classify import classify
from ..store.service import RedisService

__all__ = ["AdminRead", "LatencyEvent", "SlowEntry", "read_latency_latest", "read_slowlog"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SlowEntry:
    """One slow log entry: when it started (seconds since the epoch), how long it ran (µs), its command's name."""

    started_at: int
    duration_us: int
    command: str


@dataclass(frozen=True, slots=True)
class LatencyEvent:
    """One ``LATENCY LATEST`` line: the event, when it last happened (seconds since the epoch),
    its latest and its worst latency in milliseconds."""

    event: str
    latest_at: int
    latest_ms: int
    max_ms: int


@dataclass(frozen=True, slots=True)
class AdminRead(Generic[T]):
    """What an admin read returned, or why the server refused it (``refused`` is the server's words)."""

    command: str
    value: T | None = None
    refused: str | None = None


async def _once(redis: RedisService, command: str, read: Callable[[], Awaitable[T]]) -> AdminRead[T]:
    """Run ``read`` once under the store's time bound; a refusal (unknown command, no permission) is returned."""
    async with redis.guard(command):
        try:
            return AdminRead(command, await read())
        except rx.ResponseError as exc:
            if classify(exc) not in (RedisCause.UNKNOWN, RedisCause.READ_ONLY):
                raise
            return AdminRead(command, refused=str(exc)[:160])


async def read_slowlog(redis: RedisService, count: int = 128) -> AdminRead[tuple[SlowEntry, ...]]:
    """The newest ``count`` slow log entries (one ``SLOWLOG GET``), newest first, names only."""

    async def read() -> tuple[SlowEntry, ...]:
        entries: list[dict[str, Any]] = await redis.client.slowlog_get(count)
        return tuple(_slow_entry(e) for e in entries)

    return await _once(redis, "SLOWLOG", read)


async def read_latency_latest(redis: RedisService) -> AdminRead[tuple[LatencyEvent, ...]]:
    """Every latency event the server's monitor recorded (one ``LATENCY LATEST``)."""

    async def read() -> tuple[LatencyEvent, ...]:
        rows: list[list[Any]] = await redis.client.latency_latest()
        return tuple(_latency_event(row) for row in rows if len(row) >= 4)

    return await _once(redis, "LATENCY LATEST", read)


def _slow_entry(entry: dict[str, Any]) -> SlowEntry:
    command = entry.get("command") or b""
    text = command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)
    name = text.split(" ", 1)[0].lower()[:40] or "?"
    return SlowEntry(int(entry.get("start_time") or 0), int(entry.get("duration") or 0), name)


def _latency_event(row: list[Any]) -> LatencyEvent:
    event = row[0].decode("utf-8", "replace") if isinstance(row[0], bytes) else str(row[0])
    return LatencyEvent(event, int(row[1]), int(row[2]), int(row[3]))
