"""TTL inspection: a bounded, throttled SCAN of the session keys, aggregated as it streams.

Memory does not grow with the number of keys: counters, a fixed-bin TTL histogram, a
bounded heavy-hitters counter for users (:class:`~labsession.probes.stats.TopK`) and a few
redacted samples per anomaly. Only one SCAN batch of values is held at a time. Session ids
are the only credential ``/terminal`` asks for, so samples and findings show an id's first 8
characters, unless the caller asks for whole keys (``show_ids``: the key an engineer must fix).
Stored times (``expiresAt``, ``createdAt``) are shown as UTC times with how far away they are.

SCAN may return a key twice while Redis rehashes, and keys come and go during the walk:
the counts describe the keyspace as it was walked, not one instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis import exceptions as rx

from ..checks import CheckResult, Status
from ..errors import RedisCause, RedisUnavailable
from ..masking import log_id, redact
from ..sessions.codec import decode_json
from ..sessions.service import ENDED_TTL_SECONDS
from ..store.scan import scan_batches
from ..store.service import RedisService
from .stats import Histogram, TopK

__all__ = [
    "DEMO_USER_PREFIX",
    "Anomaly",
    "TtlInspection",
    "delete_demo_sessions",
    "inspect_ttls",
    "seed_demo_sessions",
    "short_id",
]

#: TTL histogram bins: upper bounds in seconds, and their labels (the last is the overflow bin).
TTL_EDGES = (0, 60, 300, 1800, 3600, 7200, 9000, 86400)
TTL_LABELS = ("no TTL", "≤ 1 min", "≤ 5 min", "≤ 30 min", "≤ 1 h", "≤ 2 h", "≤ 2.5 h", "≤ 1 day", "> 1 day")
_MAX_STATUSES = 50
#: Keys aggregated between two yields to the event loop (so the next batch is fetched meanwhile).
_SLICE = 250


class Anomaly(StrEnum):
    """What can be wrong with one stored session key."""

    NO_TTL = "no_ttl"
    TTL_TOO_LONG = "ttl_too_long"
    CLOCK_SKEW = "clock_skew"
    CORRUPT = "corrupt"
    ENDED_LINGERING = "ended_lingering"
    PAST_EXPIRY = "past_expiry"


_ANOMALY_TEXT = {
    Anomaly.NO_TTL: ("keys without a TTL (-1): they never expire, a leak", Status.FAIL),
    Anomaly.TTL_TOO_LONG: ("TTLs longer than a session may live", Status.WARN),
    Anomaly.CLOCK_SKEW: (
        "active sessions whose expiresAt disagrees with the TTL (clock skew between writers)",
        Status.WARN,
    ),
    Anomaly.CORRUPT: ("values that are not session JSON (reported, never deleted)", Status.FAIL),
    Anomaly.ENDED_LINGERING: (f"ended or expired sessions kept longer than {ENDED_TTL_SECONDS} s", Status.WARN),
    Anomaly.PAST_EXPIRY: ("sessions still marked active after their expiresAt", Status.WARN),
}


#: The short form of a session id shown in samples; kept under this name for the notebooks.
short_id = log_id


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def when(ms: Any, now_ms: int) -> Any:
    """A stored time in milliseconds since the epoch as ``2026-11-26 06:30:12 UTC (in 4 min)``;
    anything that is not such a number is returned as it is (a corrupt record shows what it holds)."""
    if type(ms) not in (int, float) or not 0 <= ms < 253_402_300_800_000:  # up to the year 9999
        return ms
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    left = (ms - now_ms) / 1000
    return f"{moment} ({'in ' + _ago(left) if left >= 0 else _ago(left) + ' ago'})"


@dataclass(slots=True)
class TtlInspection:
    """The aggregate of one walk over the session keys. Durations are seconds."""

    key_prefix: str
    max_ttl_seconds: int
    skew_tolerance_seconds: float
    limit: int | None
    scanned: int = 0
    batches: int = 0
    vanished: int = 0
    truncated: bool = False
    #: Why the walk stopped early: ``"key limit"`` or ``"time budget"`` (empty when it did not).
    stop_reason: str = ""
    elapsed_seconds: float = 0.0
    by_status: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    histogram: Histogram = field(default_factory=lambda: Histogram(TTL_EDGES, TTL_LABELS))
    users: TopK = field(default_factory=lambda: TopK(1000))
    skew_max_seconds: float = 0.0
    sample_size: int = 3
    #: Show whole keys in samples and findings instead of an id's first 8 characters.
    show_ids: bool = False
    #: The keys (whole, or shortened) of each anomaly's samples, for the findings.
    sample_keys: dict[str, list[str]] = field(default_factory=dict)

    # -- aggregation ---------------------------------------------------------------------------

    def _sample(self, anomaly: Anomaly, key: str | bytes, ttl: int, value: Any, now_ms: int) -> None:
        bucket = self.samples.setdefault(anomaly.value, [])
        if len(bucket) >= self.sample_size:
            return
        text_key = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        session_id = text_key[len(self.key_prefix) :]
        shown_key = text_key if self.show_ids else self.key_prefix + log_id(session_id)
        shown: dict[str, Any] = {"session": shown_key, "ttl": "none" if ttl == -1 else f"{ttl} s"}
        if isinstance(value, dict):
            # Keep the diagnostic fields only; other ids and secrets stay out of the output.
            for name in ("status", "userId", "labId", "expiresAt", "createdAt"):
                if name in value:
                    shown[name] = when(value[name], now_ms) if name in ("expiresAt", "createdAt") else value[name]
        elif isinstance(value, str):
            shown["value"] = value[:40] + ("…" if len(value) > 40 else "")
        self.samples[anomaly.value] = [*bucket, redact(shown)]
        self.sample_keys.setdefault(anomaly.value, []).append(shown_key)

    def add(self, key: str | bytes, raw: bytes | str | None, ttl: int, now_ms: int) -> None:
        """Fold one key (its value and TTL in seconds, as read at ``now_ms``) into the aggregate.

        The hot path of a million-key walk: exact ``type()`` checks (JSON gives plain types) and
        one decoder call per value.
        """
        if raw is None or ttl == -2:
            self.vanished += 1  # expired between SCAN and GET
            return
        self.scanned += 1
        self.histogram.add(ttl if ttl >= 0 else 0)
        if ttl == -1:
            self.anomalies[Anomaly.NO_TTL] += 1
        elif ttl > self.max_ttl_seconds:
            self.anomalies[Anomaly.TTL_TOO_LONG] += 1
        try:
            data = decode_json(raw)
        except ValueError:  # UnicodeDecodeError is one too
            data = None
        status = expires_at = None
        if type(data) is dict:
            status = data.get("status")
            expires_at = data.get("expiresAt")
        if type(status) is not str or type(expires_at) not in (int, float):
            self.anomalies[Anomaly.CORRUPT] += 1
            self.by_status["(corrupt)"] += 1
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            self._sample(Anomaly.CORRUPT, key, ttl, "(not JSON)" if data is None else text, now_ms)
            if ttl == -1:
                self._sample(Anomaly.NO_TTL, key, ttl, None, now_ms)
            return
        assert isinstance(data, dict) and isinstance(status, str) and isinstance(expires_at, int | float)
        if status in self.by_status or len(self.by_status) < _MAX_STATUSES:
            self.by_status[status] += 1
        else:
            self.by_status["(other)"] += 1
        user = data.get("userId")
        self.users.add(user if isinstance(user, str) else "(none)")
        if ttl == -1:
            self._sample(Anomaly.NO_TTL, key, ttl, data, now_ms)
        elif ttl > self.max_ttl_seconds:
            self._sample(Anomaly.TTL_TOO_LONG, key, ttl, data, now_ms)
        if status == "active":
            left = (float(expires_at) - now_ms) / 1000.0
            if left <= 0:
                self.anomalies[Anomaly.PAST_EXPIRY] += 1
                self._sample(Anomaly.PAST_EXPIRY, key, ttl, data, now_ms)
            elif ttl > 0:
                # Redis rounds the TTL down to a whole second; the writer rounds up.
                skew = abs(left - ttl)
                self.skew_max_seconds = max(self.skew_max_seconds, skew)
                if skew > self.skew_tolerance_seconds:
                    self.anomalies[Anomaly.CLOCK_SKEW] += 1
                    self._sample(Anomaly.CLOCK_SKEW, key, ttl, data, now_ms)
        elif status in ("destroyed", "expired") and (ttl == -1 or ttl > ENDED_TTL_SECONDS + 1):
            self.anomalies[Anomaly.ENDED_LINGERING] += 1
            self._sample(Anomaly.ENDED_LINGERING, key, ttl, data, now_ms)

    # -- views ---------------------------------------------------------------------------------

    def top_users(self, n: int = 10) -> list[dict[str, Any]]:
        """The users with most sessions (counts are lower bounds once ``users.exact`` is False)."""
        return [{"userId": user, "sessions": count} for user, count in self.users.top(n)]

    def status_rows(self) -> list[dict[str, Any]]:
        return [{"status": s, "count": c} for s, c in self.by_status.most_common()]

    def anomaly_rows(self) -> list[dict[str, Any]]:
        return [
            {"anomaly": a.value, "count": self.anomalies.get(a.value, 0), "meaning": _ANOMALY_TEXT[a][0]}
            for a in Anomaly
        ]

    def checks(self) -> list[CheckResult]:
        out: list[CheckResult] = []
        rate = self.scanned / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0
        scan_text = (
            f"read {self.scanned} session keys in {self.batches} batches, {self.elapsed_seconds:.2f} s "
            f"({rate:.0f} keys/s)"
        )
        if self.truncated:
            reason = self.stop_reason or "key limit"
            out.append(
                CheckResult(
                    "scan",
                    Status.WARN,
                    f"{scan_text}; stopped at the {reason}: the counts below cover part of the keyspace",
                    {"scanned": self.scanned, "active": self.by_status.get("active", 0)},
                )
            )
        else:
            out.append(
                CheckResult(
                    "scan",
                    Status.PASS,
                    scan_text,
                    {"scanned": self.scanned, "vanished": self.vanished, "active": self.by_status.get("active", 0)},
                )
            )
        for anomaly in Anomaly:
            count = self.anomalies.get(anomaly.value, 0)
            meaning, bad = _ANOMALY_TEXT[anomaly]
            data: dict[str, Any] = {"count": count}
            if anomaly is Anomaly.CLOCK_SKEW:
                data["maxSkewSeconds"] = round(self.skew_max_seconds, 3)
            if count:
                keys = self.sample_keys.get(anomaly.value, [])
                data["sessions"] = keys
                named = f": {', '.join(keys)}{', …' if count > len(keys) else ''}" if keys else ""
                out.append(CheckResult(f"ttl: {anomaly.value}", bad, f"{count} {meaning}{named}", data))
            else:
                out.append(CheckResult(f"ttl: {anomaly.value}", Status.PASS, f"none of the {meaning}", data))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "batches": self.batches,
            "truncated": self.truncated,
            "elapsedSeconds": round(self.elapsed_seconds, 3),
            "byStatus": dict(self.by_status),
            "anomalies": dict(self.anomalies),
            "histogram": self.histogram.rows(),
            "topUsers": self.top_users(),
            "topUsersExact": self.users.exact,
        }


#: The TTLs of a batch of keys in one reply (a read-only script: one call instead of one per key).
_TTLS = "local out = {} for i, k in ipairs(KEYS) do out[i] = redis.call('TTL', k) end return out"


class _Reader:
    """Reads the values and TTLs of a batch of keys in one round trip: ``MGET`` plus a read-only
    script (``EVAL_RO``) for the TTLs where the server and the user allow it, else a pipeline
    of one TTL per key.

    Two requests per batch instead of two per key: cheaper on a provider that bills per
    request, and far less client work. A user without ``@scripting`` or a server before 7.0
    falls back to the pipeline; a cluster (a batch spans hash slots) always uses GET + TTL per key.
    """

    def __init__(self, redis: RedisService, *, script: bool, cluster: bool) -> None:
        self.redis = redis
        self.script = script and not cluster
        self.cluster = cluster

    async def read(self, keys: list[Any]) -> tuple[list[Any], list[Any]]:
        """``(values, ttls)`` for ``keys``, in order; a value is ``None`` for a key gone meanwhile."""
        client = self.redis.client
        if self.script:
            try:
                async with self.redis.guard("scan read"):
                    async with client.pipeline(transaction=False) as pipe:
                        pipe.mget(keys)
                        pipe.execute_command("EVAL_RO", _TTLS, len(keys), *keys)
                        values, ttls = await pipe.execute()
                return list(values), list(ttls)
            except (rx.ResponseError, RedisUnavailable) as exc:
                cause = getattr(exc, "cause", None)
                if cause not in (None, RedisCause.READ_ONLY, RedisCause.UNKNOWN):
                    raise
                self.script = False  # not allowed or not known here: no script from now on
        async with self.redis.guard("scan read"):
            async with client.pipeline(transaction=False) as pipe:
                if self.cluster:
                    for key in keys:
                        pipe.get(key)
                else:
                    pipe.mget(keys)
                for key in keys:
                    pipe.ttl(key)
                replies = list(await pipe.execute())
        if self.cluster:
            return replies[: len(keys)], replies[len(keys) :]
        return list(replies[0]), replies[1:]


async def inspect_ttls(
    redis: RedisService,
    *,
    key_prefix: str | None = None,
    batch_size: int = 1000,
    limit: int | None = 100_000,
    pause: float = 0.0,
    max_ttl_seconds: int = 86_400,
    skew_tolerance_seconds: float = 5.0,
    sample_size: int = 3,
    deadline: float | None = None,
    use_script: bool = False,
    show_ids: bool = False,
) -> TtlInspection:
    """Walk the session keys with SCAN (``batch_size`` per call), reading value and TTL in one
    round trip per batch; stop after ``limit`` keys or at ``deadline`` (a ``time.monotonic()``
    value); sleep ``pause`` seconds between batches. Read-only. The next batch is fetched
    while the current one is aggregated; only those two batches are ever held.

    ``use_script`` reads a batch's TTLs with one read-only script (``EVAL_RO``) instead of one
    pipelined TTL per key: one request instead of ``batch_size`` on a provider that bills per
    request, but it needs ``@scripting``, which a read-only ACL user usually lacks (a refusal is
    a security event on the server), so it is off unless asked for.

    ``show_ids`` puts whole keys in samples and findings (an id opens that session's terminal:
    only when asked for); by default they show an id's first 8 characters.

    Raises :class:`~labsession.errors.RedisUnavailable` when the store fails mid-walk.
    """
    prefix = key_prefix or redis.settings.key_prefix
    result = TtlInspection(
        prefix, max_ttl_seconds, skew_tolerance_seconds, limit, sample_size=sample_size, show_ids=show_ids
    )
    started = time.perf_counter()
    cluster = hasattr(redis.client, "get_primaries")
    reader = _Reader(redis, script=use_script, cluster=cluster)
    queue: asyncio.Queue[tuple[list[Any], list[Any], list[Any], int] | None] = asyncio.Queue(maxsize=2)

    async def produce() -> None:
        """SCAN and read batches ahead of the aggregation (at most two batches in memory)."""
        seen = 0
        try:
            async with contextlib.aclosing(scan_batches(redis, prefix, batch_size)) as batches:
                async for batch in batches:
                    if seen and deadline is not None and time.monotonic() >= deadline:
                        result.truncated = True
                        result.stop_reason = "time budget"
                        return
                    if seen and pause:
                        await asyncio.sleep(pause)
                    keys = batch
                    if limit is not None and seen + len(keys) > limit:
                        keys = keys[: max(0, limit - seen)]
                        result.truncated = True
                        result.stop_reason = f"key limit {limit}"
                    if keys:
                        seen += len(keys)
                        values, ttls = await reader.read(keys)
                        await queue.put((keys, values, ttls, int(time.time() * 1000)))
                    if result.truncated:
                        return
        finally:
            await queue.put(None)

    producer = asyncio.ensure_future(produce())
    try:
        while (item := await queue.get()) is not None:
            keys, values, ttls, now_ms = item
            add = result.add
            for start in range(0, len(keys), _SLICE):
                for index in range(start, min(start + _SLICE, len(keys))):
                    add(keys[index], values[index], int(ttls[index]), now_ms)
                await asyncio.sleep(0)  # let the producer send the next request meanwhile
            result.batches += 1
        await producer  # re-raises a store failure
    finally:
        if not producer.done():
            producer.cancel()
    result.elapsed_seconds = time.perf_counter() - started
    return result


#: Demo sessions (written only to an embedded store) belong to users named like this.
DEMO_USER_PREFIX = "labsession-demo-"


async def seed_demo_sessions(redis: RedisService, count: int) -> list[str]:
    """Write ``count`` healthy demo sessions with varied lifetimes and a few ended ones, for an
    embedded store only (the notebooks never call this on a real target). Returns their ids."""
    from ..sessions.service import LabSessionService

    ids: list[str] = []
    lifetimes = (5, 20, 45, 90, 120)
    for index in range(count):
        service = LabSessionService(
            redis, redis.settings.with_changes(lab_timeout_minutes=lifetimes[index % len(lifetimes)])
        )
        user = f"{DEMO_USER_PREFIX}{min(index % 7, index % 3) + 1}"
        session = await service.create(
            user, f"lab-{index % 4}", f"purchase-{index}", base_url="ws://demo.invalid", extra={"probe": True}
        )
        ids.append(session.session_id)
        if index % 6 == 5:
            await service.end(session.session_id)
    return ids


async def delete_demo_sessions(redis: RedisService, ids: list[str]) -> int:
    """Delete the demo sessions; returns how many keys were removed."""
    if not ids:
        return 0
    async with redis.guard("demo cleanup"):
        removed = await redis.client.delete(*(redis.settings.key_prefix + i for i in ids))
    return int(removed)
