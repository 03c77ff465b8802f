"""Runbook "Invalid session": why a WebSocket connect was refused with close 4000.

Steps, each a check with its evidence, in the order an on-call engineer would take them:

1. ``store``: the Redis that the runbook's URL names answers PING.
2. ``shared store``: every backend instance (a load-balancer URL sampled several times)
   reads one data set (one server, or a master and its replicas, told apart by replication
   id) through one database number and key prefix, and it is that Redis' data.
3. ``replication``: each instance that reads through a replica catches up with the master
   within the lookup retry window (offsets in bytes, lag in ms).
4. ``clocks``: the instances' clocks (HTTP ``Date`` headers) agree with Redis' clock.
5. ``session key`` (with a session id): the key exists; TTL, status, ``expiresAt`` and age
   against the grace period.
6. ``eviction``: ``evicted_keys`` and the ``maxmemory-policy``.
7. ``backend lookups`` (with a session id and backend URLs): what the instances answer.
8. ``visibility``: cross-connection read-after-write lag against the lookup retry window
   (writes a probe key, so it is skipped when ``read_only``).

It ends with one :class:`InvalidSessionCause` and a plain remediation.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..checks import CheckResult, Report, Status
from ..errors import ConfigError, InvalidSessionId, RedisUnavailable
from ..masking import get_logger
from ..probes.visibility import LOOKUP_RETRY_WINDOW_MS, VISIBILITY_PREFIX, measure_visibility
from ..sessions.eviction import EVICTION_REMEDY, judge_eviction
from ..sessions.model import SessionStatus, check_session_id
from ..sessions.service import LabSessionService, SessionRecord
from ..settings import Settings
from ..store.classify import remedy as redis_remedy
from ..store.service import RedisHealth, RedisService, StoreIdentity
from .base import Diagnosis, conclude
from .clocks import judge_clocks
from .instances import (
    InstanceSample,
    StoreComparison,
    compare_stores,
    sample_instance,
    sample_instances,
    validate_through_backends,
)
from .replication import ReplicaLag, judge_replication, measure_replica_lag

__all__ = [
    "LOOKUP_RETRY_WINDOW_MS",
    "REMEDIES",
    "STEPS",
    "InvalidSessionCause",
    "InvalidSessionInputs",
    "diagnose_invalid_session",
    "eviction_check",
    "inputs_from_parameters",
    "judge_key",
]

log = get_logger(__name__)

NAME = "invalid_session"


class InvalidSessionCause(StrEnum):
    """The one cause the runbook names."""

    STORE_UNREACHABLE = "STORE_UNREACHABLE"
    INSTANCES_DO_NOT_SHARE_STORE = "INSTANCES_DO_NOT_SHARE_STORE"
    INSTANCES_USE_DIFFERENT_DB_OR_PREFIX = "INSTANCES_USE_DIFFERENT_DB_OR_PREFIX"
    SESSION_MISSING = "SESSION_MISSING"
    EVICTION_SUSPECTED = "EVICTION_SUSPECTED"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    SESSION_ENDED = "SESSION_ENDED"
    SESSION_NOT_ACTIVE = "SESSION_NOT_ACTIVE"
    SESSION_CORRUPT = "SESSION_CORRUPT"
    CLOCK_SKEW = "CLOCK_SKEW"
    VISIBILITY_LAG = "VISIBILITY_LAG"
    NO_FAULT_FOUND = "NO_FAULT_FOUND"


C = InvalidSessionCause

REMEDIES: dict[InvalidSessionCause, str] = {
    C.STORE_UNREACHABLE: "the backends cannot read sessions because Redis does not answer; run the "
    "redis_connectivity runbook for the exact reason and fix",
    C.INSTANCES_DO_NOT_SHARE_STORE: "backend instances use different stores (or one keeps sessions in memory), "
    "so a session made on one is unknown to another; set the same REDIS_URL on every instance and redeploy them",
    C.INSTANCES_USE_DIFFERENT_DB_OR_PREFIX: "backend instances (or this runbook) read one Redis but different "
    "database numbers or key prefixes, so a session written under one is invisible under another; use the same "
    "database number in every REDIS_URL (the /N at its end) and the same SESSION_KEY_PREFIX everywhere",
    C.SESSION_MISSING: "no key for this session: it never reached this Redis, or its TTL ran out; check the id the "
    "client sends and that the creating instance writes to this Redis",
    C.EVICTION_SUSPECTED: f"Redis is evicting keys under memory pressure, session keys included: {EVICTION_REMEDY}",
    C.SESSION_EXPIRED: "the session's time ran out; the user must start the lab again (or extend sessions "
    "before expiresAt)",
    C.SESSION_ENDED: "the session was ended (status destroyed); the client must start a new session instead of "
    "reconnecting to the old one",
    C.SESSION_NOT_ACTIVE: "the session is stuck in a non-active status past the grace period; find why creation "
    "never finished (backend logs for this session id)",
    C.SESSION_CORRUPT: "the stored value is not a valid session; inspect the key and the writer that produced it "
    "(it was left in place)",
    C.CLOCK_SKEW: "an instance's clock is off the others' (or Redis') by more than sessions tolerate, so it judges "
    "live sessions expired (or ended ones alive); synchronize every host's clock (NTP: chrony or the platform's "
    "time service) and restart the instance",
    C.VISIBILITY_LAG: "a write on one connection becomes visible on another (a replica, another region) later than "
    "the lookup retry window; point every instance that validates sessions at the primary or fix the replica's "
    "link, else lengthen the WebSocket lookup retries or route the first lookup to the creating instance",
    C.NO_FAULT_FOUND: "the session is valid everywhere the runbook can see; look at the client: its WebSocket "
    "URL, scheme (ws vs wss), host and Origin",
}

_NO_ID_HINT = "run again with the session_id a client was refused with to check that session"

#: Order of precedence when several steps point at a cause: the first one found wins.
_PRECEDENCE = list(InvalidSessionCause)
#: Causes that, once proven, explain instances answering differently about one session.
_EXPLAINS_LOOKUPS = (
    C.INSTANCES_DO_NOT_SHARE_STORE,
    C.INSTANCES_USE_DIFFERENT_DB_OR_PREFIX,
    C.CLOCK_SKEW,
    C.VISIBILITY_LAG,
)
#: The steps, in order, each recorded as one check before the final ``cause``.
STEPS = (
    "store",
    "shared store",
    "replication",
    "clocks",
    "session key",
    "eviction",
    "backend lookups",
    "visibility",
)
#: Between two polls of a replica's offset, ms; the lookup retries themselves are 100 ms apart.
REPLICA_POLL_MS = 100.0


@dataclass(frozen=True, slots=True)
class InvalidSessionInputs:
    """What the runbook looks at. Times in milliseconds unless named otherwise.

    ``session_id`` ``None`` skips the per-session steps; ``backend_urls`` empty skips the
    instance steps; ``read_only`` skips the visibility probe (the one step that writes).
    """

    session_id: str | None = None
    backend_urls: tuple[str, ...] = ()
    samples_per_url: int = 6
    lookup_retry_window_ms: float = LOOKUP_RETRY_WINDOW_MS
    read_only: bool = True
    visibility_samples: int = 5
    #: Seconds per HTTP request to a backend.
    http_timeout: float = 3.0
    #: Largest tolerated clock difference between an instance and Redis, seconds; ``None``: the
    #: session grace period (``SESSION_GRACE_SECONDS``), past which a session still being
    #: created already looks stale on the instance ahead.
    max_clock_skew_s: float | None = None
    #: Most replica-reading instances whose lag is timed (each costs a request per 100 ms).
    max_replicas: int = 4

    def __post_init__(self) -> None:
        if self.session_id is not None:
            check_session_id(self.session_id)


def inputs_from_parameters(
    params: Mapping[str, Any], *, writes_allowed: bool, backend_urls: Sequence[str] | None = None
) -> InvalidSessionInputs:
    """:class:`InvalidSessionInputs` from a notebook's validated parameters; ``backend_urls``
    (the resolved target's, e.g. an embedded one's) replaces the parameter when given.

    Raises :class:`~labsession.errors.ConfigError` naming ``session_id`` when it is not a well-formed session id.
    """
    sid = str(params.get("session_id") or "").strip() or None
    if sid is not None:
        try:
            check_session_id(sid)
        except InvalidSessionId as exc:
            raise ConfigError("parameter 'session_id'", f"is {exc.message}") from None
    timeout = float(params.get("timeout_seconds") or 3.0)
    return InvalidSessionInputs(
        session_id=sid,
        backend_urls=tuple(backend_urls if backend_urls is not None else params.get("backend_urls") or ()),
        samples_per_url=int(params.get("samples_per_url") or 6),
        lookup_retry_window_ms=float(params.get("lookup_retry_window_ms", LOOKUP_RETRY_WINDOW_MS)),
        read_only=not writes_allowed,
        http_timeout=timeout,
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def judge_key(
    record: SessionRecord, health: RedisHealth | None, settings: Settings, now_ms: int
) -> tuple[CheckResult, InvalidSessionCause | None]:
    """The ``session key`` step: what the stored record says, and the cause it points at."""
    sid = record.session_id
    if not record.exists:
        evicting = _eviction_evidence(health)
        if evicting:
            return CheckResult(
                "session key",
                Status.FAIL,
                f"no key for session {sid}, and Redis has evicted keys ({evicting})",
                {"exists": False},
            ), C.EVICTION_SUSPECTED
        return CheckResult(
            "session key", Status.FAIL, f"no key for session {sid} in this Redis", {"exists": False}
        ), C.SESSION_MISSING
    if record.session is None:
        return CheckResult(
            "session key",
            Status.FAIL,
            f"the value of session {sid} is not a session: {record.error}",
            {"exists": True, "size": record.size, "ttl": record.ttl},
        ), C.SESSION_CORRUPT
    session = record.session
    age_s = (now_ms - session.created_at) / 1000
    ttl = record.ttl if record.ttl is not None else -2
    data = {
        "exists": True,
        "status": session.status,
        "ttl": ttl,
        "expiresAt": session.expires_at,
        "expires_in": round((session.expires_at - now_ms) / 1000, 1),
        "age_s": round(age_s, 1),
        "grace_s": settings.grace_seconds,
    }
    facts = (
        f"status {session.status!r}, TTL {ttl} s, expiresAt {_iso(session.expires_at)} "
        f"({data['expires_in']:+} s), age {age_s:.0f} s"
    )
    if session.status == SessionStatus.DESTROYED:
        return CheckResult("session key", Status.FAIL, f"session was ended: {facts}", data), C.SESSION_ENDED
    if session.status == SessionStatus.EXPIRED or session.expires_at <= now_ms:
        return CheckResult("session key", Status.FAIL, f"session has expired: {facts}", data), C.SESSION_EXPIRED
    if session.status != SessionStatus.ACTIVE:
        if age_s * 1000 < settings.grace_seconds * 1000:
            return CheckResult(
                "session key",
                Status.WARN,
                f"session is still being created, inside the {settings.grace_seconds:g} s grace period: {facts}",
                data,
            ), None
        return CheckResult(
            "session key",
            Status.FAIL,
            f"session is not active and older than the {settings.grace_seconds:g} s grace period: {facts}",
            data,
        ), C.SESSION_NOT_ACTIVE
    if ttl == -1:
        return CheckResult(
            "session key", Status.WARN, f"session is active but has no TTL (a leak): {facts}", data
        ), None
    skew_s = abs(ttl - (session.expires_at - now_ms) / 1000)
    if ttl >= 0 and skew_s > 5:
        return CheckResult(
            "session key",
            Status.WARN,
            f"session is active, but its TTL and expiresAt disagree by {skew_s:.0f} s "
            f"(clock skew or a TTL not moved with expiresAt): {facts}",
            data,
        ), None
    return CheckResult("session key", Status.PASS, f"session is active: {facts}", data), None


def _eviction_evidence(health: RedisHealth | None) -> str:
    """A short description of evictions that may have taken sessions, or ''."""
    if health is None or not judge_eviction(health.maxmemory_policy, health.evicted_keys).sessions_may_be_lost:
        return ""
    return f"evicted_keys={health.evicted_keys}, maxmemory-policy={health.maxmemory_policy or 'hidden'}"


def eviction_check(health: RedisHealth) -> tuple[CheckResult, bool]:
    """The ``eviction`` step (:func:`~labsession.sessions.eviction.judge_eviction`); the bool says
    whether sessions may already have been evicted."""
    judged = judge_eviction(health.maxmemory_policy, health.evicted_keys, health.maxmemory)
    data = {
        "evicted": health.evicted_keys,
        "policy": health.maxmemory_policy,
        "maxmemory": health.maxmemory,
        "used_memory": health.used_memory,
    }
    if judged.sessions_may_be_lost:
        return CheckResult(
            "eviction",
            Status.FAIL,
            f"{judged.evictions_evidence} (used {health.used_memory} of {health.maxmemory or 'unlimited'} bytes)",
            data,
        ), True
    if judged.status is Status.PASS:
        return CheckResult(
            "eviction", Status.PASS, f"no key evicted (maxmemory-policy {health.maxmemory_policy or 'hidden'})", data
        ), False
    worse = (
        judged.policy_evidence
        if judged.policy_status.rank >= judged.evictions_status.rank
        else judged.evictions_evidence
    )
    return CheckResult("eviction", judged.status, worse, data), False


async def diagnose_invalid_session(
    settings: Settings,
    inputs: InvalidSessionInputs,
    *,
    clock: Callable[[], float] = time.time,
    report: Report | None = None,
) -> Diagnosis:
    """Run every step against ``settings``' Redis and ``inputs.backend_urls``; never raises for a
    store or backend failure (that is evidence), only for bad inputs.

    ``clock`` returns seconds since the epoch (the time sessions are judged at); the steps are
    recorded on ``report`` when given (a notebook's own), else on a new one.
    """
    report = report if report is not None else Report("Runbook: invalid session")
    report.facts.update(
        {
            "endpoint": settings.endpoint,
            "session_id": inputs.session_id,
            "backends": list(inputs.backend_urls),
            "read_only": inputs.read_only,
            "lookup_retry_window_ms": inputs.lookup_retry_window_ms,
        }
    )
    found: list[InvalidSessionCause] = []
    detail: dict[InvalidSessionCause, str] = {}

    # 1. store
    try:
        async with RedisService(settings.with_changes(retry_attempts=min(settings.retry_attempts, 2))) as redis:
            health = await redis.health()
            ours: StoreIdentity | None = await redis.identity()
            report.check(
                "store",
                Status.PASS,
                f"Redis at {settings.endpoint} answered PING in {health.ping_ms:.1f} ms "
                f"(run_id {health.run_id or 'hidden'})",
                ping_ms=round(health.ping_ms, 2),
            )
            record: SessionRecord | None = None
            if inputs.session_id is not None:
                record = await LabSessionService(redis, settings).inspect(inputs.session_id)
    except RedisUnavailable as exc:
        report.check("store", Status.FAIL, str(exc), redis_cause=exc.cause.value)
        for step in STEPS[1:]:
            report.check(step, Status.SKIP, "the store does not answer")
        evidence = f"{exc.cause.value}: {redis_remedy(exc.cause)}"
        return conclude(
            NAME, report, C.STORE_UNREACHABLE, REMEDIES[C.STORE_UNREACHABLE], healthy=False, evidence=evidence
        )

    # 2. shared store, 3. replication, 4. clocks
    now_ms = int(clock() * 1000)
    if inputs.backend_urls:
        samples = await sample_instances(
            inputs.backend_urls, samples_per_url=inputs.samples_per_url, http_timeout=inputs.http_timeout
        )
        comparison = compare_stores(samples, ours)
        report.add(comparison.check)
        if comparison.split:
            found.append(C.INSTANCES_DO_NOT_SHARE_STORE)
        if comparison.keyspace:
            found.append(C.INSTANCES_USE_DIFFERENT_DB_OR_PREFIX)
            detail[C.INSTANCES_USE_DIFFERENT_DB_OR_PREFIX] = comparison.check.evidence
        check, lagging, short = await _replication_step(settings, inputs, samples, comparison)
        report.add(check)
        if lagging:
            found.append(C.VISIBILITY_LAG)
            detail[C.VISIBILITY_LAG] = short
        expires_in_s = None
        if record is not None and record.session is not None:
            expires_in_s = (record.session.expires_at - now_ms) / 1000
        max_skew = inputs.max_clock_skew_s if inputs.max_clock_skew_s is not None else settings.grace_seconds
        redis_offset_s = None if health.clock_offset_ms is None else health.clock_offset_ms / 1000
        check, skewed, short = judge_clocks(
            samples, redis_offset_s, max_skew_s=max_skew, session_expires_in_s=expires_in_s
        )
        report.add(check)
        if skewed:
            found.append(C.CLOCK_SKEW)
            detail[C.CLOCK_SKEW] = short
    else:
        for step in ("shared store", "replication", "clocks"):
            report.check(step, Status.SKIP, "no backend URL given")

    # 5. session key, 6. eviction
    if record is not None:
        check, cause = judge_key(record, health, settings, now_ms)
        report.add(check)
        if cause:
            found.append(cause)
    else:
        report.check("session key", Status.SKIP, "no session id given")
    check, evicted = eviction_check(health)
    report.add(check)

    # 7. backend lookups
    if inputs.session_id and inputs.backend_urls:
        outcomes = await validate_through_backends(
            inputs.backend_urls,
            inputs.session_id,
            samples_per_url=max(2, inputs.samples_per_url // 2),
            http_timeout=inputs.http_timeout,
        )
        shown = ", ".join(f"{k}: {n}" for k, n in sorted(outcomes.items()))
        store_valid = record is not None and record.session is not None and not (set(found) - set(_EXPLAINS_LOOKUPS))
        mixed = outcomes.get("valid", 0) and outcomes.get("not found", 0)
        # A fault an earlier step proved explains disagreeing instances better than a split store.
        explained = next((c for c in _EXPLAINS_LOOKUPS if c in found), None)
        if (mixed or (store_valid and outcomes.get("not found", 0))) and explained is not None:
            report.check(
                "backend lookups",
                Status.FAIL,
                f"instances disagree about this session ({shown}), as {explained.value} explains",
                outcomes=dict(outcomes),
            )
        elif mixed:
            report.check(
                "backend lookups",
                Status.FAIL,
                f"instances disagree about this session ({shown}): they do not read one store",
                outcomes=dict(outcomes),
            )
            found.append(C.INSTANCES_DO_NOT_SHARE_STORE)
        elif store_valid and outcomes.get("not found", 0):
            report.check(
                "backend lookups",
                Status.FAIL,
                f"the session is valid in Redis but the backends do not find it ({shown})",
                outcomes=dict(outcomes),
            )
            found.append(C.INSTANCES_DO_NOT_SHARE_STORE)
        else:
            ok = outcomes.get("valid", 0) == sum(outcomes.values()) or not store_valid
            report.check(
                "backend lookups",
                Status.PASS if ok else Status.WARN,
                f"backends answer consistently ({shown})",
                outcomes=dict(outcomes),
            )
    else:
        report.check("backend lookups", Status.SKIP, "needs a session id and a backend URL")

    # 8. visibility
    if inputs.read_only:
        report.check("visibility", Status.SKIP, "read-only run: the probe writes a key (set read_only=False)")
    else:
        try:
            probe = await measure_visibility(
                settings,
                samples=inputs.visibility_samples,
                window_ms=inputs.lookup_retry_window_ms,
                bound_ms=max(2000.0, 3 * inputs.lookup_retry_window_ms),
            )
        except RedisUnavailable as exc:
            report.check("visibility", Status.ERROR, f"probe failed: {exc}")
        else:
            worst = probe.worst_ms
            window = probe.window_ms
            data = {"samples_ms": [None if s is None else round(s, 2) for s in probe.samples_ms], "window_ms": window}
            if worst is None or worst > window:
                shown = "never, within the bound" if worst is None else f"after {worst:.0f} ms"
                report.check(
                    "visibility",
                    Status.FAIL,
                    f"a write became visible on another connection {shown}; the lookup retry window is {window:.0f} ms",
                    **data,
                )
                found.append(C.VISIBILITY_LAG)
            else:
                report.check(
                    "visibility",
                    Status.PASS,
                    f"writes visible on another connection within {worst:.1f} ms (window {window:.0f} ms)",
                    **data,
                )

    if evicted and inputs.session_id is None:
        found.append(C.EVICTION_SUSPECTED)
        detail[C.EVICTION_SUSPECTED] = _eviction_evidence(health)

    cause = min(found, key=_PRECEDENCE.index) if found else C.NO_FAULT_FOUND
    remedy = REMEDIES[cause]
    if cause is C.NO_FAULT_FOUND and inputs.session_id is None:
        remedy = (
            f"the store, the instances' sharing, replication and clocks, eviction and visibility look healthy; "
            f"{_NO_ID_HINT}"
        )
    return conclude(NAME, report, cause, remedy, healthy=cause is C.NO_FAULT_FOUND, evidence=detail.get(cause, ""))


async def _replication_step(
    settings: Settings,
    inputs: InvalidSessionInputs,
    samples: list[InstanceSample],
    comparison: StoreComparison,
) -> tuple[CheckResult, bool, str]:
    """The ``replication`` step: time each replica-reading instance against the master's offset.

    The master's offset comes from the runbook's own Redis when that is the master (after a probe
    write when writes are allowed, so a write is in flight), else from an instance on the master.
    """
    if not comparison.replicas:
        return CheckResult("replication", Status.SKIP, "no instance reports reading through a replica"), False, ""
    master = comparison.master
    if master is None or master.replid is None:
        return (
            CheckResult(
                "replication",
                Status.WARN,
                "instances read through a replica, but neither this runbook's Redis nor any instance reports "
                "the master, so the lag is unknown",
            ),
            False,
            "",
        )
    window = inputs.lookup_retry_window_ms
    bound = max(2000.0, 3 * window)
    replicas = comparison.replicas[: inputs.max_replicas]
    lags: list[ReplicaLag] = []
    if comparison.ours_is_master:
        async with RedisService(settings.with_changes(retry_attempts=min(settings.retry_attempts, 2))) as redis:
            key = VISIBILITY_PREFIX + uuid.uuid4().hex
            wrote = not inputs.read_only
            try:
                for replica in replicas:
                    if wrote:
                        async with redis.guard("replication probe write"):
                            await redis.client.set(key, uuid.uuid4().hex, ex=120)

                    async def ours_offset() -> int | None:
                        return (await redis.identity()).offset

                    lag = await measure_replica_lag(
                        replica, ours_offset, bound_ms=bound, poll_ms=REPLICA_POLL_MS, http_timeout=inputs.http_timeout
                    )
                    if lag is not None:
                        lags.append(lag)
            finally:
                if wrote:
                    with contextlib.suppress(RedisUnavailable):
                        async with redis.guard("replication probe cleanup"):
                            await redis.client.delete(key)
    else:
        wrote = False
        on_master = next(
            (
                s
                for s in samples
                if s.store is not None and s.store.role == "master" and s.store.replid == master.replid
            ),
            None,
        )
        if on_master is None:
            return CheckResult("replication", Status.WARN, "no instance on the master answered; lag unknown"), False, ""
        source = on_master

        async def instance_offset() -> int | None:
            answer = await sample_instance(source.url, http_timeout=inputs.http_timeout)
            return answer.store.offset if answer.store is not None and answer.label == source.label else None

        for replica in replicas:
            lag = await measure_replica_lag(
                replica, instance_offset, bound_ms=bound, poll_ms=REPLICA_POLL_MS, http_timeout=inputs.http_timeout
            )
            if lag is not None:
                lags.append(lag)
    if not lags:
        return (
            CheckResult("replication", Status.WARN, "the master's replication offset could not be read; lag unknown"),
            False,
            "",
        )
    return judge_replication(lags, window, bound, wrote=wrote)
