"""What a Redis server says about its memory, its evictions, its commands and its keyspace, from INFO alone.

Four ``INFO`` sections (``memory``, ``stats``, ``commandstats``, ``keyspace``): four commands,
whatever the number of keys, each one a read-only ACL user may run. A section the provider
hides leaves its fields ``None`` and is named in :attr:`ServerInfo.unknown`; nothing here
raises for a refusal. Sizes are in bytes, times in microseconds as Redis reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..store.service import RedisService

__all__ = ["CommandStat", "ServerInfo", "read_server_info"]

#: The INFO sections read, in order: one command each.
SECTIONS = ("memory", "stats", "commandstats", "keyspace")


@dataclass(frozen=True, slots=True)
class CommandStat:
    """One line of ``INFO commandstats``: calls since the statistics were reset, and time spent, µs."""

    name: str
    calls: int
    usec: int
    usec_per_call: float
    failed_calls: int = 0
    rejected_calls: int = 0


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Memory, eviction, command and keyspace facts; ``None`` means the provider did not say."""

    used_memory: int | None = None
    maxmemory: int | None = None
    maxmemory_policy: str | None = None
    used_memory_rss: int | None = None
    #: ``allocator_frag_*`` when the server reports them (true allocator fragmentation), else
    #: ``mem_fragmentation_*`` (RSS against used memory, which also counts the process's own overhead).
    fragmentation_ratio: float | None = None
    fragmentation_bytes: int | None = None
    fragmentation_source: str | None = None
    evicted_keys: int | None = None
    expired_keys: int | None = None
    #: Keys and keys with a TTL, summed over every database (``INFO keyspace``).
    keys: int | None = None
    expires: int | None = None
    commands: tuple[CommandStat, ...] = ()
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def keys_without_ttl(self) -> int | None:
        """Keys that never expire: ``keys - expires`` over every database."""
        if self.keys is None or self.expires is None:
            return None
        return max(0, self.keys - self.expires)


async def read_server_info(redis: RedisService) -> ServerInfo:
    """Read the four sections (four commands, each bounded by ``operation_timeout`` seconds).

    Raises :class:`~labsession.errors.RedisUnavailable` only when the store does not answer;
    a refused section is noted in ``unknown``.
    """
    unknown: dict[str, str] = {}
    memory = await redis.info("memory", unknown)
    stats = await redis.info("stats", unknown)
    commandstats = await redis.info("commandstats", unknown)
    keyspace = await redis.info("keyspace", unknown)
    ratio, excess, source = _fragmentation(memory)
    keys, expires = _keyspace_totals(keyspace, hidden="INFO keyspace" in unknown)
    return ServerInfo(
        used_memory=_int(memory.get("used_memory")),
        maxmemory=_int(memory.get("maxmemory")),
        maxmemory_policy=_text(memory.get("maxmemory_policy")),
        used_memory_rss=_int(memory.get("used_memory_rss")),
        fragmentation_ratio=ratio,
        fragmentation_bytes=excess,
        fragmentation_source=source,
        evicted_keys=_int(stats.get("evicted_keys")),
        expired_keys=_int(stats.get("expired_keys")),
        keys=keys,
        expires=expires,
        commands=parse_commandstats(commandstats),
        unknown=unknown,
    )


def _fragmentation(memory: dict[str, Any]) -> tuple[float | None, int | None, str | None]:
    for prefix in ("allocator_frag", "mem_fragmentation"):
        ratio = _float(memory.get(f"{prefix}_ratio"))
        if ratio is None:
            continue
        excess = _int(memory.get(f"{prefix}_bytes"))
        if excess is None and prefix == "mem_fragmentation":
            rss, used = _int(memory.get("used_memory_rss")), _int(memory.get("used_memory"))
            excess = rss - used if rss is not None and used is not None else None
        return ratio, excess, prefix
    return None, None, None


def _keyspace_totals(keyspace: dict[str, Any], *, hidden: bool) -> tuple[int | None, int | None]:
    """Sum ``keys`` and ``expires`` over ``db0``, ``db1``…; an empty server lists no database (0, 0)."""
    if hidden:
        return None, None
    keys = expires = 0
    for name, value in keyspace.items():
        if str(name).startswith("db") and isinstance(value, dict):
            keys += _int(value.get("keys")) or 0
            expires += _int(value.get("expires")) or 0
    return keys, expires


def parse_commandstats(section: dict[str, Any]) -> tuple[CommandStat, ...]:
    """``INFO commandstats`` (as redis-py parses it) as :class:`CommandStat` rows, most total time first."""
    rows = []
    for key, value in section.items():
        if not str(key).startswith("cmdstat_") or not isinstance(value, dict):
            continue
        calls = _int(value.get("calls")) or 0
        usec = _int(value.get("usec")) or 0
        per_call = _float(value.get("usec_per_call"))
        rows.append(
            CommandStat(
                name=str(key).removeprefix("cmdstat_"),
                calls=calls,
                usec=usec,
                usec_per_call=per_call if per_call is not None else (usec / calls if calls else 0.0),
                failed_calls=_int(value.get("failed_calls")) or 0,
                rejected_calls=_int(value.get("rejected_calls")) or 0,
            )
        )
    return tuple(sorted(rows, key=lambda r: (-r.usec, r.name)))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
