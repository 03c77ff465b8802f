"""Runbook logic against real redis-servers: each cause staged for real, then named."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis

from labsession import EmbeddedRedis, LabSessionService, RedisCause, RedisService, RedisUnavailable, Settings
from labsession.checks import Status
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_cluster import EmbeddedRedisCluster
from labsession.embedded.redis_server import TlsFiles, free_port
from labsession.probes.topology import read_topology
from labsession.runbooks import (
    CONNECTIVITY_OK,
    InvalidSessionCause,
    InvalidSessionInputs,
    diagnose_invalid_session,
    diagnose_redis_connectivity,
)
from labsession.runbooks.invalid_session import REMEDIES, judge_key
from labsession.runbooks.redis_connectivity import remedy_for
from labsession.runner.registry import RUNBOOKS
from labsession.store.classify import remedy

from support import CANARY, wait_until
from support.resp_stub import RespStub
from support.tlscerts import OTHER_HOST, PROBLEMS, make_expiring_cert, make_problem_certs

C = InvalidSessionCause
K = RedisCause


def fast(url: str, **changes: object) -> Settings:
    """Settings that give up quickly: one connect attempt in about a second."""
    base: dict[str, object] = {
        "retry_attempts": 1,
        "connect_timeout": 1.0,
        "socket_timeout": 1.0,
        "operation_timeout": 2.0,
    }
    base.update(changes)
    return Settings.from_url(url, **base)


async def invalid(settings: Settings, session_id: str | None = None, **inputs: object) -> tuple[str, dict[str, object]]:
    diagnosis = await diagnose_invalid_session(settings, InvalidSessionInputs(session_id=session_id, **inputs))  # type: ignore[arg-type]
    out = diagnosis.to_dict()
    assert diagnosis.report.facts["cause"] == diagnosis.cause
    assert out["report"]["checks"][-1]["name"] == "cause"
    return diagnosis.cause, out


# -- invalid_session ---------------------------------------------------------------------------


async def test_a_valid_session_is_no_fault_found(settings: Settings, sessions: LabSessionService) -> None:
    session = await sessions.create("u1", "lab", "p", base_url="ws://x")
    cause, out = await invalid(settings, session.session_id, read_only=False)
    assert cause == C.NO_FAULT_FOUND, out
    statuses = {c["name"]: c["status"] for c in out["report"]["checks"]}
    assert statuses["session key"] == "PASS"
    assert statuses["visibility"] == "PASS"
    assert statuses["shared store"] == "SKIP"
    assert out["healthy"] is True
    assert out["remedy"] == REMEDIES[C.NO_FAULT_FOUND]


async def test_read_only_run_skips_the_visibility_probe_and_writes_nothing(
    settings: Settings, sessions: LabSessionService, redis_service: RedisService
) -> None:
    before = await redis_service.client.dbsize()
    cause, out = await invalid(settings, None)
    assert cause == C.NO_FAULT_FOUND
    visibility = next(c for c in out["report"]["checks"] if c["name"] == "visibility")
    assert visibility["status"] == "SKIP"
    # Healthy, but no session was looked at: the remedy says to give the id a client was refused with.
    assert out["remedy"].startswith(
        "the store, the instances' sharing, replication and clocks, eviction and visibility look healthy; "
    )
    assert "run again with the session_id" in out["remedy"]
    assert await redis_service.client.dbsize() == before


async def test_an_ended_session(settings: Settings, sessions: LabSessionService) -> None:
    session = await sessions.create("u1", "lab", "p", base_url="ws://x")
    await sessions.end(session.session_id)
    cause, out = await invalid(settings, session.session_id)
    assert cause == C.SESSION_ENDED
    assert "destroyed" in json.dumps(out)
    assert out["healthy"] is False


async def test_an_ended_session_past_its_expiry_is_still_ended(settings: Settings, redis_service: RedisService) -> None:
    # Created three hours ago with a two-hour life, then ended: ended is the cause, not expired.
    past = LabSessionService(redis_service, clock=lambda: time.time() - 3 * 3600)
    session = await past.create("u1", "lab", "p", base_url="ws://x")
    await past.end(session.session_id)
    cause, out = await invalid(settings, session.session_id)
    assert cause == C.SESSION_ENDED, out
    key_check = next(c for c in out["report"]["checks"] if c["name"] == "session key")
    assert key_check["data"]["expires_in"] < 0 and "ended" in key_check["evidence"]


@pytest.mark.parametrize(
    ("status", "expires_in_ms", "cause"),
    [
        ("active", 0, C.SESSION_EXPIRED),  # expiresAt == now: expired, as the backends judge it
        ("active", 1, None),
        ("creating", 0, C.SESSION_EXPIRED),
        ("destroyed", 0, C.SESSION_ENDED),
        ("destroyed", -1, C.SESSION_ENDED),
        ("destroyed", -3_600_000, C.SESSION_ENDED),
    ],
)
async def test_judge_key_at_the_expiry_boundary(
    settings: Settings,
    sessions: LabSessionService,
    redis_service: RedisService,
    status: str,
    expires_in_ms: int,
    cause: InvalidSessionCause | None,
) -> None:
    now_ms = int(time.time() * 1000)
    session = await sessions.create("u1", "lab", "p", base_url="ws://x")
    record = session.to_dict() | {"status": status, "expiresAt": now_ms + expires_in_ms}
    await redis_service.client.set(sessions.key(session.session_id), json.dumps(record), ex=600)
    stored = await sessions.inspect(session.session_id)
    check, found = judge_key(stored, await redis_service.health(), settings, now_ms)
    assert found == cause, check
    assert (check.status is Status.FAIL) == (cause is not None)


async def test_two_causes_at_once_the_session_is_named_before_visibility_lag(
    settings: Settings, sessions: LabSessionService
) -> None:
    # An ended session *and* a lookup window (0 ms) any lag exceeds: the session is the cause.
    session = await sessions.create("u1", "lab", "p", base_url="ws://x")
    await sessions.end(session.session_id)
    cause, out = await invalid(settings, session.session_id, read_only=False, lookup_retry_window_ms=0.0)
    statuses = {c["name"]: c["status"] for c in out["report"]["checks"]}
    assert statuses["session key"] == "FAIL" and statuses["visibility"] == "FAIL", out  # both were found
    assert cause == C.SESSION_ENDED


async def test_two_causes_at_once_eviction_found_last_is_named_before_visibility_lag(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # Without a session id, eviction is added after the visibility step: precedence, not the
    # order the steps ran in, decides.
    settings = await evicting_store(redis_factory)
    cause, out = await invalid(settings, None, read_only=False, lookup_retry_window_ms=0.0)
    statuses = {c["name"]: c["status"] for c in out["report"]["checks"]}
    assert statuses["eviction"] == "FAIL" and statuses["visibility"] == "FAIL", out
    assert cause == C.EVICTION_SUSPECTED
    assert out["remedy"] == REMEDIES[C.EVICTION_SUSPECTED]
    assert out["healthy"] is False


async def test_an_expired_session_by_expires_at(settings: Settings, redis_service: RedisService) -> None:
    # Created three hours ago with a two-hour life: the record is still there, its time is up.
    past = LabSessionService(redis_service, clock=lambda: time.time() - 3 * 3600)
    session = await past.create("u1", "lab", "p", base_url="ws://x")
    cause, _ = await invalid(settings, session.session_id)
    assert cause == C.SESSION_EXPIRED


async def test_an_expired_session_marked_by_the_typescript_backend(
    settings: Settings, sessions: LabSessionService, redis_service: RedisService
) -> None:
    session = await sessions.create("u1", "lab", "p", base_url="ws://x")
    record = session.to_dict() | {"status": "expired"}
    await redis_service.client.set(sessions.key(session.session_id), json.dumps(record), ex=60)
    cause, out = await invalid(settings, session.session_id)
    assert cause == C.SESSION_EXPIRED
    key_check = next(c for c in out["report"]["checks"] if c["name"] == "session key")
    assert 0 < key_check["data"]["ttl"] <= 60


async def test_a_session_stuck_creating_past_the_grace_period(
    settings: Settings, sessions: LabSessionService, redis_service: RedisService
) -> None:
    session = await sessions.create("u1", "lab", "p", base_url="ws://x")
    old = int((time.time() - 30) * 1000)
    record = session.to_dict() | {"status": "creating", "createdAt": old}
    await redis_service.client.set(sessions.key(session.session_id), json.dumps(record), ex=600)
    cause, _ = await invalid(settings, session.session_id)
    assert cause == C.SESSION_NOT_ACTIVE


async def test_a_session_still_in_its_grace_period_is_not_a_fault(
    settings: Settings, sessions: LabSessionService, redis_service: RedisService
) -> None:
    session = await sessions.create("u1", "lab", "p", base_url="ws://x")
    record = session.to_dict() | {"status": "creating"}
    await redis_service.client.set(sessions.key(session.session_id), json.dumps(record), ex=600)
    cause, out = await invalid(settings, session.session_id)
    assert cause == C.NO_FAULT_FOUND
    key_check = next(c for c in out["report"]["checks"] if c["name"] == "session key")
    assert key_check["status"] == "WARN" and "grace" in key_check["evidence"]


async def test_a_corrupt_value(settings: Settings, sessions: LabSessionService, redis_service: RedisService) -> None:
    sid = str(uuid.uuid4())
    await redis_service.client.set(sessions.key(sid), b"{not json", ex=600)
    cause, _ = await invalid(settings, sid)
    assert cause == C.SESSION_CORRUPT
    assert await redis_service.client.get(sessions.key(sid)) == b"{not json"  # left in place


async def test_a_session_that_never_existed(settings: Settings) -> None:
    cause, _ = await invalid(settings, str(uuid.uuid4()))
    assert cause == C.SESSION_MISSING


async def test_an_unreachable_store() -> None:
    cause, out = await invalid(fast(f"redis://127.0.0.1:{free_port()}/0"), str(uuid.uuid4()))
    assert cause == C.STORE_UNREACHABLE
    assert "CONNECTION_REFUSED" in out["report"]["checks"][0]["evidence"]


async def test_lag_longer_than_the_lookup_window_is_visibility_lag(settings: Settings) -> None:
    # A backend that looks a session up once, without retrying, has a window of 0 ms: any
    # measurable lag between two connections is longer than that.
    cause, out = await invalid(settings, None, read_only=False, lookup_retry_window_ms=0.0)
    assert cause == C.VISIBILITY_LAG
    assert out["remedy"] == REMEDIES[C.VISIBILITY_LAG]  # no session id, but a fault: its own remedy
    visibility = next(c for c in out["report"]["checks"] if c["name"] == "visibility")
    assert visibility["status"] == "FAIL"
    assert len(visibility["data"]["samples_ms"]) == 5


async def evicting_store(redis_factory: Callable[..., EmbeddedRedis], created: list[str] | None = None) -> Settings:
    """A 3 MB allkeys-lru server that has evicted sessions (their ids are added to ``created``)."""
    server = redis_factory(maxmemory="3mb", maxmemory_policy="allkeys-lru")
    settings = Settings.from_url(server.url, retry_attempts=3)
    created = created if created is not None else []
    async with RedisService(settings) as redis:
        sessions = LabSessionService(redis)
        for _ in range(400):
            session = await sessions.create("u", "lab", "p", base_url="ws://x", extra={"pad": "x" * 20_000})
            created.append(session.session_id)
        assert (await redis.health()).evicted_keys, "the server evicted nothing; the staging did not work"
    return settings


async def test_evicted_sessions_are_suspected(redis_factory: Callable[..., EmbeddedRedis]) -> None:
    created: list[str] = []
    settings = await evicting_store(redis_factory, created)
    async with RedisService(settings) as redis:
        sessions = LabSessionService(redis)
        gone = [sid for sid in created if not await redis.client.exists(sessions.key(sid))]
    assert gone, "the server evicted no session; the staging did not work"
    cause, out = await invalid(settings, gone[0])
    assert cause == C.EVICTION_SUSPECTED
    assert "allkeys-lru" in json.dumps(out)
    cause, _ = await invalid(settings, None)
    assert cause == C.EVICTION_SUSPECTED


async def test_the_canary_password_never_reaches_the_runbook_output(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(password=CANARY)
    settings = Settings.from_url(server.url)
    async with RedisService(settings) as redis:
        sessions = LabSessionService(redis)
        session = await sessions.create(
            "u", "lab", "p", base_url="ws://x", sandbox_account={"iamSecretAccessKey": CANARY}
        )
        await sessions.end(session.session_id)
    cause, out = await invalid(settings, session.session_id, read_only=False)
    assert cause == C.SESSION_ENDED
    assert CANARY not in json.dumps(out)


def test_a_bad_session_id_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError):
        InvalidSessionInputs(session_id="../../etc")


# -- redis_connectivity ------------------------------------------------------------------------


async def connectivity(settings: Settings, *, writes_allowed: bool = False) -> tuple[str, dict[str, object]]:
    diagnosis = await diagnose_redis_connectivity(settings, writes_allowed=writes_allowed)
    assert diagnosis.report.facts["cause"] == diagnosis.cause
    assert diagnosis.remedy
    return diagnosis.cause, diagnosis.to_dict()


async def test_connectivity_ok(embedded_redis: EmbeddedRedis) -> None:
    cause, out = await connectivity(fast(embedded_redis.url))
    assert cause == CONNECTIVITY_OK
    assert out["healthy"] is True
    assert [c["status"] for c in out["report"]["checks"]][:4] == ["PASS", "PASS", "SKIP", "PASS"]
    assert steps(out)["topology"] == "PASS"


async def test_a_url_without_a_port_is_diagnosed_on_6379() -> None:
    # Whether or not something listens on 127.0.0.1:6379 here, the steps name that port.
    _, out = await connectivity(fast("redis://127.0.0.1"))
    tcp = next(c for c in out["report"]["checks"] if c["name"] == "tcp")
    assert tcp["evidence"].startswith("127.0.0.1:6379 "), tcp


@pytest.mark.parametrize(("held", "status"), [(16, "PASS"), (17, "WARN"), (18, "WARN")])
async def test_a_client_table_nine_tenths_full_is_a_warning(
    redis_factory: Callable[..., EmbeddedRedis], held: int, status: str
) -> None:
    # maxclients 20 (18 is nine tenths): the held connections and the runbook's own make held + 1
    # clients when it reads INFO (it needs room for one more while it connects).
    server = redis_factory(maxclients=20)
    holders = [Redis.from_url(server.url) for _ in range(held)]
    try:
        for holder in holders:
            holder.ping()
        cause, out = await connectivity(fast(server.url))
    finally:
        for holder in holders:
            holder.close()
    assert cause == CONNECTIVITY_OK, out
    check = next(c for c in out["report"]["checks"] if c["name"] == "redis")
    assert check["status"] == status, check
    assert f", {held + 1} of 20 clients" in check["evidence"]


async def test_dns_failure() -> None:
    cause, _ = await connectivity(fast("redis://redis.labsession-test.invalid:6379/0"))
    assert cause == K.DNS_FAILURE


async def test_connection_refused() -> None:
    cause, _ = await connectivity(fast(f"redis://127.0.0.1:{free_port()}/0"))
    assert cause == K.CONNECTION_REFUSED


async def test_a_frozen_server_is_a_timeout(embedded_redis: EmbeddedRedis) -> None:
    embedded_redis.freeze()
    try:
        cause, out = await connectivity(fast(embedded_redis.url, connect_timeout=0.5, socket_timeout=0.5))
    finally:
        embedded_redis.thaw()
    assert cause == K.TIMEOUT, out
    names = [c["name"] for c in out["report"]["checks"]]
    assert "tls probe" in names  # a hang on a plain URL is checked for a TLS-only port


@pytest.mark.tls
async def test_plain_url_to_the_tls_port_is_tls_required(tls_redis: EmbeddedRedis) -> None:
    url = tls_redis.tls_url.replace("rediss://", "redis://")
    cause, out = await connectivity(fast(url))
    assert cause == K.TLS_REQUIRED, out
    probe = next(c for c in out["report"]["checks"] if c["name"] == "tls probe")
    assert "TLS handshake (TLSv1." in probe["evidence"]  # protocol and cipher: no certificate was checked
    assert CANARY not in json.dumps(out)


@pytest.mark.tls
async def test_a_certificate_from_a_ca_the_client_lacks_names_its_issuer(
    tls_redis: EmbeddedRedis, tls_files: tuple[TlsFiles, Path]
) -> None:
    _, stranger = tls_files
    cause, out = await connectivity(fast(tls_redis.tls_url, ca_cert=str(stranger)))
    # Signed by the test CA, which the client's CA file (the stranger's) does not hold.
    assert cause == K.TLS_UNTRUSTED_ISSUER, out
    assert "issued by CN=labsession-test-ca" in out["remedy"] and "stranger-ca.pem" in out["remedy"]
    assert out["remedy"].endswith(remedy(K.TLS_UNTRUSTED_ISSUER))
    assert steps(out)["tls"] == "FAIL" and steps(out)["certificate"] == "FAIL"
    assert CANARY not in json.dumps(out)


@pytest.mark.tls
async def test_a_certificate_for_another_name_fails_the_tls_step(
    tls_redis: EmbeddedRedis, tls_files: tuple[TlsFiles, Path]
) -> None:
    files, _ = tls_files
    # '127.1' reaches 127.0.0.1 but is a host name the certificate (localhost, 127.0.0.1) does not carry.
    url = tls_redis.tls_url.replace("localhost", "127.1")
    cause, out = await connectivity(fast(url, ca_cert=str(files.ca)))
    assert cause == K.TLS_HOSTNAME_MISMATCH, out
    assert "names localhost, 127.0.0.1, not '127.1'" in out["remedy"]
    assert steps(out)["tls"] == "FAIL"


async def test_rediss_to_a_port_answering_in_plain_text_says_the_port_is_not_tls() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"-ERR this port speaks no TLS\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        cause, out = await connectivity(fast(f"rediss://127.0.0.1:{port}/0"))
    assert cause == K.TLS_NOT_SPOKEN, out
    assert out["remedy"] == remedy(K.TLS_NOT_SPOKEN) and "use redis://" in out["remedy"]


async def test_rediss_to_a_plain_redis_port_is_tls_not_spoken_not_a_timeout(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # The plain server either waits for a line end (the handshake stalls) or answers the hello
    # with a plain-text error: either way TCP worked and only TLS is missing.
    server = redis_factory(password=CANARY)
    for _ in range(3):
        cause, out = await connectivity(fast(f"rediss://default:{CANARY}@127.0.0.1:{server.port}/0"))
        assert cause == K.TLS_NOT_SPOKEN, out
        assert steps(out)["tcp"] == "PASS" and steps(out)["tls"] == "FAIL" and steps(out)["redis"] == "SKIP"
        assert "firewall" not in out["remedy"] and CANARY not in json.dumps(out)
        said = next(c for c in out["report"]["checks"] if c["name"] == "cause")["evidence"]
        assert said.startswith("TLS_NOT_SPOKEN (the handshake got "), said


async def test_rediss_to_a_port_that_accepts_and_never_answers_is_a_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel accepts into the backlog; nobody reads
        cause, out = await connectivity(fast(f"rediss://127.0.0.1:{listener.getsockname()[1]}/0"))
    assert cause == K.TIMEOUT, out
    said = next(c for c in out["report"]["checks"] if c["name"] == "cause")["evidence"]
    assert said.startswith("TIMEOUT: "), said  # no evidence of plain text: none came


async def test_a_unix_socket_that_is_not_there_is_socket_not_found(tmp_path: Path) -> None:
    cause, out = await connectivity(fast(f"unix://{tmp_path / 'redis.sock'}"))
    assert cause == K.SOCKET_NOT_FOUND, out
    assert out["remedy"] == remedy(K.SOCKET_NOT_FOUND)


async def test_a_url_that_does_not_fit_the_server_names_what_to_change(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(extra_args=["--databases", "2"])
    cause, out = await connectivity(fast(f"redis://127.0.0.1:{server.port}/2"))
    assert cause == K.DB_OUT_OF_RANGE, out
    assert "use /0" in out["remedy"]
    cause, out = await connectivity(fast(f"redis://127.0.0.1:{server.port}/0?cluster=true"))
    assert cause == K.NOT_A_CLUSTER, out
    assert "remove cluster=true" in out["remedy"]


@pytest.mark.tls
async def test_tls_with_the_right_ca_is_ok(tls_redis: EmbeddedRedis, tls_files: tuple[TlsFiles, Path]) -> None:
    files, _ = tls_files
    cause, out = await connectivity(fast(tls_redis.tls_url, ca_cert=str(files.ca)))
    assert cause == CONNECTIVITY_OK, out
    tls = next(c for c in out["report"]["checks"] if c["name"] == "tls")
    assert "localhost" in tls["evidence"] and tls["status"] == "PASS"
    assert "verification is OFF" not in tls["evidence"]
    # Verification off: the handshake still works, and the step says what was not checked.
    cause, out = await connectivity(fast(tls_redis.tls_url, tls_verify=False))
    assert cause == CONNECTIVITY_OK, out
    tls = next(c for c in out["report"]["checks"] if c["name"] == "tls")
    assert tls["status"] == "WARN" and tls["evidence"].endswith("; certificate verification is OFF")


async def test_wrong_password_is_auth_failed_and_the_tried_password_stays_secret(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(password="the-right-one-1234")
    # The client tries the canary: it must not show up in the diagnosis either.
    cause, out = await connectivity(fast(f"redis://default:{CANARY}@127.0.0.1:{server.port}/0"))
    assert cause == K.AUTH_FAILED
    assert CANARY not in json.dumps(out)
    assert "tls probe" not in steps(out)  # a refused password is no sign of a TLS-only port


async def test_no_password_is_auth_failed(redis_factory: Callable[..., EmbeddedRedis]) -> None:
    server = redis_factory(password=CANARY)
    cause, _ = await connectivity(fast(f"redis://127.0.0.1:{server.port}/0"))
    assert cause == K.AUTH_FAILED


async def test_client_limit_is_max_connections(redis_factory: Callable[..., EmbeddedRedis]) -> None:
    server = redis_factory(maxclients=2)
    holders = [RedisService(Settings.from_url(server.url)) for _ in range(2)]
    try:
        for holder in holders:
            await holder.connect()
        cause, out = await connectivity(fast(server.url))
    finally:
        for holder in holders:
            await holder.aclose()
    assert cause == K.MAX_CONNECTIONS, out


def steps(out: dict[str, object]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in out["report"]["checks"]}  # type: ignore[index]


async def test_a_unix_socket_skips_the_network_layers(
    tmp_path: Path, redis_factory: Callable[..., EmbeddedRedis]
) -> None:
    sock = tmp_path / "redis.sock"
    server = redis_factory(extra_args=["--unixsocket", str(sock)])
    cause, out = await connectivity(fast(f"unix://{sock}"))
    assert cause == CONNECTIVITY_OK, out
    assert steps(out) == {
        "dns": "SKIP",
        "tcp": "SKIP",
        "tls": "SKIP",
        "redis": "PASS",
        "topology": "PASS",
        "write": "SKIP",
        "cause": "PASS",
    }
    # Frozen, it times out, and no TLS probe is tried: a socket file has no TLS port.
    server.freeze()
    try:
        cause, out = await connectivity(fast(f"unix://{sock}", connect_timeout=0.5, socket_timeout=0.5))
    finally:
        server.thaw()
    assert cause == K.TIMEOUT, out
    assert "tls probe" not in steps(out)


async def test_a_port_that_never_completes_the_handshake_is_a_timeout() -> None:
    # A listening socket whose one-place accept queue is full: the kernel drops further SYNs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):  # fills the queue
            cause, out = await connectivity(fast(f"redis://127.0.0.1:{port}", connect_timeout=0.5))
    assert cause == K.TIMEOUT, out
    assert steps(out)["tcp"] == "FAIL"


async def test_a_port_that_drops_every_connection_and_speaks_no_tls_is_connection_lost() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        cause, out = await connectivity(fast(f"redis://127.0.0.1:{port}"))
    assert cause == K.CONNECTION_LOST, out  # dropped like a TLS-only port would, but the TLS probe failed
    assert steps(out)["tls probe"] == "PASS"


# -- certificates: each problem staged on a real TLS redis-server, then named with its dates and names


@pytest.mark.tls
async def test_a_certificate_near_its_end_is_a_warning_with_its_date(
    tls_binary: Path, tmp_path: Path, redis_factory: Callable[..., EmbeddedRedis]
) -> None:
    files, ca = make_expiring_cert(tmp_path, days=5)
    server = redis_factory(tls=files, binary=tls_binary, password=CANARY)
    cause, out = await connectivity(fast(server.tls_url, ca_cert=str(ca)))
    assert cause == CONNECTIVITY_OK, out  # it still works today: a warning, not a cause
    tls = next(c for c in out["report"]["checks"] if c["name"] == "tls")
    assert tls["status"] == "WARN" and tls["data"]["daysToExpiry"] in (4, 5), tls
    assert f"it expires in {tls['data']['daysToExpiry']} days ({tls['data']['notAfter']}): renew it" in tls["evidence"]
    assert CANARY not in json.dumps(out)


@pytest.fixture(scope="module")
def problem_certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, TlsFiles], Path]:
    return make_problem_certs(tmp_path_factory.mktemp("problem-tls"))


@pytest.mark.tls
@pytest.mark.parametrize(
    ("problem", "cause"),
    [
        ("expired", K.TLS_CERT_EXPIRED),
        ("not_yet_valid", K.TLS_CERT_NOT_YET_VALID),
        ("wrong_host", K.TLS_HOSTNAME_MISMATCH),
        ("self_signed", K.TLS_SELF_SIGNED),
        ("untrusted_issuer", K.TLS_UNTRUSTED_ISSUER),
    ],
)
async def test_each_certificate_problem_is_named_with_its_dates_and_names(
    tls_binary: Path,
    problem_certs: tuple[dict[str, TlsFiles], Path],
    redis_factory: Callable[..., EmbeddedRedis],
    problem: str,
    cause: RedisCause,
) -> None:
    assert set(PROBLEMS) == set(problem_certs[0])
    files, trusted_ca = problem_certs[0][problem], problem_certs[1]
    server = redis_factory(tls=files, binary=tls_binary, password=CANARY)
    cause_seen, out = await connectivity(fast(server.tls_url, ca_cert=str(trusted_ca)))
    assert cause_seen == cause, out
    assert steps(out) == {
        "dns": "PASS",
        "tcp": "PASS",
        "tls": "FAIL",
        "certificate": "FAIL",
        "redis": "SKIP",
        "cause": "FAIL",
    }
    certificate = next(c for c in out["report"]["checks"] if c["name"] == "certificate")
    facts = certificate["data"]
    named = {  # what the remedy must name for this problem: a date, a name
        "expired": f"expired on {facts['notAfter'][:10]}",
        "not_yet_valid": f"valid only from {facts['notBefore'][:10]}",
        "wrong_host": f"names {OTHER_HOST}, not 'localhost'",
        "self_signed": "CN=localhost is self-signed",
        "untrusted_issuer": "issued by CN=rogue-ca",
    }[problem]
    assert named in out["remedy"] and named in certificate["evidence"], out["remedy"]
    assert out["remedy"].endswith(remedy(cause))
    assert CANARY not in json.dumps(out)
    # The library itself still says only that verification failed; the runbook names which problem.
    with pytest.raises(RedisUnavailable) as caught:
        async with RedisService(fast(server.tls_url, ca_cert=str(trusted_ca))):
            pass
    assert caught.value.cause is K.TLS_VERIFY_FAILED


# -- topology: a replica, a cluster node, and the healthy shapes around them


async def test_a_replica_is_named_with_the_primary_it_follows(redis_factory: Callable[..., EmbeddedRedis]) -> None:
    primary = redis_factory(password=CANARY)
    replica = redis_factory(password=CANARY, replica_of=(primary.host, primary.port))
    cause, out = await connectivity(fast(replica.url))
    assert cause == K.ENDPOINT_IS_REPLICA, out
    topology = next(c for c in out["report"]["checks"] if c["name"] == "topology")
    assert topology["status"] == "FAIL"
    assert f"a replica of 127.0.0.1:{primary.port}" in topology["evidence"] and "READONLY" in topology["evidence"]
    assert steps(out)["redis"] == "PASS"  # it answers: only its role is wrong
    assert CANARY not in json.dumps(out)
    # What the runbook predicts is what a backend meets: its session write is refused.
    async with RedisService(fast(replica.url)) as redis:
        with pytest.raises(RedisUnavailable) as caught:
            await LabSessionService(redis).create("u", "l", "p", base_url="ws://h")
    assert caught.value.cause is K.READ_ONLY
    # The facts behind it: a replica's own count of replicas is not asked, the cluster section was read.
    async with RedisService(fast(replica.url)) as redis:
        facts = await read_topology(redis)
    assert (facts.role, facts.replicas, facts.read_only, facts.hidden) == ("replica", None, True, None), facts
    # The primary, once that replica is attached, is healthy.
    with Redis.from_url(primary.url) as admin:
        await wait_until(lambda: admin.info("replication")["connected_slaves"] == 1, "the replica to attach")
    async with RedisService(fast(primary.url)) as redis:
        facts = await read_topology(redis)
    assert (facts.role, facts.master, facts.replicas, facts.read_only, facts.hidden) == ("master", None, 1, None, None)
    cause, out = await connectivity(fast(primary.url))
    assert cause == CONNECTIVITY_OK, out
    assert "role master (standalone, 1 replica)" in next(
        c["evidence"] for c in out["report"]["checks"] if c["name"] == "topology"
    )


async def test_a_writable_replica_is_a_replica_that_loses_writes(redis_factory: Callable[..., EmbeddedRedis]) -> None:
    primary = redis_factory()
    replica = redis_factory(replica_of=(primary.host, primary.port), extra_args=["--replica-read-only", "no"])
    cause, out = await connectivity(fast(replica.url))
    assert cause == K.ENDPOINT_IS_REPLICA, out
    evidence = next(c["evidence"] for c in out["report"]["checks"] if c["name"] == "topology")
    assert "never reach the primary" in evidence and "READONLY" not in evidence


async def test_a_replica_whose_primary_is_gone_is_still_a_replica(redis_factory: Callable[..., EmbeddedRedis]) -> None:
    primary = redis_factory()
    replica = redis_factory(replica_of=(primary.host, primary.port))
    primary.stop()  # a failover that left REDIS_URL on the old replica
    cause, out = await connectivity(fast(replica.url))
    assert cause == K.ENDPOINT_IS_REPLICA, out
    assert "replication link down" in next(c["evidence"] for c in out["report"]["checks"] if c["name"] == "topology")


@pytest.mark.slow
async def test_a_cluster_node_without_cluster_mode_is_named_and_with_it_is_ok() -> None:
    with EmbeddedRedisCluster() as cluster:
        cause, out = await connectivity(fast(cluster.nodes[0].url))
        assert cause == K.CLUSTER_REQUIRED, out
        assert "MOVED" in next(c["evidence"] for c in out["report"]["checks"] if c["name"] == "topology")
        cause, out = await connectivity(fast(cluster.url))
        assert cause == CONNECTIVITY_OK, out
        assert steps(out)["topology"] == "PASS"


# -- writes: a server that answers every read and PING and refuses writes


async def test_a_writing_run_tries_one_write_and_leaves_no_key(redis_factory: Callable[..., EmbeddedRedis]) -> None:
    server = redis_factory(password=CANARY)
    cause, out = await connectivity(fast(server.url), writes_allowed=True)
    assert cause == CONNECTIVITY_OK and steps(out)["write"] == "PASS", out
    with Redis.from_url(server.url) as client:
        assert client.keys("*") == [] and client.info("commandstats")["cmdstat_set"]["calls"] == 1
    cause, out = await connectivity(fast(server.url))  # read-only: no write, and it says so
    assert cause == CONNECTIVITY_OK and steps(out)["write"] == "SKIP", out
    assert CANARY not in json.dumps(out)


async def test_redis_at_its_memory_limit_answers_reads_and_refuses_the_write(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    with Redis.from_url(server.url) as client:
        client.set("ballast", b"x" * 3_000_000)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "2mb")
    cause, out = await connectivity(fast(server.url))
    assert cause == CONNECTIVITY_OK, out  # what a read-only run can see: every layer answers
    cause, out = await connectivity(fast(server.url), writes_allowed=True)
    assert cause == K.OUT_OF_MEMORY, out
    write = next(c for c in out["report"]["checks"] if c["name"] == "write")
    assert write["status"] == "FAIL" and "refused a write (OUT_OF_MEMORY" in write["evidence"]
    assert out["remedy"] == remedy(K.OUT_OF_MEMORY)


async def test_upstash_at_its_storage_quota_refuses_only_the_write() -> None:
    async with RespStub("ERR DB capacity quota exceeded", fail={"SET"}, password=CANARY) as stub:
        read_only, _ = await connectivity(fast(stub.url))
        named, out = await connectivity(fast(stub.url), writes_allowed=True)
    assert read_only == CONNECTIVITY_OK
    assert named == K.DB_CAPACITY_EXCEEDED, out
    assert CANARY not in json.dumps(out)


async def test_a_replica_is_not_written_to() -> None:
    # the role names the fault first; writing to a (writable) replica would lose the key at the next resync
    with EmbeddedRedis() as primary, EmbeddedRedis(replica_of=("127.0.0.1", primary.port)) as replica:
        cause, out = await connectivity(fast(replica.url), writes_allowed=True)
        with Redis.from_url(replica.url) as client:
            assert "cmdstat_set" not in client.info("commandstats")
    assert cause == K.ENDPOINT_IS_REPLICA and steps(out)["write"] == "SKIP", out


# -- Upstash's own error texts, answered by a RESP stub: the runbook and the library name the same cause

UPSTASH_TEXTS = [
    ("ERR max daily request limit exceeded. Limit: 10000, Usage: 10000", K.DAILY_LIMIT_EXCEEDED),
    ("ERR max requests limit exceeded. Limit: 500000, Usage: 500000", K.MONTHLY_LIMIT_EXCEEDED),
    ("ERR max request size exceeded. Limit: 1048576 bytes", K.REQUEST_TOO_LARGE),
    ("ERR max concurrent connections exceeded", K.MAX_CONNECTIONS),
    ("WRONGPASS invalid or missing auth token", K.AUTH_FAILED),
    ("ERR DB capacity quota exceeded", K.DB_CAPACITY_EXCEEDED),
    ("ERR max single record size exceeded", K.QUOTA_EXCEEDED),
    ("ERR a limit nobody has documented yet", K.UNKNOWN),
    # Redis' own refusal at its memory limit: plain Redis sends it only for writes, which this runbook never makes
    ("OOM command not allowed when used memory > 'maxmemory'.", K.OUT_OF_MEMORY),
]


@pytest.mark.parametrize(("text", "cause"), UPSTASH_TEXTS)
async def test_each_upstash_error_text_is_named_by_the_runbook_and_the_library(text: str, cause: RedisCause) -> None:
    async with RespStub(text, password=CANARY) as stub:
        named, out = await connectivity(fast(stub.url))
        with pytest.raises(RedisUnavailable) as caught:
            async with RedisService(fast(stub.url)):
                pass
    assert named == cause == caught.value.cause, out
    assert out["remedy"] == remedy(cause)
    assert steps(out)["redis"] == "FAIL" and "tls probe" not in steps(out)
    assert CANARY not in json.dumps(out) and CANARY not in str(caught.value)
    # One attempt each, and nothing but the handshake was sent: no admin command on the user's server.
    assert stub.seen == ["HELLO 3", "HELLO 3"], stub.seen


def test_every_cause_has_a_remedy_and_is_registered() -> None:
    for cause in (CONNECTIVITY_OK, *K):
        assert remedy_for(cause)
    for known in K:  # the same sentence as the store's own errors carry
        assert remedy_for(known) == remedy_for(known.value) == remedy(known)
    ok = "".join(["O", "K"])  # read back from a summary: equal to OK, not the same object
    assert remedy_for(ok) == remedy_for(CONNECTIVITY_OK) and remedy_for(ok).startswith("Redis answers")
    assert set(RUNBOOKS["redis_connectivity"].causes) == {CONNECTIVITY_OK, *(c.value for c in K)}
    assert set(RUNBOOKS["invalid_session"].causes) == {c.value for c in C}
    for spec in RUNBOOKS.values():
        assert spec.path.name.endswith(".ipynb")


# -- invalid_session with real backend instances ------------------------------------------------


@pytest.mark.slow
async def test_two_backends_on_two_redis_servers_do_not_share_a_store(
    redis_factory: Callable[..., EmbeddedRedis], backend_factory: Callable[..., BackendProcess]
) -> None:
    one, two = redis_factory(), redis_factory()
    a = backend_factory(one.url, instance_id="instance-a")
    b = backend_factory(two.url, instance_id="instance-b")
    settings = Settings.from_url(one.url)
    async with RedisService(settings) as redis:
        session = await LabSessionService(redis).create("u", "lab", "p", base_url=a.ws_url)
    cause, out = await invalid(settings, session.session_id, backend_urls=(a.url, b.url), samples_per_url=2)
    assert cause == C.INSTANCES_DO_NOT_SHARE_STORE, out
    checks = {c["name"]: c for c in out["report"]["checks"]}
    assert checks["shared store"]["status"] == "FAIL"
    assert set(checks["shared store"]["data"]["instances"]) == {"instance-a", "instance-b"}
    assert checks["backend lookups"]["data"]["outcomes"] == {"valid": 2, "not found": 2}
    assert checks["session key"]["status"] == "PASS"  # the session itself is fine


@pytest.mark.slow
async def test_two_backends_on_one_redis_and_a_valid_session_is_no_fault(
    embedded_redis: EmbeddedRedis, backend_factory: Callable[..., BackendProcess]
) -> None:
    a = backend_factory(embedded_redis.url, instance_id="instance-a")
    b = backend_factory(embedded_redis.url, instance_id="instance-b")
    settings = Settings.from_url(embedded_redis.url)
    async with RedisService(settings) as redis:
        session = await LabSessionService(redis).create("u", "lab", "p", base_url=a.ws_url)
    cause, out = await invalid(
        settings, session.session_id, backend_urls=(a.url, b.url), samples_per_url=2, read_only=False
    )
    assert cause == C.NO_FAULT_FOUND, out
    checks = {c["name"]: c for c in out["report"]["checks"]}
    assert checks["shared store"]["status"] == "PASS"
    assert checks["backend lookups"]["data"]["outcomes"] == {"valid": 4}


@pytest.mark.slow
async def test_backends_on_another_redis_than_the_runbook_looks_at(
    redis_factory: Callable[..., EmbeddedRedis], backend_factory: Callable[..., BackendProcess]
) -> None:
    theirs, ours = redis_factory(), redis_factory()
    a = backend_factory(theirs.url, instance_id="instance-a")
    cause, out = await invalid(Settings.from_url(ours.url), None, backend_urls=(a.url,), samples_per_url=2)
    assert cause == C.INSTANCES_DO_NOT_SHARE_STORE
    assert "not the Redis" in json.dumps(out)


async def test_a_read_only_acl_user_runs_every_read_only_step(
    embedded_redis: EmbeddedRedis, sessions: LabSessionService, redis_service: RedisService
) -> None:
    session = await sessions.create("u", "lab", "p", base_url="ws://x")
    await redis_service.client.execute_command(
        "ACL", "SETUSER", "reader", "on", ">reader-pass-1234", "~*", "+@read", "+@connection", "+info", "-@write"
    )
    url = f"redis://reader:reader-pass-1234@127.0.0.1:{embedded_redis.port}/0"
    cause, out = await invalid(Settings.from_url(url), session.session_id)
    assert cause == C.NO_FAULT_FOUND, out
    assert {c["name"]: c["status"] for c in out["report"]["checks"]}["session key"] == "PASS"
    connectivity_cause, _ = await connectivity(fast(url))
    assert connectivity_cause == CONNECTIVITY_OK
