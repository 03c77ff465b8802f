"""Does Redis accept a write? One probe key set and deleted, for runs that may write.

A read-only check cannot see a server that refuses writes only: Redis at its memory limit with
``noeviction`` (``OOM``), a replica (``READONLY``), Upstash at its storage quota (``ERR DB
capacity quota exceeded``). Backends then fail to create and extend sessions while every read
works. The probe key (:data:`WRITE_PROBE_PREFIX` + a random hex id, 8 bytes of value) lives at
most :data:`WRITE_PROBE_TTL_MS` even if its ``DEL`` never arrives.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from redis import exceptions as rx

from ..errors import RedisCause, RedisUnavailable
from ..masking import mask_text
from ..store.service import RedisService

__all__ = ["WRITE_PROBE_PREFIX", "WRITE_PROBE_TTL_MS", "WriteResult", "probe_write"]

#: Keys the write probe sets; nothing else in labsession or the TypeScript backend uses the prefix.
WRITE_PROBE_PREFIX = "labsession:probe:write:"
#: Milliseconds a probe key lives if its ``DEL`` is lost.
WRITE_PROBE_TTL_MS = 10_000


@dataclass(frozen=True, slots=True)
class WriteResult:
    """``cause`` ``None`` when the key was written and deleted in ``elapsed_ms``; else why not, with
    the server's (masked) words in ``detail``."""

    elapsed_ms: float
    cause: RedisCause | None = None
    detail: str = ""


async def probe_write(redis: RedisService) -> WriteResult:
    """``SET`` a probe key (``PX`` :data:`WRITE_PROBE_TTL_MS`, ``NX``) and ``DEL`` it, each bounded
    by the service's operation timeout. Never raises for a refusal: that is the answer."""
    key = WRITE_PROBE_PREFIX + uuid.uuid4().hex
    started = time.perf_counter()
    try:
        async with redis.guard("SET (write probe)"):
            await redis.client.set(key, b"labsesn", px=WRITE_PROBE_TTL_MS, nx=True)
        async with redis.guard("DEL (write probe)"):
            await redis.client.delete(key)
    except RedisUnavailable as exc:
        return WriteResult((time.perf_counter() - started) * 1000.0, exc.cause, exc.detail)
    except rx.ResponseError as exc:  # a command error the store did not classify (ACL, a renamed command)
        return WriteResult((time.perf_counter() - started) * 1000.0, RedisCause.UNKNOWN, mask_text(str(exc))[:200])
    return WriteResult((time.perf_counter() - started) * 1000.0)
