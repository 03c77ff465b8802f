"""Why a first connection failed, when the reason is a REDIS_URL that does not fit its server.

:func:`explain` refines a :class:`~labsession.errors.RedisUnavailable` from a failed connect:

- ``rediss://`` whose TLS handshake got no answer (``TIMEOUT``) while the same port answers a
  plain-text ``PING`` in the Redis protocol is ``TLS_NOT_SPOKEN``: a plain port, not a firewall.
  A port that answers neither way stays ``TIMEOUT``.
- ``DB_OUT_OF_RANGE`` names the database number REDIS_URL asks for.

The plain-text probe sends ``PING`` and nothing else (no credentials), reads one byte and is
bounded by ``connect_timeout`` seconds.
"""

from __future__ import annotations

import asyncio

from ..errors import RedisCause, RedisUnavailable
from ..settings import Settings
from .classify import database_remedy, remedy

__all__ = ["answers_plain_text", "explain"]


async def answers_plain_text(host: str, port: int, *, within: float) -> bool:
    """True when ``host:port`` answers a plain-text ``PING`` with a Redis reply (``+PONG`` or an
    error such as ``-NOAUTH``) within ``within`` seconds; False for silence, a close or TLS."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"PING\r\n")
            await writer.drain()
            first = await reader.read(1)
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.transport.abort()  # nothing to flush: a reset is the quickest goodbye
    return first in (b"+", b"-")


async def explain(error: RedisUnavailable, settings: Settings) -> RedisUnavailable:
    """``error`` from connecting with ``settings``, with the cause or the detail made exact where
    the URL is at fault (see the module's description); otherwise ``error`` itself."""
    if (
        error.cause is RedisCause.TIMEOUT
        and settings.tls
        and settings.scheme != "unix"
        and await answers_plain_text(settings.host, settings.port or 6379, within=settings.connect_timeout)
    ):
        return RedisUnavailable(
            RedisCause.TLS_NOT_SPOKEN,
            settings.endpoint,
            f"{remedy(RedisCause.TLS_NOT_SPOKEN)} (the TLS handshake got no answer, while a plain-text "
            "PING on the same port was answered)",
        )
    if error.cause is RedisCause.DB_OUT_OF_RANGE:
        what = error.detail.removeprefix(remedy(error.cause))  # " (ResponseError: ...)"
        return RedisUnavailable(error.cause, error.endpoint, f"{database_remedy(settings.db)}{what}")
    return error
