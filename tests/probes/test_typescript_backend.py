"""The probes against a stand-in with the TypeScript backend's observed behaviour (tests/ts_standin.py):
they must diagnose it — name its flaws — without crashing and without leaking its secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from labsession import EmbeddedRedis, RedisService, Settings, Status
from labsession.checks import CheckResult
from labsession.probes import (
    check_instance,
    probe_refused_origin,
    probe_unknown_session,
    run_lifecycle,
    sample_balancer,
)

from support.ts_standin import SECRET, ts_backend


@pytest.fixture
def ts_urls(embedded_redis: EmbeddedRedis) -> Iterator[list[str]]:
    with ts_backend(embedded_redis.url) as first, ts_backend(embedded_redis.url) as second:
        yield [first, second]


def dumped(checks: list[CheckResult]) -> str:
    return json.dumps([c.to_dict() for c in checks])


async def test_instance_checks_warn_about_unknown_store_and_published_ids(ts_urls: list[str]) -> None:
    info = await check_instance(ts_urls[0], timeout=3)
    statuses = {c.name.split(" ")[0]: c.status for c in info.checks}
    assert statuses["health"] is Status.PASS
    assert info.diagnostics is not None and info.diagnostics.flavour == "typescript"
    sample = await sample_balancer(ts_urls[0], 3, timeout=3)
    assert sample.check().status is Status.WARN  # no store identity: sharing unknown, not a crash
    assert "unknown" in sample.check().evidence


async def test_lifecycle_names_the_grace_revival_and_keeps_the_secret_out(
    ts_urls: list[str], embedded_redis: EmbeddedRedis
) -> None:
    async with RedisService(Settings.from_url(embedded_redis.url)) as redis:
        # The backend just listed every id in diagnostics: the probe shows a count, never the ids.
        result = await run_lifecycle(ts_urls, redis=redis, pings=2, timeout=5)
        info = await check_instance(ts_urls[1], timeout=3)
        assert [k async for k in redis.client.scan_iter(match="session:*")] == []  # cleaned up
    statuses = {c.name: c.status for c in result.checks}
    assert statuses["create"] is Status.PASS and statuses["extend"] is Status.PASS
    revived = [c for c in result.checks if c.name.startswith("ended → 404")]
    assert revived and all(c.status is Status.FAIL for c in revived)
    assert "came back" in revived[0].evidence
    everything = dumped(result.checks) + dumped(info.checks) + json.dumps(info.row())
    assert SECRET not in everything


async def test_refused_origin_and_unknown_session_on_the_typescript_backend(ts_urls: list[str]) -> None:
    check, outcome = await probe_unknown_session(ts_urls[0], timeout=5, expected_close_ms=3000)
    assert check.status is Status.PASS and outcome.close_code == 4000
    refused = await probe_refused_origin(ts_urls[0], allowed=("http://localhost:3000",), timeout=5)
    assert refused and all(c.status is Status.FAIL and "accepted" in c.evidence for c in refused)
