"""Runbook "Redis is slow" / "Redis is full": one cause code for a slow or full Redis.

Steps, each a check with its evidence (the rules are in :mod:`.latency_memory_rules`):

1. ``store``: Redis answers PING (else ``STORE_UNREACHABLE`` and every other step SKIPs).
2. ``ping samples``: ``ping_samples`` PINGs, 50 ms apart: median, p99 and worst round trip.
3. ``slowlog`` and 4. ``latency events``: ``SLOWLOG GET 128`` and ``LATENCY LATEST``, admin
   commands asked only when the run may use them (not ``read_only``): a read-only ACL user is
   refused them and each refusal is a security event on the server. Asked once each; a
   refusal (Upstash refuses both) is SKIP, never a fault.
5. ``command statistics``: INFO commandstats, the ACL-free evidence of slow commands.
6. ``memory``, 7. ``eviction``, 8. ``fragmentation``: INFO memory and INFO stats.
9. ``keys without TTL``: INFO keyspace (exact, one command) and the sample's name prefixes.
10. ``big keys``: ``MEMORY USAGE`` of a bounded SCAN sample (``max_keys`` keys, ``scan_seconds``).

Load on the server: 1 PING to connect, ``ping_samples`` PINGs, 4 INFO, 2 admin reads when
allowed, and for N sampled keys about N / 500 SCAN plus 2·N pipelined TTL and MEMORY USAGE:
with the defaults at most about 2 030 commands, whatever the size of the keyspace
(docs/operations.md has the measured table).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..checks import CheckResult, Report, Status
from ..errors import RedisUnavailable
from ..masking import get_logger
from ..probes.admin_reads import read_latency_latest, read_slowlog
from ..probes.connection import ping_samples
from ..probes.key_sample import KeySample, sample_keys
from ..probes.server_info import read_server_info
from ..settings import Settings
from ..store.classify import remedy as redis_remedy
from ..store.service import RedisService
from .base import Diagnosis, conclude
from .latency_memory_rules import (
    REMEDIES,
    LatencyMemoryCause,
    Limits,
    judge_big_keys,
    judge_commandstats,
    judge_eviction_step,
    judge_fragmentation,
    judge_latency_events,
    judge_memory,
    judge_ping,
    judge_slowlog,
    judge_ttls,
)

__all__ = [
    "NAME",
    "REMEDIES",
    "STEPS",
    "LatencyMemoryCause",
    "LatencyMemoryInputs",
    "Limits",
    "diagnose_redis_latency_memory",
    "inputs_from_parameters",
]

log = get_logger(__name__)

NAME = "redis_latency_memory"
C = LatencyMemoryCause

#: The steps, in the order they are recorded (the ``store`` step first).
STEPS = (
    "store",
    "ping samples",
    "slowlog",
    "latency events",
    "command statistics",
    "memory",
    "eviction",
    "fragmentation",
    "keys without TTL",
    "big keys",
)

_PRECEDENCE = list(LatencyMemoryCause)
_READ_ONLY_ADMIN = (
    "read-only run: {command} is an admin command a read-only ACL user is refused, and each refusal is a security "
    "event on the server; set read_only=False to read it"
)


@dataclass(frozen=True, slots=True)
class LatencyMemoryInputs:
    """What the runbook looks at and how hard. ``admin_commands`` allows SLOWLOG and LATENCY
    LATEST; ``max_keys`` (0: no sample) and ``scan_seconds`` bound the key sample; ``ping_interval`` in seconds."""

    limits: Limits = field(default_factory=Limits)
    admin_commands: bool = False
    ping_samples: int = 20
    ping_interval: float = 0.05
    max_keys: int = 1_000
    scan_seconds: float = 10.0
    batch_size: int = 500
    top_keys: int = 5

    def __post_init__(self) -> None:
        if self.ping_samples < 1 or self.max_keys < 0 or self.batch_size < 1 or self.scan_seconds <= 0:
            raise ValueError("ping_samples and batch_size must be positive, max_keys at least 0, scan_seconds above 0")


def inputs_from_parameters(params: Mapping[str, Any], *, admin_commands: bool) -> LatencyMemoryInputs:
    """:class:`LatencyMemoryInputs` from a notebook's validated parameters (names as in its parameters cell)."""
    defaults = Limits()
    limits = Limits(
        latency_ms=float(params.get("latency_ms", defaults.latency_ms)),
        slow_command_ms=float(params.get("slow_command_ms", defaults.slow_command_ms)),
        lookback_minutes=float(params.get("lookback_minutes", defaults.lookback_minutes)),
        memory_percent=float(params.get("memory_percent", defaults.memory_percent)),
        fragmentation_ratio=float(params.get("fragmentation_ratio", defaults.fragmentation_ratio)),
        fragmentation_bytes=int(params.get("fragmentation_mib", defaults.fragmentation_bytes // 2**20)) * 2**20,
        max_keys_without_ttl=int(params.get("max_keys_without_ttl", defaults.max_keys_without_ttl)),
        big_key_bytes=int(float(params.get("big_key_kib", defaults.big_key_bytes / 1024)) * 1024),
    )
    return LatencyMemoryInputs(
        limits=limits,
        admin_commands=admin_commands,
        ping_samples=int(params.get("ping_samples", 20)),
        max_keys=int(params.get("max_keys", 1_000)),
        scan_seconds=float(params.get("scan_seconds", 10.0)),
    )


async def diagnose_redis_latency_memory(
    settings: Settings,
    inputs: LatencyMemoryInputs | None = None,
    *,
    clock: Callable[[], float] = time.time,
    report: Report | None = None,
) -> Diagnosis:
    """Run every step against ``settings``' Redis; never raises for a store failure (that is the
    evidence). ``clock`` gives seconds since the epoch (what "the last ``lookback_minutes``" means).
    Every wait is bounded by ``settings.operation_timeout`` seconds; the key sample by ``scan_seconds``."""
    inputs = inputs or LatencyMemoryInputs()
    report = report if report is not None else Report("Runbook: Redis latency and memory")
    report.facts.update(
        {"endpoint": settings.endpoint, "admin_commands": inputs.admin_commands, "max_keys": inputs.max_keys}
    )
    limits = inputs.limits
    found: list[LatencyMemoryCause] = []

    def record(judged: tuple[CheckResult, LatencyMemoryCause | None]) -> None:
        check, cause = judged
        report.add(check)
        if cause is not None:
            found.append(cause)

    try:
        async with RedisService(settings.with_changes(retry_attempts=min(settings.retry_attempts, 2))) as redis:
            ping_ms = await redis.ping()
            report.check(
                "store",
                Status.PASS,
                f"Redis at {settings.endpoint} answered PING in {ping_ms:.1f} ms",
                ping_ms=round(ping_ms, 2),
            )
            samples = await ping_samples(redis, inputs.ping_samples, interval=inputs.ping_interval)
            record(judge_ping(samples, limits))
            now = clock()
            if inputs.admin_commands:
                record(judge_slowlog(await read_slowlog(redis), now, limits))
                record(judge_latency_events(await read_latency_latest(redis), now, limits))
            else:
                record(judge_slowlog(None, now, limits, why_not=_READ_ONLY_ADMIN.format(command="SLOWLOG")))
                why = _READ_ONLY_ADMIN.format(command="LATENCY LATEST")
                record(judge_latency_events(None, now, limits, why_not=why))
            info = await read_server_info(redis)
            sample: KeySample | None = None
            if inputs.max_keys > 0:
                sample = await sample_keys(
                    redis,
                    max_keys=inputs.max_keys,
                    budget_seconds=inputs.scan_seconds,
                    batch_size=inputs.batch_size,
                    top=inputs.top_keys,
                    session_prefix=settings.key_prefix,
                )
    except RedisUnavailable as exc:
        recorded = {c.name for c in report}
        if "store" not in recorded:
            report.check("store", Status.FAIL, str(exc), redis_cause=exc.cause.value)
        else:
            report.check("store", Status.FAIL, f"Redis stopped answering during the runbook: {exc}")
        for step in STEPS:
            if step not in recorded and step != "store":
                report.check(step, Status.SKIP, "the store does not answer")
        evidence = f"{exc.cause.value}: {redis_remedy(exc.cause)}"
        return conclude(
            NAME, report, C.STORE_UNREACHABLE, REMEDIES[C.STORE_UNREACHABLE], healthy=False, evidence=evidence
        )

    record(judge_commandstats(info, limits))
    record(judge_memory(info, limits))
    record(judge_eviction_step(info))
    record(judge_fragmentation(info, limits))
    record(judge_ttls(info, sample, limits))
    record(judge_big_keys(sample, limits, why_not="max_keys=0: no key sampled"))
    if sample is not None:
        report.facts["key_sample"] = {"sampled": sample.sampled, "complete": sample.complete, **sample.commands}

    cause = min(found, key=_PRECEDENCE.index) if found else C.NO_FAULT_FOUND
    others = sorted({c.value for c in found if c is not cause}, key=lambda v: _PRECEDENCE.index(C(v)))
    evidence = f"also found: {', '.join(others)}" if others else ""
    return conclude(NAME, report, cause, REMEDIES[cause], healthy=cause is C.NO_FAULT_FOUND, evidence=evidence)
