"""A bounded sample of the whole keyspace: which keys never expire, and which are biggest.

The walk is the one SCAN walker (:func:`~labsession.store.scan.scan_batches`) over every key,
stopped at ``max_keys`` keys or ``budget_seconds``, whichever comes first. For each SCAN batch
one pipeline asks ``TTL`` and ``MEMORY USAGE`` of every key in it: against N sampled keys and
a batch size B that is about N / B ``SCAN`` calls plus 2·N pipelined commands in 2·N / B round
trips, whatever the size of the keyspace. Both are ``@read`` commands a read-only ACL user may
run. A provider that refuses ``MEMORY USAGE`` is noted once and not asked again.

Key names are shown shortened: a session key keeps its prefix and the first 8 characters of
its id (a session id is the credential ``/terminal`` asks for); any other name at most 60 characters.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as rx

from ..errors import RedisCause
from ..masking import log_id, mask_text
from ..store.classify import classify
from ..store.scan import scan_batches
from ..store.service import RedisService
from .stats import TopK

__all__ = ["BigKey", "KeySample", "sample_keys", "shown_key"]


@dataclass(frozen=True, slots=True)
class BigKey:
    """A sampled key, shortened for display, its size in bytes (``MEMORY USAGE``) and TTL in seconds (-1: none)."""

    key: str
    bytes: int
    ttl: int


@dataclass(frozen=True, slots=True)
class KeySample:
    """What the bounded walk saw. ``complete`` is True when it reached the end of the keyspace."""

    sampled: int
    without_ttl: int
    biggest: tuple[BigKey, ...]
    #: The commonest name prefixes (up to the first ``:``) among keys without a TTL, with counts.
    no_ttl_prefixes: tuple[tuple[str, int], ...]
    complete: bool
    scan_calls: int
    elapsed_s: float
    memory_refused: str | None = None
    commands: dict[str, int] = field(default_factory=dict)


def shown_key(key: bytes | str, session_prefix: str) -> str:
    """``key`` as it may be shown: a session id shortened by :func:`~labsession.masking.log_id`, masked."""
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if session_prefix and text.startswith(session_prefix):
        return session_prefix + log_id(text[len(session_prefix) :])
    return mask_text(text if len(text) <= 60 else text[:59] + "…")


def _prefix(key: str) -> str:
    head, sep, _ = key.partition(":")
    return head + sep + "*" if sep else "(no ':' in the name)"


async def sample_keys(
    redis: RedisService,
    *,
    max_keys: int = 10_000,
    budget_seconds: float = 10.0,
    batch_size: int = 500,
    top: int = 5,
    session_prefix: str = "session:",
    memory_usage: bool = True,
) -> KeySample:
    """Walk at most ``max_keys`` keys for at most ``budget_seconds`` (checked between batches).

    Raises :class:`~labsession.errors.RedisUnavailable` when the store stops answering; a
    refused ``MEMORY USAGE`` is noted in ``memory_refused`` and the walk goes on with TTLs only.
    """
    started = time.perf_counter()
    sampled = without_ttl = scan_calls = 0
    heap: list[tuple[int, str, int]] = []
    prefixes = TopK(100)
    refused: str | None = None
    ask_memory = memory_usage
    commands = {"scan": 0, "ttl": 0, "memory|usage": 0}
    complete = True
    if max_keys <= 0:
        return KeySample(0, 0, (), (), False, 0, 0.0, None, commands)
    walk = scan_batches(redis, "", batch_size)
    try:
        async for batch in walk:
            scan_calls += 1
            keys = batch[: max_keys - sampled]
            ttls, sizes, refusal = await _read_batch(redis, keys, memory=ask_memory)
            commands["ttl"] += len(keys)
            commands["memory|usage"] += len(keys) if ask_memory else 0
            if refusal is not None:
                refused, ask_memory = refusal, False
            for key, ttl, size in zip(keys, ttls, sizes, strict=True):
                name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
                if ttl == -1:
                    without_ttl += 1
                    prefixes.add(_prefix(name))
                if size is not None:
                    item = (size, shown_key(name, session_prefix), ttl)
                    if len(heap) < top:
                        heapq.heappush(heap, item)
                    else:
                        heapq.heappushpop(heap, item)
            sampled += len(keys)
            if sampled >= max_keys or time.perf_counter() - started >= budget_seconds:
                complete = False
                break
    finally:
        await walk.aclose()
    commands["scan"] = scan_calls
    biggest = tuple(BigKey(k, s, t) for s, k, t in sorted(heap, reverse=True))
    return KeySample(
        sampled,
        without_ttl,
        biggest,
        tuple(prefixes.top(5)),
        complete,
        scan_calls,
        time.perf_counter() - started,
        refused,
        commands,
    )


async def _read_batch(
    redis: RedisService, keys: list[Any], *, memory: bool
) -> tuple[list[int], list[int | None], str | None]:
    """TTLs and sizes of ``keys`` in one pipeline; the refusal of ``MEMORY USAGE``, if any."""
    async with redis.guard("TTL/MEMORY USAGE"):
        pipe = redis.client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
            if memory:
                pipe.memory_usage(key)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    step = 2 if memory else 1
    ttls = [r if isinstance(r, int) else -2 for r in replies[::step]]
    sizes: list[int | None] = [None] * len(keys)
    refusal: str | None = None
    if memory:
        for index, reply in enumerate(replies[1::2]):
            if isinstance(reply, rx.ResponseError):
                if classify(reply) in (RedisCause.UNKNOWN, RedisCause.READ_ONLY) and refusal is None:
                    refusal = str(reply)[:160]
            elif isinstance(reply, int):
                sizes[index] = reply
    return ttls, sizes, refusal
