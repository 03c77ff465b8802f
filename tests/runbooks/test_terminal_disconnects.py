"""The terminal_disconnects runbook: every cause staged against real processes, then named.

A real Redis, real ``labsession serve`` backends, and :class:`support.tcp_proxy.TcpProxy` between
the runbook and a backend to add delay, cut idle connections or drop them all, as a load
balancer or a bad network path does. Holds are short (a few seconds) so the tests stay quick;
each staged fault is made to happen while both connections are open (the test waits for the
backend to count them), never by guessing a time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_server import free_port
from labsession.errors import ConfigError
from labsession.runbooks import (
    TerminalDisconnectsCause,
    TerminalDisconnectsInputs,
    diagnose_terminal_disconnects,
)
from labsession.runbooks.terminal_disconnects import REMEDIES, close_rows, ping_rows
from labsession.runner.registry import RUNBOOKS

from support import CANARY, MS, wait_until
from support.tcp_proxy import TcpProxy
from support.ts_standin import SECRET, ts_backend

pytestmark = pytest.mark.slow

C = TerminalDisconnectsCause
#: Every hold in these tests: long enough to stage a fault while both connections are open.
HOLD = 3000 * MS


@pytest.fixture
def backend(embedded_redis: EmbeddedRedis, backend_factory: Callable[..., BackendProcess]) -> BackendProcess:
    return backend_factory(embedded_redis.url, instance_id="instance-a")


async def run(settings: Settings, url: str, session_id: str | None, **changes: object) -> tuple[str, dict[str, object]]:
    options: dict[str, object] = {
        "session_id": session_id,
        "backend_urls": (url,),
        "ping_seconds": HOLD,
        "ping_every_seconds": 200 * MS,
        "idle_seconds": HOLD,
        "ping_timeout": 2000 * MS,
        "instance_samples": 1,
    }
    options.update(changes)
    diagnosis = await diagnose_terminal_disconnects(settings, TerminalDisconnectsInputs(**options))  # type: ignore[arg-type]
    out = diagnosis.to_dict()
    assert diagnosis.report.facts["cause"] == diagnosis.cause
    assert out["report"]["checks"][-1]["name"] == "cause"
    return diagnosis.cause, out


def statuses(out: dict[str, object]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in out["report"]["checks"]}  # type: ignore[index]


async def open_sockets(url: str) -> int:
    async with httpx.AsyncClient(timeout=2) as client:
        body = (await client.get(url + "/api/diagnostics/websocket")).json()
    return int(body["instance"]["openWebSockets"])


async def when_both_connected(url: str) -> None:
    await wait_until(lambda: _at_least(url, 2), "both runbook connections to be open", within=HOLD)


async def _at_least(url: str, count: int) -> bool:
    return await open_sockets(url) >= count


async def new_session(sessions: LabSessionService, url: str) -> str:
    return (await sessions.create("u1", "lab", "p", base_url=url)).session_id


# -- healthy ------------------------------------------------------------------------------------


async def test_a_healthy_connection_is_no_fault_found_and_nothing_is_written(
    settings: Settings, sessions: LabSessionService, redis_service: RedisService, backend: BackendProcess
) -> None:
    sid = await new_session(sessions, backend.ws_url)
    before = await redis_service.client.dbsize()
    cause, out = await run(settings, backend.url, sid)
    assert cause == C.NO_FAULT_FOUND, out
    assert out["healthy"] is True
    assert set(statuses(out).values()) == {"PASS"}, out
    assert await redis_service.client.dbsize() == before
    pings = next(c for c in out["report"]["checks"] if c["name"] == "pings")  # type: ignore[index]
    assert pings["data"]["unanswered"] == 0
    assert len(pings["data"]["samples"]) >= 2


async def test_a_healthy_connection_through_a_pass_through_proxy_is_no_fault_found(
    settings: Settings, sessions: LabSessionService, backend: BackendProcess
) -> None:
    sid = await new_session(sessions, backend.ws_url)
    async with TcpProxy(("127.0.0.1", backend.port)) as proxy:
        cause, out = await run(settings, proxy.url, sid)
        assert proxy.cut == 0
    assert cause == C.NO_FAULT_FOUND, out


# -- the network path ---------------------------------------------------------------------------


async def test_a_proxy_idle_timeout_is_named(
    settings: Settings, sessions: LabSessionService, backend: BackendProcess
) -> None:
    sid = await new_session(sessions, backend.ws_url)
    async with TcpProxy(("127.0.0.1", backend.port), idle_timeout=1000 * MS) as proxy:
        cause, out = await run(settings, proxy.url, sid)
        assert proxy.cut >= 1
    assert cause == C.IDLE_TIMEOUT_CUTS_CONNECTION, out
    checks = statuses(out)
    assert checks["idle hold"] == "FAIL"
    assert checks["pings"] == "PASS"  # the busy connection is never idle for a second
    idle = next(c for c in out["report"]["checks"] if c["name"] == "idle hold")  # type: ignore[index]
    assert "idle for about" in idle["evidence"]


async def test_a_slow_path_is_high_ping_latency(
    settings: Settings, sessions: LabSessionService, backend: BackendProcess
) -> None:
    sid = await new_session(sessions, backend.ws_url)
    async with TcpProxy(("127.0.0.1", backend.port), delay=150 * MS) as proxy:
        cause, out = await run(settings, proxy.url, sid, high_latency_ms=200 * MS * 1000, idle_seconds=0)
        assert proxy.cut == 0
    assert cause == C.HIGH_PING_LATENCY, out
    pings = next(c for c in out["report"]["checks"] if c["name"] == "pings")  # type: ignore[index]
    assert pings["data"]["unanswered"] == 0
    assert pings["data"]["p50_ms"] > 200 * MS * 1000


async def test_answers_later_than_the_ping_timeout_are_pings_unanswered(
    settings: Settings, sessions: LabSessionService, backend: BackendProcess
) -> None:
    sid = await new_session(sessions, backend.ws_url)
    async with TcpProxy(("127.0.0.1", backend.port)) as proxy:
        task = asyncio.create_task(run(settings, proxy.url, sid, ping_timeout=300 * MS, idle_seconds=0))
        await wait_until(lambda: _at_least(backend.url, 1), "the pinging connection to be open", within=HOLD)
        proxy.delay = 1000 * MS  # from now on every answer is later than the ping timeout
        cause, out = await task
    assert cause == C.PINGS_UNANSWERED, out
    pings = next(c for c in out["report"]["checks"] if c["name"] == "pings")  # type: ignore[index]
    assert pings["data"]["unanswered"] >= 1


async def test_connections_dropped_without_a_close_are_named(
    settings: Settings, sessions: LabSessionService, backend: BackendProcess
) -> None:
    sid = await new_session(sessions, backend.ws_url)
    async with TcpProxy(("127.0.0.1", backend.port)) as proxy:
        task = asyncio.create_task(run(settings, proxy.url, sid))
        await when_both_connected(backend.url)
        assert proxy.drop_all() == 2
        cause, out = await task
    assert cause == C.CONNECTION_DROPPED, out
    rows = close_rows_of_out(out)
    assert {r["code"] for r in rows} == {1006}
    assert statuses(out)["idle hold"] != "FAIL"  # cut together with the busy one: not an idle timeout


def close_rows_of_out(out: dict[str, object]) -> list[dict[str, object]]:
    closes = next(c for c in out["report"]["checks"] if c["name"] == "closes")  # type: ignore[index]
    rows: list[dict[str, object]] = closes["data"]["closes"]
    return rows


async def test_nothing_listening_is_connect_failed(settings: Settings, sessions: LabSessionService) -> None:
    sid = await new_session(sessions, "ws://x")
    cause, out = await run(settings, f"http://127.0.0.1:{free_port()}", sid)
    assert cause == C.CONNECT_FAILED, out
    assert statuses(out)["connect"] == "FAIL"


# -- the backend ----------------------------------------------------------------------------------


async def test_a_backend_restarted_mid_connection_is_instance_restarted(
    settings: Settings, sessions: LabSessionService, backend: BackendProcess
) -> None:
    sid = await new_session(sessions, backend.ws_url)
    task = asyncio.create_task(run(settings, backend.url, sid))
    await when_both_connected(backend.url)
    await asyncio.to_thread(backend.stop)
    await asyncio.to_thread(backend.start)  # the same port and instance id: only its uptime tells
    cause, out = await task
    assert cause == C.INSTANCE_RESTARTED, out["report"]["checks"]  # type: ignore[index]
    assert {r["code"] for r in close_rows_of_out(out)} == {1001}
    instances = next(c for c in out["report"]["checks"] if c["name"] == "instances")  # type: ignore[index]
    assert "instance-a" in instances["evidence"]


async def test_a_store_outage_is_the_server_closing(
    redis_factory: Callable[..., EmbeddedRedis], backend_factory: Callable[..., BackendProcess]
) -> None:
    server = redis_factory()
    settings = Settings.from_url(server.url, retry_attempts=1, operation_timeout=1.0, connect_timeout=0.5)
    backend = backend_factory(server.url, instance_id="instance-a")
    async with RedisService(settings) as redis:
        sid = await new_session(LabSessionService(redis), backend.ws_url)
    task = asyncio.create_task(run(settings, backend.url, sid))
    await when_both_connected(backend.url)
    await asyncio.to_thread(server.stop)
    cause, out = await task
    assert cause == C.SERVER_CLOSES, out
    assert {r["code"] for r in close_rows_of_out(out)} == {1013}
    closes = next(c for c in out["report"]["checks"] if c["name"] == "closes")  # type: ignore[index]
    assert "store is unavailable" in closes["evidence"]


# -- the session ----------------------------------------------------------------------------------


async def test_a_session_ended_mid_connection_is_named(
    settings: Settings, sessions: LabSessionService, backend: BackendProcess
) -> None:
    sid = await new_session(sessions, backend.ws_url)
    task = asyncio.create_task(run(settings, backend.url, sid))
    await when_both_connected(backend.url)
    await sessions.end(sid)
    cause, out = await task
    assert cause == C.SESSION_ENDED_MID_CONNECTION, out
    assert {r["code"] for r in close_rows_of_out(out)} == {4000}
    assert statuses(out)["session after"] == "FAIL"


async def test_a_session_about_to_expire_is_named(
    settings: Settings, sessions: LabSessionService, redis_service: RedisService, backend: BackendProcess
) -> None:
    sid = await new_session(sessions, backend.ws_url)
    raw = await redis_service.client.get(sessions.key(sid))
    assert raw is not None
    record = json.loads(raw)
    lifetime = max(1, round(HOLD / 2))
    record["expiresAt"] = record["createdAt"] + lifetime * 1000
    await redis_service.client.set(sessions.key(sid), json.dumps(record), ex=lifetime)
    cause, out = await run(settings, backend.url, sid, expiry_margin_seconds=0)
    assert cause == C.SESSION_EXPIRING, out
    assert statuses(out)["session"] == "FAIL"


async def test_an_unknown_session_is_not_valid_and_no_connection_is_held(
    settings: Settings, backend: BackendProcess
) -> None:
    cause, out = await run(settings, backend.url, "0b5a3c8e-0000-4000-8000-000000000000")
    assert cause == C.SESSION_NOT_VALID, out
    assert statuses(out)["connect"] == "SKIP"


async def test_the_typescript_backend_is_diagnosed_without_uptime_and_without_its_secret(
    settings: Settings, sessions: LabSessionService
) -> None:
    sid = await sessions.create("u1", "lab", "p", base_url="ws://x", sandbox_account={"iamSecretAccessKey": SECRET})
    with ts_backend(settings.redis_url) as url:
        cause, out = await run(settings, url, sid.session_id)
    assert cause == C.NO_FAULT_FOUND, out
    checks = statuses(out)
    assert checks["instances"] == "SKIP"  # it reports no uptime: restarts cannot be seen, and it says so
    assert checks["pings"] == "PASS" and checks["idle hold"] == "PASS"
    assert SECRET not in json.dumps(out)


# -- read-only, probe sessions, bounds, secrets ---------------------------------------------------


async def test_without_a_session_id_a_read_only_run_only_samples_the_instances(
    settings: Settings, redis_service: RedisService, backend: BackendProcess
) -> None:
    before = await redis_service.client.dbsize()
    cause, out = await run(settings, backend.url, None)
    assert cause == C.NO_FAULT_FOUND, out
    assert "session_id" in str(out["remedy"])
    assert statuses(out)["connect"] == "SKIP"
    assert statuses(out)["instances"] == "PASS"
    assert await redis_service.client.dbsize() == before


async def test_with_writes_allowed_a_probe_session_is_used_and_removed(
    settings: Settings, redis_service: RedisService, backend: BackendProcess
) -> None:
    cause, out = await run(settings, backend.url, None, read_only=False)
    assert cause == C.NO_FAULT_FOUND, out
    assert statuses(out)["pings"] == "PASS"
    assert await redis_service.client.dbsize() == 0  # the probe session was ended and deleted


def test_durations_are_bounded() -> None:
    with pytest.raises(ConfigError, match="idle_seconds"):
        TerminalDisconnectsInputs(idle_seconds=3600)
    with pytest.raises(ConfigError, match="ping_seconds"):
        TerminalDisconnectsInputs(ping_seconds=0)


async def test_the_canary_password_never_reaches_the_output(
    redis_factory: Callable[..., EmbeddedRedis], backend_factory: Callable[..., BackendProcess]
) -> None:
    server = redis_factory(password=CANARY)
    backend = backend_factory(server.url, instance_id="instance-a")
    settings = Settings.from_url(server.url)
    async with RedisService(settings) as redis:
        sid = await new_session(LabSessionService(redis), backend.ws_url)
    cause, out = await run(settings, backend.url, sid, idle_seconds=0, ping_seconds=500 * MS)
    assert cause == C.NO_FAULT_FOUND, out
    text = json.dumps(out)
    assert CANARY not in text
    assert sid not in text  # a whole session id opens the terminal: only its first characters are shown


def test_every_cause_has_a_remedy_and_is_registered() -> None:
    assert set(REMEDIES) == set(C)
    assert set(RUNBOOKS["terminal_disconnects"].causes) == {c.value for c in C}
    assert RUNBOOKS["terminal_disconnects"].healthy == (C.NO_FAULT_FOUND.value,)


def test_tables_come_from_the_report() -> None:
    from labsession.checks import Report, Status

    report = Report("t")
    report.check("pings", Status.PASS, "ok", samples=[{"at_s": 0.0, "protocol_ms": 1.0, "message_ms": 2.0}])
    report.check("closes", Status.PASS, "ok", closes=[{"connection": "idle", "code": None}])
    assert ping_rows(report) == [{"at_s": 0.0, "protocol_ms": 1.0, "message_ms": 2.0}]
    assert close_rows(report) == [{"connection": "idle", "code": None}]
