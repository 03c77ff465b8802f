"""The judgements of the ``redis_latency_memory`` runbook: one function per step, each turning
what was measured into a :class:`~labsession.checks.CheckResult` and, for a fault, a cause code.

Pure functions of measured facts and :class:`Limits`, so each rule is tested on real INFO
values and real samples. A step that could not look (read-only run, a refused admin command, a
hidden INFO field) is SKIP with the reason and never names a cause.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from ..checks import CheckResult, Status
from ..probes.admin_reads import AdminRead, LatencyEvent, SlowEntry
from ..probes.connection import LatencySamples
from ..probes.key_sample import KeySample
from ..probes.server_info import ServerInfo
from ..sessions.eviction import EVICTION_REMEDY, judge_eviction

__all__ = [
    "REMEDIES",
    "LatencyMemoryCause",
    "Limits",
    "judge_big_keys",
    "judge_commandstats",
    "judge_eviction_step",
    "judge_fragmentation",
    "judge_latency_events",
    "judge_memory",
    "judge_ping",
    "judge_slowlog",
    "judge_ttls",
    "size",
]

MIB = 1024 * 1024


class LatencyMemoryCause(StrEnum):
    """The one cause the runbook names. When several steps find one, the first listed wins:
    what blocks the server before what it looks like from outside, losing data before filling
    up, and what fills memory after the fact that it is full."""

    STORE_UNREACHABLE = "STORE_UNREACHABLE"
    SLOW_COMMANDS = "SLOW_COMMANDS"
    HIGH_LATENCY = "HIGH_LATENCY"
    EVICTING_KEYS = "EVICTING_KEYS"
    MEMORY_NEAR_LIMIT = "MEMORY_NEAR_LIMIT"
    BIG_KEYS = "BIG_KEYS"
    KEYS_WITHOUT_TTL = "KEYS_WITHOUT_TTL"
    FRAGMENTATION = "FRAGMENTATION"
    NO_FAULT_FOUND = "NO_FAULT_FOUND"


C = LatencyMemoryCause

REMEDIES: dict[LatencyMemoryCause, str] = {
    C.STORE_UNREACHABLE: "Redis does not answer, so nothing else can be judged; run the redis_connectivity runbook "
    "for the exact reason and fix",
    C.SLOW_COMMANDS: "commands that run this long block every other client (Redis runs one command at a time); "
    "replace them (SCAN instead of KEYS, smaller ranges, no long scripts) or move that work off this Redis",
    C.HIGH_LATENCY: "clients wait long for even a PING although no command is slow: look at the network path, the "
    "provider's status and throttling, and the host (CPU steal, swapping, persistence forks)",
    C.EVICTING_KEYS: f"Redis is dropping keys to stay under maxmemory, session keys included: {EVICTION_REMEDY}",
    C.MEMORY_NEAR_LIMIT: "memory is close to maxmemory: the next burst evicts keys or, with noeviction, refuses "
    "writes (new sessions fail); raise maxmemory or the plan, or free memory (see the keys without TTL and the "
    "biggest keys)",
    C.BIG_KEYS: "a few keys hold a large share of memory and make every command on them slow; split or trim "
    "them, or give them a TTL, and find the writer that grows them",
    C.KEYS_WITHOUT_TTL: "many keys never expire, so memory only grows; give them a TTL at the writer (every "
    "session key has one) and expire or delete the ones already there",
    C.FRAGMENTATION: "the allocator holds much more memory than the data needs; enable activedefrag (Redis 4+ "
    "with jemalloc) or restart the instance in a quiet hour",
    C.NO_FAULT_FOUND: "PING latency, slow commands, memory, eviction, fragmentation, TTLs and key sizes look "
    "healthy; if clients still see Redis as slow, measure from the client side (network, connection pool)",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """The thresholds every rule judges against: times in milliseconds, sizes in bytes."""

    #: A PING median above this is high latency, as is a latency event at least this long.
    latency_ms: float = 100.0
    #: A command that ran (or averages) this long or longer is slow.
    slow_command_ms: float = 50.0
    #: Slow log entries and latency events older than this are history, not the incident; minutes.
    lookback_minutes: float = 60.0
    #: Used memory at or above this share of maxmemory is near the limit; percent.
    memory_percent: float = 90.0
    #: Fragmentation counts when the ratio is at least this and the wasted bytes at least ``fragmentation_bytes``.
    fragmentation_ratio: float = 1.5
    fragmentation_bytes: int = 100 * MIB
    #: More keys than this without a TTL is a leak.
    max_keys_without_ttl: int = 1000
    #: A key at least this large is big.
    big_key_bytes: int = MIB


def size(count: int | None) -> str:
    """Bytes as ``512 B``, ``1.4 KiB``, ``2.0 MiB`` or ``3.1 GiB``; ``hidden`` for ``None``."""
    if count is None:
        return "hidden"
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def judge_ping(samples: LatencySamples, limits: Limits) -> tuple[CheckResult, LatencyMemoryCause | None]:
    """``ping samples``: the median PING above ``latency_ms`` is HIGH_LATENCY; only a slow tail is a
    timing-only WARN (a busy machine, not a fault); none answered means the store is unreachable."""
    name = "ping samples"
    data = {
        "samples_ms": [round(s, 2) for s in samples.samples_ms],
        "errors": samples.errors,
        "limit_ms": limits.latency_ms,
    }
    if not samples.samples_ms:
        return CheckResult(name, Status.FAIL, f"no PING answered ({samples.errors} failed)", data), C.STORE_UNREACHABLE
    p50, p99, worst = samples.p50 or 0.0, samples.p99 or 0.0, max(samples.samples_ms)
    text = (
        f"{len(samples.samples_ms)} PINGs: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms "
        f"(limit {limits.latency_ms:g} ms)"
    )
    if p50 > limits.latency_ms:
        return CheckResult(name, Status.FAIL, f"{text}: the median PING is above the limit", data), C.HIGH_LATENCY
    if samples.errors:
        return CheckResult(name, Status.WARN, f"{text}; {samples.errors} PINGs failed", data), None
    if p99 > limits.latency_ms:
        return CheckResult(name, Status.WARN, text, data, timing=f"p99 above {limits.latency_ms:g} ms"), None
    return CheckResult(name, Status.PASS, text, data), None


def _recent(started_at: int, now: float, limits: Limits) -> bool:
    return started_at >= now - limits.lookback_minutes * 60


def judge_slowlog(
    read: AdminRead[tuple[SlowEntry, ...]] | None, now: float, limits: Limits, *, why_not: str = ""
) -> tuple[CheckResult, LatencyMemoryCause | None]:
    """``slowlog``: entries of the last ``lookback_minutes`` that ran ``slow_command_ms`` or longer
    (``now`` in seconds since the epoch). ``read`` None: not asked, ``why_not`` says why."""
    name = "slowlog"
    if read is None:
        return CheckResult(name, Status.SKIP, why_not or "not asked"), None
    if read.refused is not None or read.value is None:
        return CheckResult(name, Status.SKIP, f"the provider refuses SLOWLOG ({read.refused})"), None
    limit_us = limits.slow_command_ms * 1000
    slow = [e for e in read.value if e.duration_us >= limit_us and _recent(e.started_at, now, limits)]
    window = f"in the last {limits.lookback_minutes:g} min"
    if not slow:
        return CheckResult(
            name,
            Status.PASS,
            f"no command in the slow log ran {limits.slow_command_ms:g} ms or longer {window}",
            {"entries": len(read.value)},
        ), None
    names = Counter(e.command for e in slow)
    worst = {n: max(e.duration_us for e in slow if e.command == n) for n in names}
    shown = ", ".join(f"{n} ×{k} (up to {worst[n] / 1000:.0f} ms)" for n, k in names.most_common(5))
    return CheckResult(
        name,
        Status.FAIL,
        f"{len(slow)} commands ran {limits.slow_command_ms:g} ms or longer {window}: {shown}",
        {"slow": [{"command": n, "count": k, "max_ms": worst[n] / 1000} for n, k in names.most_common(10)]},
    ), C.SLOW_COMMANDS


def judge_latency_events(
    read: AdminRead[tuple[LatencyEvent, ...]] | None, now: float, limits: Limits, *, why_not: str = ""
) -> tuple[CheckResult, LatencyMemoryCause | None]:
    """``latency events``: a ``LATENCY LATEST`` event of the last ``lookback_minutes`` at least ``latency_ms`` long."""
    name = "latency events"
    if read is None:
        return CheckResult(name, Status.SKIP, why_not or "not asked"), None
    if read.refused is not None or read.value is None:
        return CheckResult(name, Status.SKIP, f"the provider refuses LATENCY LATEST ({read.refused})"), None
    window = f"in the last {limits.lookback_minutes:g} min"
    if not read.value:
        return CheckResult(
            name,
            Status.PASS,
            "no latency event recorded (the server records them only while latency-monitor-threshold is set)",
        ), None
    high = [e for e in read.value if e.latest_ms >= limits.latency_ms and _recent(e.latest_at, now, limits)]
    events = [{"event": e.event, "latest_ms": e.latest_ms, "max_ms": e.max_ms} for e in read.value]
    if not high:
        return CheckResult(
            name, Status.PASS, f"no latency event of {limits.latency_ms:g} ms or more {window}", {"events": events}
        ), None
    shown = ", ".join(f"{e.event} {e.latest_ms} ms (worst {e.max_ms} ms)" for e in high[:5])
    return CheckResult(
        name,
        Status.FAIL,
        f"the server recorded stalls of {limits.latency_ms:g} ms or more {window}: {shown}",
        {"events": events},
    ), C.HIGH_LATENCY


def judge_commandstats(info: ServerInfo, limits: Limits) -> tuple[CheckResult, LatencyMemoryCause | None]:
    """``command statistics``: a command that averages ``slow_command_ms`` or more per call since the
    statistics were reset (ACL-free evidence of slow commands, which a read-only user may read)."""
    name = "command statistics"
    if not info.commands:
        if "INFO commandstats" in info.unknown:
            return CheckResult(name, Status.SKIP, "the provider hides INFO commandstats"), None
        return CheckResult(name, Status.PASS, "no command counted yet"), None
    total = sum(c.usec for c in info.commands) or 1
    top = [
        {
            "command": c.name,
            "calls": c.calls,
            "ms_per_call": round(c.usec_per_call / 1000, 3),
            "share_of_time": f"{100 * c.usec / total:.0f}%",
            "failed": c.failed_calls,
            "rejected": c.rejected_calls,
        }
        for c in info.commands[:10]
    ]
    limit_us = limits.slow_command_ms * 1000
    slow = [c for c in info.commands if c.usec_per_call >= limit_us]
    if not slow:
        return CheckResult(
            name, Status.PASS, f"no command averages {limits.slow_command_ms:g} ms or more per call", {"top": top}
        ), None
    shown = ", ".join(f"{c.name} {c.usec_per_call / 1000:.0f} ms per call over {c.calls} calls" for c in slow[:5])
    return CheckResult(
        name,
        Status.FAIL,
        f"{len(slow)} commands average {limits.slow_command_ms:g} ms or more per call: {shown}",
        {"top": top},
    ), C.SLOW_COMMANDS


def judge_memory(info: ServerInfo, limits: Limits) -> tuple[CheckResult, LatencyMemoryCause | None]:
    """``memory``: used memory at or above ``memory_percent`` of ``maxmemory`` is near the limit."""
    name = "memory"
    used, limit = info.used_memory, info.maxmemory
    data = {"used_memory": used, "maxmemory": limit, "policy": info.maxmemory_policy}
    if used is None:
        return CheckResult(name, Status.SKIP, "the provider hides used_memory (INFO memory)", data), None
    if limit is None:
        return CheckResult(name, Status.SKIP, f"used {size(used)}; the provider hides maxmemory", data), None
    if limit == 0:
        return CheckResult(
            name, Status.PASS, f"used {size(used)}, no maxmemory limit (Redis grows until the host runs out)", data
        ), None
    percent = 100 * used / limit
    text = f"used {size(used)} of {size(limit)} maxmemory ({percent:.0f}%)"
    if percent >= limits.memory_percent:
        full = "; with noeviction, writes are refused when it is full" if info.maxmemory_policy == "noeviction" else ""
        return CheckResult(
            name, Status.FAIL, f"{text}, at or above {limits.memory_percent:g}%{full}", data
        ), C.MEMORY_NEAR_LIMIT
    return CheckResult(name, Status.PASS, f"{text}, under {limits.memory_percent:g}%", data), None


def judge_eviction_step(info: ServerInfo) -> tuple[CheckResult, LatencyMemoryCause | None]:
    """``eviction``: the one eviction rule (:func:`~labsession.sessions.eviction.judge_eviction`);
    keys evicted under a policy that can take sessions is EVICTING_KEYS."""
    judged = judge_eviction(info.maxmemory_policy, info.evicted_keys, info.maxmemory)
    data = {"evicted_keys": info.evicted_keys, "policy": info.maxmemory_policy}
    if judged.sessions_may_be_lost:
        return CheckResult("eviction", Status.FAIL, judged.evictions_evidence, data), C.EVICTING_KEYS
    worse = (
        judged.policy_evidence
        if judged.policy_status.rank >= judged.evictions_status.rank
        else judged.evictions_evidence
    )
    return CheckResult("eviction", judged.status, worse, data), None


def judge_fragmentation(info: ServerInfo, limits: Limits) -> tuple[CheckResult, LatencyMemoryCause | None]:
    """``fragmentation``: a ratio at or above ``fragmentation_ratio`` wasting at least
    ``fragmentation_bytes``. Both must hold: a small Redis shows a large ratio over a few MiB."""
    name = "fragmentation"
    ratio, wasted = info.fragmentation_ratio, info.fragmentation_bytes
    if ratio is None:
        return CheckResult(name, Status.SKIP, "the provider hides the fragmentation ratio (INFO memory)"), None
    which = "allocator fragmentation" if info.fragmentation_source == "allocator_frag" else "RSS fragmentation"
    text = f"{which} {ratio:.2f} ({size(wasted)} wasted)"
    data = {"ratio": ratio, "wasted_bytes": wasted, "source": info.fragmentation_source}
    if ratio >= limits.fragmentation_ratio and (wasted or 0) >= limits.fragmentation_bytes:
        return CheckResult(
            name,
            Status.FAIL,
            f"{text}: at least {limits.fragmentation_ratio:g} and {size(limits.fragmentation_bytes)}",
            data,
        ), C.FRAGMENTATION
    return CheckResult(
        name,
        Status.PASS,
        f"{text}: under {limits.fragmentation_ratio:g} or under {size(limits.fragmentation_bytes)}",
        data,
    ), None


def judge_ttls(
    info: ServerInfo, sample: KeySample | None, limits: Limits
) -> tuple[CheckResult, LatencyMemoryCause | None]:
    """``keys without TTL``: exact from INFO keyspace (``keys - expires``), else counted in the sample."""
    name = "keys without TTL"
    prefixes = ", ".join(f"{p} {n}" for p, n in sample.no_ttl_prefixes) if sample else ""
    data = {
        "keys": info.keys,
        "without_ttl": info.keys_without_ttl,
        "prefixes": dict(sample.no_ttl_prefixes) if sample else {},
    }
    if info.keys_without_ttl is not None and info.keys is not None:
        count, text = info.keys_without_ttl, f"{info.keys_without_ttl} of {info.keys} keys have no TTL (INFO keyspace)"
    elif sample is not None:
        count, text = sample.without_ttl, f"{sample.without_ttl} of {sample.sampled} sampled keys have no TTL"
    else:
        return CheckResult(name, Status.SKIP, "the provider hides INFO keyspace and no key was sampled", data), None
    if count > limits.max_keys_without_ttl:
        where = f"; commonest in the sample: {prefixes}" if prefixes else ""
        return CheckResult(
            name, Status.FAIL, f"{text}, more than {limits.max_keys_without_ttl}{where}", data
        ), C.KEYS_WITHOUT_TTL
    return CheckResult(name, Status.PASS, f"{text}, at most {limits.max_keys_without_ttl}", data), None


def judge_big_keys(
    sample: KeySample | None, limits: Limits, *, why_not: str = ""
) -> tuple[CheckResult, LatencyMemoryCause | None]:
    """``big keys``: a sampled key of ``big_key_bytes`` or more (``MEMORY USAGE``)."""
    name = "big keys"
    if sample is None:
        return CheckResult(name, Status.SKIP, why_not or "no key was sampled"), None
    if sample.memory_refused is not None:
        return CheckResult(name, Status.SKIP, f"the provider refuses MEMORY USAGE ({sample.memory_refused})"), None
    scope = f"{sample.sampled} sampled keys" + ("" if sample.complete else " (a bounded sample)")
    data = {
        "sampled": sample.sampled,
        "complete": sample.complete,
        "biggest": [{"key": b.key, "bytes": b.bytes, "ttl": b.ttl} for b in sample.biggest],
    }
    if not sample.biggest:
        return CheckResult(
            name, Status.PASS, f"largest of {scope}: none, under {size(limits.big_key_bytes)}", data
        ), None
    big = [b for b in sample.biggest if b.bytes >= limits.big_key_bytes]
    if big:
        shown = ", ".join(f"{b.key} {size(b.bytes)}" for b in big)
        return CheckResult(
            name, Status.FAIL, f"{len(big)} of {scope} take {size(limits.big_key_bytes)} or more: {shown}", data
        ), C.BIG_KEYS
    return CheckResult(
        name,
        Status.PASS,
        f"largest of {scope}: {size(sample.biggest[0].bytes)}, under {size(limits.big_key_bytes)}",
        data,
    ), None
