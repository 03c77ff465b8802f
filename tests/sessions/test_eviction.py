"""One eviction rule: the judgement itself, and every check that shows it agreeing on a real server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labsession import EmbeddedRedis, RedisService, Report, Settings, Status
from labsession.probes.connection import health_checks
from labsession.runbooks.invalid_session import eviction_check
from labsession.runner.check import connection_checks
from labsession.sessions.eviction import can_evict_sessions, judge_eviction

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("policy", "risk"),
    [
        ("noeviction", False),
        ("NoEviction", False),
        ("volatile-lru", True),
        ("volatile-lfu", True),
        ("volatile-random", True),
        ("volatile-ttl", True),
        ("allkeys-lru", True),
        ("allkeys-lfu", True),
        ("allkeys-random", True),
        (None, None),
        ("something-new", None),
    ],
)
def test_which_policies_can_evict_a_session(policy: str | None, risk: bool | None) -> None:
    assert can_evict_sessions(policy) is risk


@pytest.mark.parametrize(
    ("policy", "evicted", "maxmemory", "policy_status", "evictions_status", "lost"),
    [
        ("noeviction", 0, 64 * MB, Status.PASS, Status.PASS, False),
        ("noeviction", 5, 64 * MB, Status.PASS, Status.WARN, False),  # an earlier policy evicted them
        ("volatile-lru", 0, 64 * MB, Status.WARN, Status.PASS, False),
        ("allkeys-lru", 0, 64 * MB, Status.WARN, Status.PASS, False),
        ("allkeys-lru", 0, 0, Status.PASS, Status.PASS, False),  # no limit: nothing is evicted today
        ("volatile-ttl", 3, 64 * MB, Status.WARN, Status.FAIL, True),
        ("allkeys-random", 1, 64 * MB, Status.WARN, Status.FAIL, True),
        (None, 0, None, Status.WARN, Status.PASS, False),
        (None, 2, None, Status.WARN, Status.FAIL, True),
        ("volatile-lru", None, 64 * MB, Status.WARN, Status.WARN, False),
    ],
)
def test_the_judgement(
    policy: str | None,
    evicted: int | None,
    maxmemory: int | None,
    policy_status: Status,
    evictions_status: Status,
    lost: bool,
) -> None:
    judged = judge_eviction(policy, evicted, maxmemory)
    assert (judged.policy_status, judged.evictions_status, judged.sessions_may_be_lost) == (
        policy_status,
        evictions_status,
        lost,
    )
    assert judged.status is max(policy_status, evictions_status, key=lambda s: s.rank)
    if policy and can_evict_sessions(policy) and maxmemory:
        assert policy in judged.policy_evidence and "noeviction" in judged.policy_evidence


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "noeviction"])
async def test_connection_check_quick_check_and_runbook_agree(
    redis_factory: Callable[..., EmbeddedRedis], policy: str
) -> None:
    server = redis_factory(maxmemory="64mb", maxmemory_policy=policy)
    async with RedisService(Settings.from_url(server.url)) as redis:
        health = await redis.health()
        probe = {c.name: c.status for c in health_checks(health) if c.name in ("eviction policy", "evictions")}
        report = Report("check")
        await connection_checks(redis, report)
        quick = {c.name: c.status for c in report if c.name in ("eviction policy", "evictions")}
        runbook, _ = eviction_check(health)
    expected = Status.PASS if policy == "noeviction" else Status.WARN
    assert probe == quick == {"eviction policy": expected, "evictions": Status.PASS}
    assert runbook.status is expected
