"""A REDIS_URL that does not fit the server it reaches is named for what to change in it.

Each mismatch is staged against a real server: ``rediss://`` to a plain-text port, a unix
socket path that is not there, a database number the server does not have, ``cluster=true``
against a single server and a single-server client on a Redis Cluster. Each must come back as
one :class:`RedisUnavailable` whose cause code and sentence say what to change, never as
"unexpected ResponseError" or a firewall hint.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import exceptions as rx

from labsession import EmbeddedRedis, LabSessionService, RedisCause, RedisService, RedisUnavailable, Settings
from labsession.checks import Status
from labsession.embedded.redis_cluster import EmbeddedRedisCluster
from labsession.runner.check import run_checks
from labsession.store.classify import classify, database_remedy, is_retryable, remedy
from labsession.store.mismatch import explain

from support import CANARY

Factory = Callable[..., EmbeddedRedis]
K = RedisCause

pytestmark = pytest.mark.timeout(60)


def quick(url: str, **changes: object) -> Settings:
    """Settings that give up within about a second: one attempt, short waits."""
    base: dict[str, object] = {
        "retry_attempts": 1,
        "connect_timeout": 0.5,
        "socket_timeout": 0.5,
        "operation_timeout": 1.0,
    }
    base.update(changes)
    return Settings.from_url(url, **base)


async def failure(settings: Settings) -> RedisUnavailable:
    with pytest.raises(RedisUnavailable) as caught:
        async with RedisService(settings) as redis:
            await LabSessionService(redis).validate("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f")
    error = caught.value
    assert CANARY not in str(error) and CANARY not in repr(error)
    return error


# -- rediss:// to a plain-text port --------------------------------------------------------------


async def test_rediss_to_a_plain_text_port_is_tls_not_spoken(
    redis_factory: Factory, captured_logs: pytest.LogCaptureFixture
) -> None:
    # A plain redis-server reads the ClientHello as an inline command: it either waits for a
    # line end (the handshake stalls) or answers an error in plain text (the handshake reads
    # non-TLS bytes), depending on the random bytes of the hello. Both are the same mistake.
    server = redis_factory(password=CANARY)
    for _ in range(4):
        error = await failure(quick(f"rediss://default:{CANARY}@127.0.0.1:{server.port}/0"))
        assert error.cause is K.TLS_NOT_SPOKEN, error
        assert "redis://" in str(error) and "firewall" not in str(error)
    # The log says it once, exactly: no firewall hint before the real cause.
    assert "TLS_NOT_SPOKEN" in captured_logs.text
    assert "TIMEOUT" not in captured_logs.text and "firewall" not in captured_logs.text
    assert CANARY not in captured_logs.text


async def test_a_port_that_accepts_and_never_answers_is_still_a_timeout() -> None:
    # The kernel completes the TCP handshake into the backlog; nobody reads: not a plain-text
    # port, just a server that does not answer.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        error = await failure(quick(f"rediss://127.0.0.1:{port}/0"))
    assert error.cause is K.TIMEOUT, error


@pytest.mark.tls
async def test_a_frozen_tls_server_is_still_a_timeout(tls_redis: EmbeddedRedis) -> None:
    tls_redis.freeze()
    try:
        error = await failure(quick(tls_redis.tls_url, tls_verify=False))
    finally:
        tls_redis.thaw()
    assert error.cause is K.TIMEOUT, error


# -- unix sockets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing.sock", "a-file/redis.sock"])
async def test_a_unix_socket_path_that_is_not_there_is_socket_not_found(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    path = tmp_path / where
    error = await failure(quick(f"unix://{path}"))
    assert error.cause is K.SOCKET_NOT_FOUND, error
    assert str(path) in str(error) and "unixsocket" in str(error)
    assert "restarted" not in str(error)


def test_a_socket_this_user_may_not_open_is_socket_not_found() -> None:
    # Staged by hand: the suite runs as root here, which may open any socket.
    refused = rx.ConnectionError("Error 13 connecting to /run/redis/redis.sock. Permission denied.")
    refused.__context__ = PermissionError(13, "Permission denied")
    assert classify(refused) is K.SOCKET_NOT_FOUND
    # A local firewall dropping a TCP connect says EPERM: that is no socket file.
    dropped = rx.ConnectionError("Error 1 connecting to 10.0.0.1:6379. Operation not permitted.")
    dropped.__context__ = PermissionError(1, "Operation not permitted")
    assert classify(dropped) is not K.SOCKET_NOT_FOUND


# -- database numbers ------------------------------------------------------------------------------


async def test_a_database_number_the_server_does_not_have_is_db_out_of_range(redis_factory: Factory) -> None:
    server = redis_factory(password=CANARY, extra_args=["--databases", "4"])
    async with RedisService(quick(f"redis://default:{CANARY}@127.0.0.1:{server.port}/3")) as redis:
        assert await redis.ping() > 0  # the highest one there is
    error = await failure(quick(f"redis://default:{CANARY}@127.0.0.1:{server.port}/4"))
    assert error.cause is K.DB_OUT_OF_RANGE, error
    assert "database 4" in str(error) and "/0" in str(error)
    assert not is_retryable(rx.ResponseError("DB index is out of range"))


async def test_labsession_check_names_the_database_and_fails_rather_than_crashing(redis_factory: Factory) -> None:
    server = redis_factory()
    report = await run_checks(quick(f"redis://127.0.0.1:{server.port}/99"), write=False)
    connect = next(c for c in report.checks if c.name == "connect")
    assert connect.status is Status.FAIL and connect.data["cause"] == "DB_OUT_OF_RANGE", connect
    assert "database 99" in connect.evidence


# -- cluster or not --------------------------------------------------------------------------------


async def test_cluster_true_against_a_single_server_is_not_a_cluster(redis_factory: Factory) -> None:
    server = redis_factory(password=CANARY)
    error = await failure(quick(f"redis://default:{CANARY}@127.0.0.1:{server.port}/0?cluster=true"))
    assert error.cause is K.NOT_A_CLUSTER, error
    assert "cluster=true" in str(error)
    report = await run_checks(quick(f"redis://:{CANARY}@127.0.0.1:{server.port}/0?cluster=true"), write=False)
    assert report.verdict is Status.FAIL
    assert next(c for c in report.checks if c.name == "connect").data["cause"] == "NOT_A_CLUSTER"


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[EmbeddedRedisCluster]:
    with EmbeddedRedisCluster() as cluster:
        yield cluster


@pytest.mark.slow
async def test_a_single_server_client_on_a_cluster_is_told_to_set_cluster(
    redis_cluster: EmbeddedRedisCluster,
) -> None:
    # PING works on any node; the first key held by another node answers MOVED.
    single = redis_cluster.url.split("?", 1)[0]  # the same node, without cluster=true
    async with RedisService(quick(single, cluster=False)) as redis:
        sessions = LabSessionService(redis)
        with pytest.raises(RedisUnavailable) as caught:
            for n in range(64):
                await sessions.validate(f"6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e{n:02x}")
    assert caught.value.cause is K.CLUSTER_REQUIRED, caught.value
    assert "cluster=true" in str(caught.value)


def test_every_new_cause_has_its_own_remedy() -> None:
    new = (K.TLS_NOT_SPOKEN, K.SOCKET_NOT_FOUND, K.DB_OUT_OF_RANGE, K.NOT_A_CLUSTER, K.CLUSTER_REQUIRED)
    sentences = {remedy(cause) for cause in new}
    assert len(sentences) == len(new)
    assert list(K)[-1] is K.UNKNOWN  # new codes go before UNKNOWN


# -- which failures are refined ------------------------------------------------------------------


@pytest.mark.parametrize("cause", [K.AUTH_FAILED, K.CONNECTION_REFUSED, K.TLS_VERIFY_FAILED, K.UNKNOWN])
async def test_only_a_timeout_is_checked_for_plain_text_and_only_a_missing_database_is_named(
    redis_factory: Factory, cause: RedisCause
) -> None:
    # rediss:// to a plain port that answers PING: a timeout there would be TLS_NOT_SPOKEN, no other cause is.
    server = redis_factory()
    error = RedisUnavailable(cause, "127.0.0.1", "detail")
    assert await explain(error, quick(f"rediss://127.0.0.1:{server.port}/3")) is error
    assert await explain(error, quick(f"redis://127.0.0.1:{server.port}/3")) is error


def test_a_url_without_a_database_number_selects_database_0() -> None:
    error = RedisUnavailable(K.DB_OUT_OF_RANGE, "127.0.0.1:1", remedy(K.DB_OUT_OF_RANGE) + " (ResponseError: x)")
    explained = asyncio.run(explain(error, quick("redis://127.0.0.1:1")))
    assert explained.cause is K.DB_OUT_OF_RANGE
    assert explained.detail == database_remedy(0) + " (ResponseError: x)"
