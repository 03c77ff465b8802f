"""The one SCAN walker: every key under a prefix, in batches, on a single server or every master
of a cluster. Never ``KEYS``; each SCAN call is bounded by the store's guard.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from .service import RedisService

__all__ = ["glob_escape", "scan_batches", "scan_cursor", "scan_nodes"]


def glob_escape(text: str) -> str:
    """Escape SCAN MATCH glob characters so a configured prefix matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def scan_cursor(value: Any) -> int:
    """A SCAN cursor; redis-py's cluster client returns it as ``{node name: cursor}``."""
    if isinstance(value, dict):
        return int(next(iter(value.values()), 0))
    return int(value)


def scan_nodes(client: Any) -> list[Any]:
    """``[None]`` for a single server; every primary for a cluster (a scan must cover them all)."""
    get_primaries = getattr(client, "get_primaries", None)
    if get_primaries is None:
        return [None]
    return list(get_primaries())


async def scan_batches(redis: RedisService, prefix: str, batch_size: int) -> AsyncGenerator[list[Any], None]:
    """The keys that start with ``prefix``, one SCAN reply (about ``batch_size`` keys; never an
    empty list) at a time. A key may come twice while Redis rehashes; callers must tolerate it.

    Raises :class:`~labsession.errors.RedisUnavailable` when a SCAN fails within its bound.
    """
    client = redis.client
    match = glob_escape(prefix) + "*"
    for node in scan_nodes(client):
        cursor = 0
        while True:
            async with redis.guard("SCAN"):
                if node is None:
                    reply, keys = await client.scan(cursor=cursor, match=match, count=batch_size)
                else:
                    reply, keys = await client.scan(cursor=cursor, match=match, count=batch_size, target_nodes=node)
            cursor = scan_cursor(reply)
            if keys:
                yield list(keys)
            if cursor == 0:
                break
