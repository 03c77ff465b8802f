"""Probes against real redis-servers and real reference backends (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings, Status
from labsession.checks import TIMING_MARK
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_server import TlsFiles, free_port
from labsession.probes import (
    Anomaly,
    Histogram,
    LatencySamples,
    TopK,
    VisibilityResult,
    check_instance,
    health_checks,
    inspect_ttls,
    lint_config,
    measure_visibility,
    parse_diagnostics,
    percentile,
    ping_samples,
    probe_dns,
    probe_refused_origin,
    probe_tcp,
    probe_tls,
    probe_unknown_session,
    run_lifecycle,
    same_store,
    sample_balancer,
)
from labsession.probes.visibility import VISIBILITY_PREFIX
from labsession.store.service import StoreIdentity

# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def backends(embedded_redis: EmbeddedRedis) -> Iterator[list[str]]:
    """Two reference backend instances on the test's Redis."""
    procs = [BackendProcess(embedded_redis.url, instance_id=f"probe-test-{i}") for i in (1, 2)]
    try:
        for proc in procs:
            proc.start()
        yield [p.url for p in procs]
    finally:
        for proc in procs:
            proc.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[RedisService]:
    async with RedisService(settings) as service:
        yield service


# -- stats -----------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([], 50) is None


def test_histogram_puts_values_in_bins_and_overflow() -> None:
    h = Histogram((0, 10), ("none", "small", "big"))
    for value in (0, 5, 10, 11, 1000):
        h.add(value)
    assert h.counts == [1, 2, 2]


def test_topk_keeps_heavy_hitters_with_bounded_counters() -> None:
    top = TopK(capacity=10)
    for i in range(5000):
        top.add(f"unique-{i}")
        if i % 4 == 0:
            top.add("heavy")
    assert len(top.counts) <= 10
    assert top.top(1)[0][0] == "heavy"
    assert not top.exact
    exact = TopK(capacity=10)
    for name in "aabbbc":
        exact.add(name)
    assert exact.exact and exact.top(2) == [("b", 3), ("a", 2)]


# -- connection ------------------------------------------------------------------------------


def test_lint_plain_redis_to_upstash_fails_and_says_use_rediss() -> None:
    results = lint_config(Settings.from_url("redis://default:pw12345@eu1-fine-owl-1234.upstash.io:6379"))
    scheme = next(r for r in results if r.name == "url scheme")
    assert scheme.status is Status.FAIL
    assert "use rediss://" in scheme.evidence
    assert "pw12345" not in json.dumps([r.to_dict() for r in results])


def test_lint_disabled_verification_warns() -> None:
    results = lint_config(Settings.from_url("rediss://x.example.com:6380", tls_verify=False))
    assert [r.status for r in results if r.name == "tls verification"] == [Status.WARN]


@pytest.mark.parametrize(
    "policy, status", [("noeviction", Status.PASS), ("volatile-lru", Status.WARN), ("allkeys-lru", Status.WARN)]
)
async def test_eviction_policy_that_can_evict_sessions_warns_with_reason(
    redis_factory: Callable[..., EmbeddedRedis], policy: str, status: Status
) -> None:
    server = redis_factory(maxmemory="64mb", maxmemory_policy=policy)
    async with RedisService(Settings.from_url(server.url)) as service:
        checks = health_checks(await service.health())
    check = next(c for c in checks if c.name == "eviction policy")
    assert check.status is status
    assert policy in check.evidence
    if policy.startswith("volatile"):
        assert "every session key has one" in check.evidence


async def test_ping_samples_and_tcp_and_dns(embedded_redis: EmbeddedRedis, redis: RedisService) -> None:
    latency = await ping_samples(redis, 15)
    assert len(latency.samples_ms) == 15 and latency.errors == 0
    assert latency.p50 is not None and latency.p99 is not None and latency.p50 <= latency.p99
    assert latency.check().status is Status.PASS
    tcp = await probe_tcp("127.0.0.1", embedded_redis.port, timeout=2)
    assert tcp.check().status is Status.PASS
    dns = await probe_dns("localhost", timeout=2)
    assert dns.addresses and dns.check().status is Status.PASS


async def test_tcp_to_a_closed_port_names_connection_refused() -> None:
    result = await probe_tcp("127.0.0.1", free_port(), timeout=2)
    check = result.check()
    assert check.status is Status.FAIL
    assert check.data["cause"] == "CONNECTION_REFUSED"


async def test_dns_failure_is_reported_not_raised() -> None:
    result = await probe_dns("no-such-host.invalid", timeout=3)
    assert result.check().status is Status.FAIL
    assert result.check().data["cause"] == "DNS_FAILURE"


@pytest.mark.tls
async def test_tls_handshake_reports_certificate_trust_host_and_expiry(
    tls_redis: EmbeddedRedis, tls_files: tuple[TlsFiles, Path]
) -> None:
    files, stranger = tls_files
    assert tls_redis.tls_port is not None
    good = await probe_tls("localhost", tls_redis.tls_port, ca_cert=str(files.ca), timeout=3)
    assert good.verified and good.hostname_match is True
    assert good.subject and "localhost" in good.subject
    assert good.days_to_expiry is not None and good.days_to_expiry > 0
    assert {c.name: c.status for c in good.checks()}["tls handshake"] is Status.PASS
    untrusted = await probe_tls("localhost", tls_redis.tls_port, ca_cert=str(stranger), timeout=3)
    assert not untrusted.verified
    handshake = next(c for c in untrusted.checks() if c.name == "tls handshake")
    assert handshake.status is Status.FAIL and "not trusted" in handshake.evidence
    assert untrusted.subject and "localhost" in untrusted.subject  # still named, from the unverified handshake


# -- TTL inspection --------------------------------------------------------------------------


async def test_ttl_inspection_finds_every_anomaly_and_redacts_samples(
    redis: RedisService, sessions: LabSessionService
) -> None:
    client = redis.client
    healthy = [await sessions.create(f"user-{i % 2}", "lab", "p", base_url="ws://x") for i in range(6)]
    ended = await sessions.create("user-9", "lab", "p", base_url="ws://x")
    await sessions.end(ended.session_id)
    now = int(time.time() * 1000)

    def record(**fields: object) -> str:
        base = {
            "sessionId": str(uuid.uuid4()),
            "userId": "odd",
            "labId": "lab",
            "status": "active",
            "createdAt": now,
            "expiresAt": now + 3_600_000,
            "sandboxAccount": {"iamSecretAccessKey": "SECRET-canary-42"},
        }
        base.update(fields)
        return json.dumps(base)

    leak = f"session:{uuid.uuid4()}"
    await client.set(leak, record())  # no TTL
    await client.set(f"session:{uuid.uuid4()}", record(expiresAt=now + 500_000_000), ex=500_000)  # too long
    await client.set(f"session:{uuid.uuid4()}", record(), ex=600)  # expiresAt says 3600 s: skew
    await client.set(f"session:{uuid.uuid4()}", "{not json", ex=600)  # corrupt
    await client.set(f"session:{uuid.uuid4()}", record(status="destroyed"), ex=3000)  # ended, lingering
    await client.set(f"session:{uuid.uuid4()}", record(expiresAt=now - 5000), ex=30)  # past expiry
    await client.set("other:key", "not a session")

    result = await inspect_ttls(redis, batch_size=3, limit=None, max_ttl_seconds=86_400)
    assert result.scanned == len(healthy) + 1 + 6
    assert result.anomalies[Anomaly.NO_TTL] == 1
    assert result.anomalies[Anomaly.TTL_TOO_LONG] == 1
    assert result.anomalies[Anomaly.CLOCK_SKEW] == 1
    assert result.anomalies[Anomaly.CORRUPT] == 1
    assert result.anomalies[Anomaly.ENDED_LINGERING] == 1
    assert result.anomalies[Anomaly.PAST_EXPIRY] == 1
    assert result.by_status["destroyed"] == 2 and result.by_status["(corrupt)"] == 1
    assert result.top_users(1) == [{"userId": "odd", "sessions": 5}]
    assert sum(result.histogram.counts) == result.scanned
    statuses = {c.name: c.status for c in result.checks()}
    assert statuses["ttl: no_ttl"] is Status.FAIL and statuses["ttl: clock_skew"] is Status.WARN
    shown = json.dumps([result.samples, result.to_dict(), [c.to_dict() for c in result.checks()]])
    assert "SECRET-canary-42" not in shown
    for session in healthy:
        assert session.session_id not in shown  # ids are credentials: only 8 characters are shown
    assert leak not in shown
    finding = next(c for c in result.checks() if c.name == "ttl: no_ttl")
    assert f"{leak[:16]}~" in finding.evidence and finding.data["sessions"] == [f"{leak[:16]}~"]
    # Stored times read as times, not epoch milliseconds.
    past = result.samples["past_expiry"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\)", past["expiresAt"]), past
    assert re.fullmatch(r".* UTC \(in (59|60) min\)", result.samples["no_ttl"][0]["expiresAt"])
    assert result.samples["no_ttl"][0]["ttl"] == "none" and past["ttl"].endswith(" s")
    # Asked for (an explicit option), a finding names the exact key an engineer must fix.
    named = await inspect_ttls(redis, batch_size=3, limit=None, show_ids=True)
    finding = next(c for c in named.checks() if c.name == "ttl: no_ttl")
    assert finding.evidence.endswith(f": {leak}") and finding.data["sessions"] == [leak]
    assert named.samples["no_ttl"][0]["session"] == leak


async def test_ttl_inspection_stops_at_the_key_limit(redis: RedisService, sessions: LabSessionService) -> None:
    for i in range(25):
        await sessions.create(f"u{i}", "lab", "p", base_url="ws://x")
    result = await inspect_ttls(redis, batch_size=10, limit=12)
    assert result.scanned == 12 and result.truncated
    assert next(c for c in result.checks() if c.name == "scan").status is Status.WARN


# -- backends: diagnostics, WebSocket, lifecycle ---------------------------------------------


def test_diagnostics_of_the_typescript_backend_parse_without_identity() -> None:
    body = {
        "status": "ok",
        "websocketEndpoint": "/terminal/:sessionId",
        "supportedProtocols": ["ws", "wss"],
        "corsOrigins": ["http://localhost:3000"],
        "awsRegion": "us-east-1",
        "timestamp": "2024-01-01T00:00:00Z",
        "activeSessions": [str(uuid.uuid4()) for _ in range(3)],
    }
    diag = parse_diagnostics(body)
    assert diag.flavour == "typescript" and diag.store is None and diag.instance_id is None
    assert diag.session_count == 3 and diag.lists_session_ids
    assert diag.cors_origins == ("http://localhost:3000",)


def test_the_three_timing_thresholds_give_timing_only_warns() -> None:
    # A PING slower than its limit, a write seen after half the lookup window: the machine or the
    # network was slow at that moment. Errors, and a write seen too late for the window, are not that.
    slow_ping = LatencySamples("PING", (0.1, 0.2, 61.0)).check(warn_ms=50)
    assert slow_ping.status is Status.WARN and slow_ping.timing == "p99 above 50 ms"
    failed_ping = LatencySamples("PING", (0.1, 61.0), errors=1).check(warn_ms=50)
    assert failed_ping.status is Status.WARN and not failed_ping.timing
    assert not LatencySamples("PING", (0.1, 0.2)).check(warn_ms=50).timing
    late_write = VisibilityResult((1.0, 400.0), 700.0, 2000.0).check()
    assert late_write.status is Status.WARN and late_write.timing == "worst above half the window"
    too_late = VisibilityResult((1.0, 800.0), 700.0, 2000.0).check()
    assert too_late.status is Status.FAIL and not too_late.timing
    for check in (slow_ping, late_write):
        assert check.evidence.endswith(f"{TIMING_MARK}{check.timing}]")


async def test_instances_unknown_session_and_refused_origin(backends: list[str], redis: RedisService) -> None:
    ours = await redis.identity()
    info = await check_instance(backends[0], timeout=3, our_store=ours)
    assert {c.status for c in info.checks} == {Status.PASS}
    assert info.diagnostics is not None and info.diagnostics.instance_id == "probe-test-1"
    check, outcome = await probe_unknown_session(backends[1], timeout=5, expected_close_ms=3000)
    assert check.status is Status.PASS and outcome.close_code == 4000 and not check.timing
    # The backend retries the lookup for ~700 ms: a 1 ms deadline is a timing-only WARN.
    late, outcome = await probe_unknown_session(backends[1], timeout=5, expected_close_ms=1)
    assert late.status is Status.WARN and late.timing and outcome.close_code == 4000
    assert late.evidence.endswith(f"{TIMING_MARK}closed later than expected]")
    refused = await probe_refused_origin(backends[0], allowed=info.diagnostics.cors_origins, timeout=3)
    assert len(refused) == 2 and all(c.status is Status.PASS for c in refused)
    sample = await sample_balancer(backends[0], 4, timeout=3)
    assert sample.check(ours).status is Status.PASS and sample.instances == {"probe-test-1": 4}


async def test_an_instance_on_another_store_fails_the_identity_check(
    backends: list[str], redis_factory: Callable[..., EmbeddedRedis]
) -> None:
    other = redis_factory()
    async with RedisService(Settings.from_url(other.url)) as service:
        elsewhere = await service.identity()
    info = await check_instance(backends[0], timeout=3, our_store=elsewhere)
    identity = next(c for c in info.checks if c.name.startswith("store identity"))
    assert identity.status is Status.FAIL


async def test_lifecycle_passes_on_two_instances_and_cleans_up(backends: list[str], redis: RedisService) -> None:
    result = await run_lifecycle(backends, redis=redis, pings=2, timeout=5)
    failed = [(c.name, c.evidence) for c in result.checks if c.status is not Status.PASS]
    assert failed == []
    assert len(result.ping_rtts_ms) == 4 and result.cleaned_up
    assert [k async for k in redis.client.scan_iter(match="session:*")] == []


async def test_lifecycle_cleans_up_when_a_step_fails(embedded_redis: EmbeddedRedis, redis: RedisService) -> None:
    with BackendProcess(embedded_redis.url) as good:
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every step through it fails
        result = await run_lifecycle([good.url, dead], redis=redis, pings=1, timeout=1)
    statuses = {c.name: c.status for c in result.checks}
    assert statuses["create"] is Status.PASS
    assert statuses[f"validate via {dead}"] is Status.FAIL
    assert statuses["cleanup"] is Status.PASS
    assert [k async for k in redis.client.scan_iter(match="session:*")] == []


async def test_visibility_probe_measures_and_removes_its_keys(settings: Settings, redis: RedisService) -> None:
    result = await measure_visibility(settings, samples=3)
    assert len(result.samples_ms) == 3 and all(s is not None for s in result.samples_ms)
    assert result.check().status is Status.PASS
    assert [k async for k in redis.client.scan_iter(match=VISIBILITY_PREFIX + "*")] == []


async def test_ttl_inspection_script_and_pipeline_paths_agree(redis: RedisService, sessions: LabSessionService) -> None:
    for i in range(30):
        session = await sessions.create(f"u{i % 4}", "lab", "p", base_url="ws://x")
        if i % 5 == 0:
            await sessions.end(session.session_id)
    await redis.client.set("session:not-a-uuid", "[1, 2]")  # corrupt, no TTL
    fast = await inspect_ttls(redis, batch_size=7, limit=None, use_script=True)
    slow = await inspect_ttls(redis, batch_size=7, limit=None)
    drop = {"elapsedSeconds"}
    assert {k: v for k, v in fast.to_dict().items() if k not in drop} == {
        k: v for k, v in slow.to_dict().items() if k not in drop
    }
    assert fast.scanned == 31 and fast.anomalies[Anomaly.CORRUPT] == 1 and fast.anomalies[Anomaly.NO_TTL] == 1


async def test_tls_probe_is_bounded_when_the_server_never_closes(tls_files: tuple[TlsFiles, Path]) -> None:
    """A server that completes the handshake and then neither reads nor closes must not hold the
    probe for asyncio's 30 s TLS shutdown wait: the whole probe stays within its ``timeout``."""
    import socket
    import ssl
    import threading

    files, _ = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(files.cert), str(files.key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    release = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            for _ in range(2):  # the probe may handshake twice
                conn, _ = listener.accept()
                with context.wrap_socket(conn, server_side=True):
                    release.wait(20)  # never answers the client's close_notify

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        started = time.perf_counter()
        result = await probe_tls("localhost", port, ca_cert=str(files.ca), timeout=1.0)
        elapsed = time.perf_counter() - started
    finally:
        release.set()
        listener.close()
    assert result.verified
    assert elapsed < 3.0, f"probe_tls took {elapsed:.1f} s"


async def test_a_replica_of_the_same_data_is_the_same_store_and_another_db_is_not() -> None:
    # Notebook 04's "do the instances share a store?": a replica is the same sessions (its lag is the
    # invalid_session runbook's business); another server, or another database on this one, is not.
    async def identity(url: str) -> StoreIdentity:
        async with RedisService(Settings.from_url(url)) as redis:
            return await redis.identity()

    with (
        EmbeddedRedis() as master,
        EmbeddedRedis(replica_of=("127.0.0.1", master.port)) as replica,
        EmbeddedRedis() as other,
    ):
        ours = await identity(master.url)
        for _ in range(100):  # the replica reports the master's replication id once it has synced
            theirs = await identity(replica.url)
            if theirs.replid == ours.replid:
                break
            await asyncio.sleep(0.05)
        assert theirs.run_id != ours.run_id and theirs.role == "slave"
        assert same_store(ours, theirs) is True
        assert same_store(ours, await identity(other.url)) is False
        db5 = await identity(master.url.rsplit("/", 1)[0] + "/5")
        assert db5.run_id == ours.run_id and same_store(ours, db5) is False
