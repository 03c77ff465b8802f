"""Redis Cluster round trips for listing: one write per master for a batch of keys, and the
redis-py cluster pipeline for whatever that could not answer for sure (MOVED, ASK, TRYAGAIN).

Only the session listing uses these; they live in the store layer because they speak the Redis
protocol and bound their waits with the store's :class:`~labsession.store.deadline.Deadline`.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from redis import exceptions as rx

from .deadline import Deadline

__all__ = ["cluster_pipeline_read", "key_bytes", "no_error", "node_round_trip", "uncertain"]


async def cluster_pipeline_read(client: Any, keys: list[Any], with_ttl: bool) -> list[Any]:
    """``GET`` (then ``TTL`` when asked) of each key through redis-py's cluster pipeline, replies
    in order, an error in its reply's place (``raise_on_error=False``).

    The pipeline follows MOVED and ASK and waits out TRYAGAIN. A lost connection, a timeout or
    CLUSTERDOWN it only retries when it raises: such replies are asked again after the client
    reconnects and reloads the slot map, as its own retry does, up to the client's retries.
    """
    step = 2 if with_ttl else 1
    replies: list[Any] = [None] * (len(keys) * step)
    todo = list(range(len(keys)))
    for attempt in range(1 + client.retry.get_retries()):
        if attempt:
            await client.aclose()  # what redis-py's pipeline does before trying again
            await asyncio.sleep(0.25)
        async with client.pipeline(transaction=False) as pipe:
            for index in todo:
                pipe.get(keys[index])
                if with_ttl:
                    pipe.ttl(keys[index])
            answers = await pipe.execute(raise_on_error=False)
        for n, index in enumerate(todo):
            replies[index * step : index * step + step] = answers[n * step : n * step + step]
        todo = [i for i in todo if any(isinstance(r, _RETRY) for r in replies[i * step : i * step + step])]
        if not todo:
            break
    return replies


#: Errors redis-py's cluster pipeline retries (``RedisCluster.ERRORS_ALLOW_RETRY``).
_RETRY: tuple[type[Exception], ...] = (rx.ConnectionError, rx.TimeoutError, rx.ClusterDownError, rx.SlotNotCoveredError)
#: The commands of one key in the Redis protocol, to be filled in with (length, key) per command.
_GET = b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n"
_TTL = b"*2\r\n$3\r\nTTL\r\n$%d\r\n%b\r\n"
_ASKING = b"*1\r\n$6\r\nASKING\r\n"


async def node_round_trip(
    node: Any, keys: list[Any], with_ttl: bool, bound: float | None, asking: bool = False
) -> list[Any]:
    """Replies to ``GET`` (then ``TTL`` when asked) of each key from one cluster node: one write
    on one of its connections, then every reply read back, an error reply in its place. With
    ``asking`` each command follows an ``ASKING`` (an ASK redirection's target).

    What redis-py's ``ClusterNode.execute_pipeline`` does, for these commands only: each key's
    commands are packed by one format operation, and the replies are read without a timer each
    (``bound`` seconds bound the whole round trip instead). A connection left with replies
    unread (an error, a cancellation) is closed, never reused.

    Public members of redis-py only: the node's ``acquire_connection``, ``disconnect_if_needed``
    and ``release`` (what its own ``execute_pipeline`` uses), and the connection's
    ``send_packed_command``, ``read_response`` (``timeout=math.inf`` is its documented "no
    timeout") and ``disconnect``.
    """
    commands = (_GET, _TTL) if with_ttl else (_GET,)
    template = b"".join(_ASKING + c for c in commands) if asking else b"".join(commands)
    payload = b"".join([template % ((len(k), k) * len(commands)) for k in map(key_bytes, keys)])
    expected = len(keys) * len(commands) * (2 if asking else 1)
    replies: list[Any] = []
    connection = node.acquire_connection()
    try:
        await node.disconnect_if_needed(connection)
        async with Deadline(bound):
            await connection.send_packed_command(payload)
            for _ in range(expected):
                try:
                    replies.append(await connection.read_response(timeout=math.inf))
                except rx.ResponseError as exc:  # an error reply; the connection is still in step
                    replies.append(exc)
    finally:
        try:
            if len(replies) < expected:
                await connection.disconnect(nowait=True)
            await node.disconnect_if_needed(connection)
        finally:
            node.release(connection)
    return replies[1::2] if asking else replies


def key_bytes(key: Any) -> bytes:
    return key if type(key) is bytes else str(key).encode()


def uncertain(reply: Any) -> bool:
    """True for an error reply other than WRONGTYPE (MOVED, ASK, TRYAGAIN, CLUSTERDOWN …)."""
    return isinstance(reply, BaseException) and not str(reply).startswith("WRONGTYPE")


def no_error(reply: Any) -> Any:
    """A pipeline reply, or the error it holds raised."""
    if isinstance(reply, BaseException):
        raise reply
    return reply
