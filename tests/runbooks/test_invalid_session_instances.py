"""The invalid-session runbook on causes about backend instances, each staged with real processes:
a real replica behind a delaying link (VISIBILITY_LAG), instances on other database numbers or key
prefixes of one Redis (INSTANCES_USE_DIFFERENT_DB_OR_PREFIX), an instance whose wall clock is off
(CLOCK_SKEW), and the healthy systems that must name none of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis import Redis

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.embedded.backends import BackendProcess
from labsession.runbooks import InvalidSessionCause, InvalidSessionInputs, diagnose_invalid_session
from labsession.runbooks.invalid_session import REMEDIES, STEPS

from support import CANARY, MS, REPO, wait_until
from support.delay_proxy import DelayProxy
from support.ts_standin import ts_backend

C = InvalidSessionCause
pytestmark = pytest.mark.slow

#: A master that starts a full sync at once (the default waits 5 s for more replicas).
MASTER_ARGS = ["--repl-diskless-sync-delay", "0"]


@pytest.fixture
def proxy_factory() -> Iterator[Callable[[int], DelayProxy]]:
    started: list[DelayProxy] = []

    def start(port: int) -> DelayProxy:
        proxy = DelayProxy(("127.0.0.1", port)).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


async def diagnose(settings: Settings, session_id: str | None, **inputs: object) -> tuple[str, dict[str, object]]:
    diagnosis = await diagnose_invalid_session(settings, InvalidSessionInputs(session_id=session_id, **inputs))  # type: ignore[arg-type]
    out = diagnosis.to_dict()
    names = [c["name"] for c in out["report"]["checks"]]
    assert names == [*STEPS, "cause"], names  # every step reported, in order, whatever it found
    return diagnosis.cause, out


def checks_of(out: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in out["report"]["checks"]}  # type: ignore[index]


async def create_session(url: str) -> str:
    async with RedisService(Settings.from_url(url)) as redis:
        return (await LabSessionService(redis).create("u", "lab", "p", base_url="ws://x")).session_id


def replica_of_master(
    redis_factory: Callable[..., EmbeddedRedis], proxy_factory: Callable[[int], DelayProxy]
) -> tuple[EmbeddedRedis, EmbeddedRedis, DelayProxy]:
    """A master (with the canary password), a delay proxy in front of it, and a replica that
    follows the master through the proxy, in sync (the proxy's delay still 0)."""
    master = redis_factory(password=CANARY, extra_args=MASTER_ARGS)
    proxy = proxy_factory(master.port)
    replica = redis_factory(password=CANARY, replica_of=("127.0.0.1", proxy.port))
    return master, replica, proxy


async def wait_for_sync(replica: EmbeddedRedis) -> None:
    with Redis.from_url(replica.url) as client:

        def synced() -> bool:
            info = client.info("replication")
            return bool(info.get("master_link_status") == "up" and info.get("master_sync_in_progress") == 0)

        await wait_until(synced, "the replica to sync with its master", within=20_000 * MS)


@contextlib.asynccontextmanager
async def traffic(url: str) -> AsyncIterator[None]:
    """Writes on the master every 20 ms while the block runs, as production sessions would."""

    async def write() -> None:
        async with RedisService(Settings.from_url(url)) as redis:
            for n in range(1_000_000):
                await redis.client.set("labsession:test:traffic", str(n), ex=60)
                await asyncio.sleep(20 * MS)

    task = asyncio.create_task(write())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("read_only", [False, True], ids=["probe-write", "read-only-under-traffic"])
async def test_instances_reading_through_a_lagging_replica_is_visibility_lag(
    redis_factory: Callable[..., EmbeddedRedis],
    proxy_factory: Callable[[int], DelayProxy],
    backend_factory: Callable[..., BackendProcess],
    read_only: bool,
) -> None:
    master, replica, proxy = replica_of_master(redis_factory, proxy_factory)
    a = backend_factory(master.url, instance_id="instance-a")
    b = backend_factory(replica.url, instance_id="instance-b")
    await wait_for_sync(replica)
    proxy.delay = 1500 * MS  # the link to the replica now delivers 1.5 s late: another region
    session_id = await create_session(master.url)
    settings = Settings.from_url(master.url)
    context = traffic(master.url) if read_only else contextlib.nullcontext()
    async with context:
        cause, out = await diagnose(
            settings, session_id, backend_urls=(a.url, b.url), samples_per_url=2, read_only=read_only
        )
    assert cause == C.VISIBILITY_LAG, out
    checks = checks_of(out)
    # One data set on two servers: not a split store, though the run ids differ.
    assert checks["shared store"]["status"] == "PASS", checks["shared store"]
    assert "one data set" in checks["shared store"]["evidence"]
    replication = checks["replication"]
    assert replication["status"] == "FAIL", replication
    (lag,) = replication["data"]["replicas"]
    assert lag["instance"] == "instance-b" and lag["behindBytes"] > 0
    assert lag["lagMs"] is None or lag["lagMs"] > 700, lag
    cause_line = checks["cause"]["evidence"]
    assert "instance-b reads through a replica" in cause_line and "bytes behind the master" in cause_line
    assert out["remedy"] == REMEDIES[C.VISIBILITY_LAG]
    assert CANARY not in json.dumps(out)
    if not read_only:
        async with RedisService(settings) as redis:  # the probe key is gone again
            assert [k async for k in redis.client.scan_iter(match="labsession:probe:*")] == []


async def test_instances_reading_through_a_replica_in_sync_is_no_fault(
    redis_factory: Callable[..., EmbeddedRedis],
    proxy_factory: Callable[[int], DelayProxy],
    backend_factory: Callable[..., BackendProcess],
) -> None:
    master, replica, _ = replica_of_master(redis_factory, proxy_factory)
    a = backend_factory(master.url, instance_id="instance-a")
    b = backend_factory(replica.url, instance_id="instance-b")
    await wait_for_sync(replica)
    session_id = await create_session(master.url)
    cause, out = await diagnose(
        Settings.from_url(master.url), session_id, backend_urls=(a.url, b.url), samples_per_url=2, read_only=False
    )
    assert cause == C.NO_FAULT_FOUND, out
    checks = checks_of(out)
    assert checks["replication"]["status"] == "PASS", checks["replication"]
    (lag,) = checks["replication"]["data"]["replicas"]
    assert lag["lagMs"] is not None and lag["lagMs"] <= 700 and lag["link"] == "up"
    assert checks["backend lookups"]["data"]["outcomes"] == {"valid": 4}


@pytest.mark.parametrize(
    ("db", "prefix", "says"),
    [(1, None, "db 1, prefix 'session:'"), (0, "lab:", "db 0, prefix 'lab:'")],
    ids=["other-db", "other-prefix"],
)
async def test_instances_on_one_redis_with_another_db_or_prefix(
    embedded_redis: EmbeddedRedis,
    backend_factory: Callable[..., BackendProcess],
    db: int,
    prefix: str | None,
    says: str,
) -> None:
    a = backend_factory(embedded_redis.url, instance_id="instance-a")
    other_url = embedded_redis.url.rsplit("/", 1)[0] + f"/{db}"
    env = {"SESSION_KEY_PREFIX": prefix} if prefix else {}
    b = backend_factory(other_url, instance_id="instance-b", env=env)
    session_id = await create_session(embedded_redis.url)
    cause, out = await diagnose(
        Settings.from_url(embedded_redis.url), session_id, backend_urls=(a.url, b.url), samples_per_url=2
    )
    assert cause == C.INSTANCES_USE_DIFFERENT_DB_OR_PREFIX, out
    checks = checks_of(out)
    shared = checks["shared store"]
    assert shared["status"] == "FAIL"
    assert "instance-a: db 0, prefix 'session:'" in shared["evidence"] and f"instance-b: {says}" in shared["evidence"]
    assert says in checks["cause"]["evidence"]  # the cause line names the values to fix
    # instance-b cannot find the session: explained by the keyspace, not called a split store
    assert checks["backend lookups"]["data"]["outcomes"] == {"valid": 2, "not found": 2}
    assert "INSTANCES_USE_DIFFERENT_DB_OR_PREFIX explains" in checks["backend lookups"]["evidence"]


async def test_the_runbook_reading_another_db_than_the_instances(
    embedded_redis: EmbeddedRedis, backend_factory: Callable[..., BackendProcess]
) -> None:
    a = backend_factory(embedded_redis.url.rsplit("/", 1)[0] + "/2", instance_id="instance-a")
    cause, out = await diagnose(Settings.from_url(embedded_redis.url), None, backend_urls=(a.url,), samples_per_url=2)
    assert cause == C.INSTANCES_USE_DIFFERENT_DB_OR_PREFIX, out
    assert "this runbook reads db 0" in checks_of(out)["shared store"]["evidence"]


@pytest.mark.parametrize(
    ("skew_s", "with_session", "says"),
    [(3 * 3600, True, "s ahead of Redis's"), (-60, False, "s behind Redis's")],
    ids=["ahead-3h-session", "behind-1min"],
)
async def test_an_instance_whose_clock_is_off_is_clock_skew(
    embedded_redis: EmbeddedRedis,
    backend_factory: Callable[..., BackendProcess],
    skew_s: int,
    with_session: bool,
    says: str,
) -> None:
    a = backend_factory(embedded_redis.url, instance_id="instance-a")
    skewed = {
        "PYTHONPATH": str(REPO / "tests" / "support" / "skewed_clock"),
        "LABSESSION_TEST_CLOCK_SKEW_SECONDS": str(skew_s),
    }
    b = backend_factory(embedded_redis.url, instance_id="instance-b", env=skewed)
    session_id = await create_session(embedded_redis.url) if with_session else None
    cause, out = await diagnose(
        Settings.from_url(embedded_redis.url), session_id, backend_urls=(a.url, b.url), samples_per_url=2
    )
    assert cause == C.CLOCK_SKEW, out
    checks = checks_of(out)
    assert checks["clocks"]["status"] == "FAIL"
    assert checks["clocks"]["evidence"].startswith("instance-b's clock is ") and says in checks["clocks"]["evidence"]
    offsets = checks["clocks"]["data"]["offsets_s"]
    # A Date header has whole seconds: each offset is known to about a second.
    assert abs(offsets["instance-a"]) < 2 and abs(offsets["instance-b"] - skew_s) < 2, offsets
    assert checks["shared store"]["status"] == "PASS"  # one store: the clock, not the store, is wrong
    if with_session:
        # The live session (two hours left) is expired by instance-b's clock: real lookups show it.
        assert checks["session key"]["status"] == "PASS"
        assert checks["backend lookups"]["data"]["outcomes"] == {"valid": 2, "not found": 2}
        assert "CLOCK_SKEW explains" in checks["backend lookups"]["evidence"]


async def test_a_healthy_system_names_no_cause(
    embedded_redis: EmbeddedRedis, backend_factory: Callable[..., BackendProcess]
) -> None:
    a = backend_factory(embedded_redis.url, instance_id="instance-a")
    b = backend_factory(embedded_redis.url, instance_id="instance-b")
    session_id = await create_session(embedded_redis.url)
    for sid in (session_id, None):
        cause, out = await diagnose(
            Settings.from_url(embedded_redis.url), sid, backend_urls=(a.url, b.url), samples_per_url=2, read_only=False
        )
        assert cause == C.NO_FAULT_FOUND, out
        statuses = {name: check["status"] for name, check in checks_of(out).items()}
        assert statuses["shared store"] == "PASS" and statuses["clocks"] == "PASS", statuses
        assert statuses["replication"] == "SKIP"  # nobody reads through a replica
        assert "FAIL" not in statuses.values() and "ERROR" not in statuses.values(), statuses


async def test_the_typescript_backend_reports_no_identity_and_no_cause_is_invented(
    embedded_redis: EmbeddedRedis,
) -> None:
    session_id = await create_session(embedded_redis.url)
    with ts_backend(embedded_redis.url) as first, ts_backend(embedded_redis.url) as second:
        cause, out = await diagnose(
            Settings.from_url(embedded_redis.url), session_id, backend_urls=(first, second), samples_per_url=2
        )
    assert cause == C.NO_FAULT_FOUND, out
    checks = checks_of(out)
    assert checks["shared store"]["status"] == "WARN" and "none reports its store" in checks["shared store"]["evidence"]
    assert checks["replication"]["status"] == "SKIP"
    assert checks["clocks"]["status"] == "PASS"  # its Date header tells its clock all the same
