"""RedisService against real redis-servers: fail fast with a clear, masked cause; bounded
operations during an outage and recovery on the same object; health() on hidden facts."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis
import redis.asyncio as aioredis

from labsession import (
    ConfigError,
    EmbeddedRedis,
    LabSessionService,
    RedisCause,
    RedisService,
    RedisUnavailable,
    Settings,
)
from labsession.embedded.redis_server import free_port
from labsession.store.deadline import _sweeper

from support import CANARY, MS, wait_until

Factory = Callable[..., EmbeddedRedis]


def assert_clean(error: BaseException, logs: pytest.LogCaptureFixture) -> None:
    """The canary password appears nowhere: message, repr, args, log records, tracebacks."""
    for text in (str(error), repr(error), repr(error.args)):
        assert CANARY not in text
    for record in logs.records:
        assert CANARY not in record.getMessage()
        assert CANARY not in (record.exc_text or "")
    assert CANARY not in logs.text


async def fail_to_connect(settings: Settings) -> RedisUnavailable:
    with pytest.raises(RedisUnavailable) as caught:
        async with RedisService(settings):
            pass
    return caught.value


def test_missing_redis_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({})
    assert caught.value.variable == "REDIS_URL" and "is not set" in str(caught.value)


async def test_refused_port_fails_fast(captured_logs: pytest.LogCaptureFixture) -> None:
    port = free_port()
    settings = Settings.from_url(f"redis://default:{CANARY}@127.0.0.1:{port}/0", retry_attempts=3)
    started = time.monotonic()
    error = await fail_to_connect(settings)
    assert time.monotonic() - started < settings.operation_timeout + 1
    assert error.cause is RedisCause.CONNECTION_REFUSED
    assert error.endpoint == f"127.0.0.1:{port}" and "nothing listens" in str(error)
    assert_clean(error, captured_logs)


async def test_wrong_password_is_auth_failed(redis_factory: Factory, captured_logs: pytest.LogCaptureFixture) -> None:
    server = redis_factory(password="the-right-one-123")
    started = time.monotonic()
    error = await fail_to_connect(Settings.from_url(f"redis://default:{CANARY}@127.0.0.1:{server.port}/0"))
    assert time.monotonic() - started < 2  # not retried: a password does not fix itself
    assert error.cause is RedisCause.AUTH_FAILED and "credentials" in str(error)
    assert_clean(error, captured_logs)
    missing = await fail_to_connect(Settings.from_url(f"redis://127.0.0.1:{server.port}/0"))
    assert missing.cause is RedisCause.AUTH_FAILED


async def test_unknown_host_is_dns_failure_and_fails_fast(captured_logs: pytest.LogCaptureFixture) -> None:
    # A backoff that makes each retry cost about 0.2 s: ten attempts take ~1.8 s more than one
    # (nine sleeps of min(0.2, random() * 2**n) s), a bound no lookup's jitter comes near.
    url = f"redis://default:{CANARY}@nonexistent.invalid:6379/0"
    backoff: dict[str, object] = {"retry_base": 1.0, "retry_cap": 0.2, "operation_timeout": 10.0}

    async def timed(attempts: int) -> tuple[float, RedisUnavailable]:
        started = time.monotonic()
        error = await fail_to_connect(Settings.from_url(url, retry_attempts=attempts, **backoff))
        return time.monotonic() - started, error

    one, _ = await timed(1)
    took, error = await timed(10)
    # Retried, it would take 10 lookups plus >= ~1.4 s of sleeps; tried once, one lookup.
    assert took < 3 * one + 500 * MS, f"an unknown host took {took:.2f} s; one attempt takes {one:.2f} s"
    assert error.cause is RedisCause.DNS_FAILURE and "nonexistent.invalid:6379" in str(error)
    assert_clean(error, captured_logs)


async def test_connects_names_itself_and_closes(embedded_redis: EmbeddedRedis) -> None:
    settings = Settings.from_url(embedded_redis.url, client_name="labsession-test-7")
    service = RedisService(settings)
    assert not service.connected and "closed" in repr(service)
    with pytest.raises(Exception, match="not connected"):
        _ = service.client
    async with service as redis_service:
        assert redis_service.connected
        assert await redis_service.ping() > 0
        clients = await redis_service.client.client_list()
        assert any(c["name"] == "labsession-test-7" for c in clients)
        identity = await redis_service.identity()
        assert identity.endpoint == settings.endpoint and identity.run_id
    assert not service.connected
    await service.aclose()  # twice is fine


async def test_a_cluster_flag_in_the_url_turned_off_elsewhere_connects_as_one_server(
    embedded_redis: EmbeddedRedis,
) -> None:
    # REDIS_CLUSTER=false wins over "?cluster=true" in the URL; the query is ours, never a
    # connection option for redis-py (it was: TypeError "unexpected keyword argument 'cluster'").
    url = f"{embedded_redis.url}?cluster=true"
    from_env = Settings.from_env({"REDIS_URL": url, "REDIS_CLUSTER": "0"})
    for settings in (Settings.from_url(url, cluster=False), from_env):
        assert settings.cluster is False
        async with RedisService(settings) as service:
            assert await service.ping() > 0


async def test_outage_fails_within_the_bound_then_recovers_on_the_same_object(
    embedded_redis: EmbeddedRedis, captured_logs: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_url(embedded_redis.url, operation_timeout=1.0)
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        sid = (await sessions.create("u", "l", "p", base_url="ws://h")).session_id
        client = service.client
        await asyncio.to_thread(embedded_redis.stop)
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(RedisUnavailable) as caught:
                await sessions.get(sid)
            assert time.monotonic() - started < settings.operation_timeout + 0.5
            assert caught.value.cause in (RedisCause.CONNECTION_REFUSED, RedisCause.CONNECTION_LOST)
        await asyncio.to_thread(embedded_redis.start)  # same port, empty (no persistence)
        assert await sessions.get(sid) is None
        assert (await sessions.create("u", "l", "p", base_url="ws://h")).session_id
        assert service.client is client  # nothing was recreated


async def recovers(check: Callable[[], Awaitable[None]], *, attempts: int) -> None:
    """``check()`` passes within ``attempts`` tries 50 ms apart, a store error counting as "not yet"."""
    for _ in range(attempts):
        try:
            await check()
            return
        except RedisUnavailable:
            await asyncio.sleep(50 * MS)
    pytest.fail("no recovery after thaw")


async def test_frozen_server_times_out_within_the_bound_then_recovers(embedded_redis: EmbeddedRedis) -> None:
    settings = Settings.from_url(embedded_redis.url, operation_timeout=0.5, socket_timeout=0.3)
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        sid = (await sessions.create("u", "l", "p", base_url="ws://h")).session_id
        embedded_redis.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(RedisUnavailable) as caught:
                await sessions.get(sid)
            assert time.monotonic() - started < settings.operation_timeout + 0.5
            assert caught.value.cause is RedisCause.TIMEOUT
            assert "0.5" in str(caught.value)  # says how long it waited
        finally:
            embedded_redis.thaw()

        async def readable() -> None:
            assert await sessions.get(sid) is not None

        await recovers(readable, attempts=int(2000 * MS / (50 * MS)))


async def test_frozen_server_with_the_backends_equal_bounds_times_out_within_the_operation_bound(
    embedded_redis: EmbeddedRedis,
) -> None:
    # The backend's defaults: read bound == operation bound, so a read inside a guard is bounded by
    # the guard alone. It must still end within the bound, as TIMEOUT, and leave no deadline behind.
    settings = Settings.from_url(embedded_redis.url, operation_timeout=0.4, socket_timeout=0.4)
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        sid = (await sessions.create("u", "l", "p", base_url="ws://h")).session_id
        embedded_redis.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(RedisUnavailable) as caught:
                await sessions.validate(sid)
            assert time.monotonic() - started < settings.operation_timeout + 0.5
            assert caught.value.cause is RedisCause.TIMEOUT
        finally:
            embedded_redis.thaw()
        assert _sweeper(asyncio.get_running_loop()).active == {}

        async def valid() -> None:
            assert (await sessions.validate(sid)).valid

        await recovers(valid, attempts=40)


async def test_startup_against_a_stopped_server_then_success(redis_factory: Factory) -> None:
    server = redis_factory()
    settings = Settings.from_url(server.url, retry_attempts=2)
    server.stop()
    error = await fail_to_connect(settings)
    assert error.cause is RedisCause.CONNECTION_REFUSED
    server.start()
    async with RedisService(settings) as service:
        assert await service.ping() > 0


async def test_health_reports_real_server_facts(redis_factory: Factory) -> None:
    server = redis_factory(maxmemory="64mb", maxmemory_policy="volatile-lru", maxclients=77)
    async with RedisService(Settings.from_url(server.url)) as service:
        health = await service.health()
    assert health.ping_ms > 0 and health.tls is False and health.provider == "redis"
    assert health.version and health.version.count(".") == 2
    assert health.mode == "standalone" and health.role == "master"
    assert health.maxmemory == 64 * 1024 * 1024 and health.maxmemory_policy == "volatile-lru"
    assert health.max_clients == 77 and health.connected_clients is not None and health.connected_clients >= 1
    assert health.evicted_keys == 0 and health.run_id and health.uptime_seconds is not None
    assert health.unknown == {}
    assert health.to_dict()["maxmemory_policy"] == "volatile-lru"


async def test_health_on_a_server_that_hides_config_and_info(redis_factory: Factory) -> None:
    server = redis_factory(extra_args=["--rename-command", "CONFIG", "", "--rename-command", "INFO", ""])
    async with RedisService(Settings.from_url(server.url)) as service:
        health = await service.health()
        identity = await service.identity()
    assert health.ping_ms > 0
    assert health.version is None and health.maxmemory_policy is None and health.evicted_keys is None
    assert health.max_clients is None and health.role is None
    assert "INFO server" in health.unknown and not any("CONFIG" in k for k in health.unknown)
    assert identity.run_id is None


async def test_a_read_only_acl_user_can_read_validate_scan_and_check_health(redis_factory: Factory) -> None:
    server = redis_factory()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "reader", "on", f">{CANARY}", "~*", "+@read", "+@connection", "-@write")
    writer = LabSessionService(RedisService(Settings.from_url(server.url)))
    async with writer.redis:
        created = await writer.create("u", "l", "p", base_url="ws://h")
    settings = Settings.from_url(f"redis://reader:{CANARY}@127.0.0.1:{server.port}/0", retry_attempts=2)
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        assert (await sessions.validate(created.session_id)).valid
        assert (await sessions.get(created.session_id)) is not None
        assert await sessions.active_ids() == [created.session_id]
        health = await service.health()
        # This reader may not run INFO: the facts are unknown, and CONFIG is never tried.
        assert health.ping_ms > 0 and "INFO memory" in health.unknown
        assert not any("CONFIG" in k for k in health.unknown)
        with pytest.raises(RedisUnavailable) as caught:
            await sessions.create("u", "l", "p", base_url="ws://h")
        assert caught.value.cause is RedisCause.READ_ONLY
        assert CANARY not in str(caught.value)
    admin.close()


async def test_command_errors_are_not_outages(redis_service: RedisService) -> None:
    client = redis_service.client
    await client.set("plain-string", "x")
    with pytest.raises(redis.ResponseError):
        async with redis_service.guard("HGET"):
            await client.hget("plain-string", "field")


def test_repr_never_shows_the_password() -> None:
    service = RedisService(Settings.from_url(f"rediss://default:{CANARY}@h.example:6380"))
    assert CANARY not in repr(service) and "****" in repr(service)


async def test_canary_in_logs_across_scenarios(
    redis_factory: Factory, captured_logs: pytest.LogCaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # redis-py's own loggers too
    server = redis_factory(password=CANARY)
    async with RedisService(Settings.from_url(server.url, operation_timeout=0.5)) as service:
        sessions = LabSessionService(service)
        sid = (await sessions.create("u", "l", "p", base_url="ws://h")).session_id
        server.stop()
        with pytest.raises(RedisUnavailable) as caught:
            await sessions.get(sid)
        server.start()
        assert await sessions.get(sid) is None
        assert_clean(caught.value, caplog)
    assert_clean(RuntimeError(repr(server)), caplog)
    assert str(uuid.uuid4())


async def test_a_bound_that_runs_out_while_retrying_reports_what_the_retries_saw(embedded_redis: EmbeddedRedis) -> None:
    # Attempts without backoff until the bound ends them: it then cancels an attempt in flight,
    # whose cancellation carries no cause. What the earlier attempts met must still be named.
    # A refused connect takes ~50 us here, so 1000 attempts (the most the backoff's 2**n allows)
    # last ~50 ms: the 20 ms bound ends them, where a 50 ms one raced them to the end.
    settings = Settings.from_url(
        embedded_redis.url, operation_timeout=0.02, retry_attempts=1000, retry_base=0.0, retry_cap=0.001
    )
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        await asyncio.to_thread(embedded_redis.stop)
        with pytest.raises(RedisUnavailable) as caught:
            await sessions.get(str(uuid.uuid4()))
    assert caught.value.cause is RedisCause.CONNECTION_REFUSED, str(caught.value)
    assert "gave up after 0.02 s" in str(caught.value)  # and it says how long it waited


# -- the connection pool ---------------------------------------------------------------------


async def labsession_clients(service: RedisService) -> int:
    clients = await service.client.client_list()
    return sum(1 for c in clients if c["name"] == service.client_name)


async def test_a_burst_beyond_the_pool_waits_and_never_opens_more_connections(embedded_redis: EmbeddedRedis) -> None:
    settings = Settings.from_url(embedded_redis.url, max_connections=3, client_name="pool-burst")
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        sid = (await sessions.create("u", "l", "p", base_url="ws://h")).session_id
        results = await asyncio.gather(*(sessions.validate(sid) for _ in range(200)))
        assert all(r.valid for r in results)
        assert await labsession_clients(service) <= 3


async def blocked_in_blpop(url: str, client_name: str, count: int) -> None:
    """Wait until ``count`` connections named ``client_name`` are blocked in BLPOP on the server."""
    async with aioredis.Redis.from_url(url) as probe:

        async def blocked() -> bool:
            clients = await probe.client_list()
            return sum(c["name"] == client_name and c["cmd"] == "blpop" for c in clients) >= count

        await wait_until(blocked, f"{count} BLPOPs of {client_name} to block on the server")


async def test_a_pool_held_past_the_bound_fails_with_the_pool_named(embedded_redis: EmbeddedRedis) -> None:
    settings = Settings.from_url(embedded_redis.url, max_connections=2, operation_timeout=0.5, client_name="pool-held")
    async with RedisService(settings) as service:
        # Two blocking reads hold both connections for longer than the bound.
        holders = [asyncio.create_task(service.client.blpop([f"never-{i}"], timeout=2)) for i in range(2)]
        await blocked_in_blpop(embedded_redis.url, "pool-held", 2)
        started = time.monotonic()
        with pytest.raises(RedisUnavailable) as caught:
            await service.ping()
        assert time.monotonic() - started < settings.operation_timeout + 0.5
        assert "own connection pool" in str(caught.value)
        await asyncio.gather(*holders)
        assert await service.ping() >= 0  # both connections came back


async def test_checkouts_cut_off_while_connecting_leave_the_pool_whole(embedded_redis: EmbeddedRedis) -> None:
    # Redis is down: every checkout is inside redis-py's connect retries when the bound cancels
    # it. Each connection must go back to redis-py's pool, or once Redis is back the pool would
    # believe them all in use and refuse every checkout ("Too many connections").
    settings = Settings.from_url(
        embedded_redis.url, max_connections=2, operation_timeout=0.3, retry_attempts=1000, retry_base=0.01
    )
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        await asyncio.to_thread(embedded_redis.stop)
        failed = await asyncio.gather(*(sessions.get(str(uuid.uuid4())) for _ in range(6)), return_exceptions=True)
        assert all(isinstance(f, RedisUnavailable) for f in failed), failed
        await asyncio.to_thread(embedded_redis.start)
        found = await asyncio.gather(*(sessions.get(str(uuid.uuid4())) for _ in range(20)))
        assert found == [None] * 20
        assert await labsession_clients(service) <= 2


async def test_cancelled_waiters_give_no_slot_away(embedded_redis: EmbeddedRedis) -> None:
    settings = Settings.from_url(embedded_redis.url, max_connections=2, client_name="pool-cancel")
    async with RedisService(settings) as service:
        holders = [asyncio.create_task(service.client.blpop([f"never-{i}"], timeout=0.5)) for i in range(2)]
        await blocked_in_blpop(embedded_redis.url, "pool-cancel", 2)
        waiters = [asyncio.create_task(service.ping()) for _ in range(20)]
        pool = service.client.connection_pool
        await wait_until(lambda: pool.waiting == 20, "20 pings to wait for a connection")
        assert not any(task.done() for task in waiters)
        for task in waiters[::2]:
            task.cancel()
        await asyncio.gather(*holders)
        done = await asyncio.gather(*waiters, return_exceptions=True)
        assert sum(isinstance(r, asyncio.CancelledError) for r in done) == 10
        assert all(isinstance(r, float) for r in done[1::2])
        # Full capacity, and no more: two concurrent blocking reads still fit, a third waits.
        again = [asyncio.create_task(service.client.blpop([f"never-{i}"], timeout=0.3)) for i in range(3)]
        started = time.monotonic()
        await asyncio.gather(*again)
        assert time.monotonic() - started >= 0.55  # the third ran after one of the first two
        assert await labsession_clients(service) <= 2


async def test_a_failure_the_retries_recovered_from_is_not_blamed_for_a_later_hang(
    embedded_redis: EmbeddedRedis,
) -> None:
    """In one guarded block: a read whose connection is killed and retried successfully, then a
    read that waits past the bound. The bound ran out waiting for an answer: TIMEOUT, not the
    dropped connection the first read already recovered from."""
    settings = Settings.from_url(embedded_redis.url, operation_timeout=1.5, client_name="stale-failure")
    killer = redis.Redis.from_url(embedded_redis.url)

    def blocked_ids() -> list[int]:
        return [int(c["id"]) for c in killer.client_list() if c["name"] == "stale-failure" and c["cmd"] == "blpop"]

    def blocked_id(what: str, other_than: int | None = None) -> int:
        deadline = time.monotonic() + 2000 * MS
        while not (ids := [i for i in blocked_ids() if i != other_than]):
            if time.monotonic() > deadline:  # fail: going on would test a read that was never killed
                raise AssertionError(f"no BLPOP of stale-failure blocked on the server {what}")
            time.sleep(5 * MS)
        return ids[0]

    def kill_then_feed() -> None:
        first = blocked_id("to kill")
        killer.client_kill_filter(_id=str(first))
        blocked_id("after the kill", other_than=first)  # the retry reconnected and blocks again
        killer.lpush("stale:list", "x")  # now let it finish

    try:
        async with RedisService(settings) as service:
            feeder = asyncio.create_task(asyncio.to_thread(kill_then_feed))
            with pytest.raises(RedisUnavailable) as caught:
                async with service.guard("two reads"):
                    assert await service.client.blpop(["stale:list"], timeout=1) is not None
                    await feeder
                    await service.client.blpop(["stale:empty"], timeout=5)  # nobody feeds this one
            assert caught.value.cause is RedisCause.TIMEOUT, str(caught.value)
    finally:
        killer.close()
