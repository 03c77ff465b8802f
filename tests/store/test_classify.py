"""classify()/unavailable() on errors produced by real servers, and on reply texts that only
look like outages."""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable

import pytest
import redis
from redis import exceptions as rx

from labsession import EmbeddedRedis, LabSessionService, RedisCause, RedisService, RedisUnavailable, Settings
from labsession.store.classify import classify, database_remedy, describe, is_retryable, remedy, unavailable

from support import CANARY

Factory = Callable[..., EmbeddedRedis]


async def test_full_server_is_out_of_memory(redis_factory: Factory) -> None:
    server = redis_factory(maxmemory="2mb", maxmemory_policy="noeviction")
    filler = redis.Redis.from_url(server.url)
    for size in (100_000, 1_000):  # coarse, then fine: end right at the limit
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for i in range(10_000):
                filler.set(f"filler:{size}:{i}", b"x" * size)
    async with RedisService(Settings.from_url(server.url)) as service:
        with pytest.raises(RedisUnavailable) as caught:
            await LabSessionService(service).create("u", "l", "p", base_url="ws://h")
    filler.close()
    assert caught.value.cause is RedisCause.OUT_OF_MEMORY and "maxmemory" in str(caught.value)


async def test_full_client_table_is_max_connections(redis_factory: Factory) -> None:
    server = redis_factory(maxclients=1)
    holder = redis.Redis.from_url(server.url)
    holder.ping()
    settings = Settings.from_url(server.url, retry_attempts=2, operation_timeout=1.0)
    with pytest.raises(RedisUnavailable) as caught:
        async with RedisService(settings):
            pass
    holder.close()
    assert caught.value.cause is RedisCause.MAX_CONNECTIONS


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            redis.ResponseError("unknown command 'CONFIG', with args beginning with: 'GET' 'maxclients'"),
            RedisCause.UNKNOWN,
        ),
        (redis.ResponseError("ERR Error running script: timeout in user code"), RedisCause.UNKNOWN),
        (
            redis.ResponseError("ERR max requests limit exceeded. Limit: 10000, Usage: 10000"),
            RedisCause.MONTHLY_LIMIT_EXCEEDED,
        ),
        (redis.ResponseError("ERR max single record size exceeded"), RedisCause.QUOTA_EXCEEDED),
        (redis.ResponseError("ERR max number of clients reached"), RedisCause.MAX_CONNECTIONS),
        (
            redis.exceptions.NoPermissionError("this user has no permissions to run the 'set' command"),
            RedisCause.READ_ONLY,
        ),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), RedisCause.READ_ONLY),
        (redis.ConnectionError("Error 111 connecting to h:1. Connection refused."), RedisCause.CONNECTION_REFUSED),
        (redis.ConnectionError("Connection closed by server."), RedisCause.CONNECTION_LOST),
        (redis.TimeoutError("Timeout reading from socket"), RedisCause.TIMEOUT),
        (redis.AuthenticationError("invalid username-password pair"), RedisCause.AUTH_FAILED),
        (ValueError("something else"), RedisCause.UNKNOWN),
    ],
)
def test_classify(error: Exception, cause: RedisCause) -> None:
    assert classify(error) is cause
    assert remedy(cause)


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("ERR max daily request limit exceeded. Limit: 10000, Usage: 10000", RedisCause.DAILY_LIMIT_EXCEEDED),
        ("ERR max requests limit exceeded.", RedisCause.MONTHLY_LIMIT_EXCEEDED),
        ("ERR max request size exceeded. Limit: 1048576 bytes", RedisCause.REQUEST_TOO_LARGE),
        ("ERR max concurrent connections exceeded", RedisCause.MAX_CONNECTIONS),
        ("WRONGPASS invalid or missing auth token", RedisCause.AUTH_FAILED),
        ("ERR DB capacity quota exceeded", RedisCause.DB_CAPACITY_EXCEEDED),
        ("ERR max key size exceeded", RedisCause.QUOTA_EXCEEDED),
    ],
)
def test_each_upstash_text_has_its_own_cause_as_a_reply_and_inside_a_connection_error(
    text: str, cause: RedisCause
) -> None:
    assert classify(redis.ResponseError(text)) is cause
    assert classify(_linked(redis.ConnectionError("Error while connecting"), redis.ResponseError(text))) is cause
    # Waiting seconds cannot lift a plan limit; a full connection table may free up.
    assert is_retryable(redis.ResponseError(text)) is (cause is RedisCause.MAX_CONNECTIONS)
    assert "Upstash" in remedy(cause) or cause in (RedisCause.AUTH_FAILED, RedisCause.QUOTA_EXCEEDED)


def test_retryable_only_when_waiting_can_help() -> None:
    assert is_retryable(redis.ConnectionError("Connection closed by server."))
    assert is_retryable(redis.TimeoutError("Timeout reading from socket"))
    assert not is_retryable(redis.AuthenticationError("invalid password"))
    assert not is_retryable(redis.ResponseError("ERR max daily request limit exceeded"))


def test_unavailable_after_a_timeout_names_the_bound_and_the_last_error() -> None:
    try:
        try:
            raise redis.ConnectionError(f"Error 111 connecting to redis://u:{CANARY}@h:1. Connection refused.")
        except redis.ConnectionError:
            raise TimeoutError from None
    except TimeoutError as outer:
        outer.__context__ = redis.ConnectionError("Error 111 connecting to h:1. Connection refused.")
        error = unavailable(outer, "h:1", tls=False, waited=2.5)
    assert error.cause is RedisCause.CONNECTION_REFUSED
    assert "gave up after 2.5 s" in str(error) and "Connection refused" in str(error)
    assert describe(TimeoutError()) == "no reply in time"


def test_plain_connection_dropped_by_a_tls_port_is_tls_required() -> None:
    dropped = redis.ConnectionError("Connection closed by server.")
    assert unavailable(dropped, "h:1", tls=False).cause is RedisCause.TLS_REQUIRED
    assert unavailable(dropped, "h:1", tls=True).cause is RedisCause.CONNECTION_LOST


def test_a_full_client_pool_is_not_blamed_on_the_server() -> None:
    # redis-py raises these itself when its own pool has no free connection; nothing reached Redis.
    for raised in (rx.MaxConnectionsError("Too many connections"), rx.MaxConnectionsError()):
        error = unavailable(raised, "h:6379")
        assert error.cause is RedisCause.MAX_CONNECTIONS
        assert "own connection pool" in str(error) and "maxclients" not in str(error)


async def test_the_servers_client_limit_is_named_as_the_servers(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(maxclients=1)
    with redis.Redis.from_url(server.url) as holder:
        holder.ping()  # takes the only slot
        with pytest.raises(RedisUnavailable) as caught:
            async with RedisService(Settings.from_url(server.url, retry_attempts=1)):
                pass
    assert caught.value.cause is RedisCause.MAX_CONNECTIONS
    assert "maxclients" in str(caught.value) and "own connection pool" not in str(caught.value)


def _linked(*errors: BaseException) -> BaseException:
    """``errors[0]`` raised while handling ``errors[1]``, raised while handling ``errors[2]``..."""
    for outer, inner in itertools.pairwise(errors):
        outer.__context__ = inner
    return errors[0]


def test_the_chain_is_read_ten_links_deep_and_never_round_a_cycle() -> None:
    tenth = _linked(*(ValueError(f"wrapper {i}") for i in range(9)), ConnectionRefusedError("refused"))
    assert classify(tenth) is RedisCause.CONNECTION_REFUSED
    eleventh = _linked(*(ValueError(f"wrapper {i}") for i in range(10)), ConnectionRefusedError("refused"))
    assert classify(eleventh) is RedisCause.UNKNOWN
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert classify(a) is RedisCause.UNKNOWN
    assert describe(a) == "ValueError: a"


def test_unavailable_takes_tls_and_waited_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        unavailable(ValueError("x"), "h:1", False)  # type: ignore[misc]


def test_a_dropped_connection_is_tls_required_only_when_tls_is_known_to_be_off() -> None:
    dropped = redis.ConnectionError("Connection closed by server.")
    assert unavailable(dropped, "h:1").cause is RedisCause.CONNECTION_LOST  # tls unknown
    assert unavailable(dropped, "h:1", tls=False).cause is RedisCause.TLS_REQUIRED


@pytest.mark.parametrize(
    "error",
    [
        # Another cause found first, with a pool-full text somewhere in the chain: that cause's advice.
        ConnectionRefusedError("Too many connections"),
        rx.ReadOnlyError("Too many connections"),
        # The server's refusal in the chain: its advice, even after our pool ran dry retrying.
        _linked(rx.MaxConnectionsError(), redis.ConnectionError("max number of clients reached")),
        # A client-side MaxConnectionsError that says something else, after an empty timeout.
        _linked(rx.MaxConnectionsError("ERR maxclients reached"), TimeoutError()),
    ],
)
def test_only_the_pool_running_dry_gets_the_pool_advice(error: BaseException) -> None:
    error_text = str(unavailable(error, "h:6379"))
    assert "own connection pool" not in error_text
    assert remedy(classify(error)) in error_text


def test_describe_names_the_type_and_at_most_200_characters() -> None:
    text = "x" * 250
    assert describe(ValueError(text)) == f"ValueError: {'x' * 200}"
    assert describe(ValueError("y" * 200)) == f"ValueError: {'y' * 200}"
    assert describe(_linked(TimeoutError(), ValueError("the real reason"))) == "ValueError: the real reason"


# -- a REDIS_URL that does not fit the server (tests/store/test_mismatched_urls.py stages each) -----


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (rx.MovedError("3999 127.0.0.1:6381"), RedisCause.CLUSTER_REQUIRED),
        (rx.AskError("3999 127.0.0.1:6381"), RedisCause.CLUSTER_REQUIRED),
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), RedisCause.SOCKET_NOT_FOUND),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory"), RedisCause.SOCKET_NOT_FOUND),
        (PermissionError(errno.EACCES, "Permission denied"), RedisCause.SOCKET_NOT_FOUND),
        (rx.ResponseError("ERR This instance has cluster support disabled"), RedisCause.NOT_A_CLUSTER),
        (rx.ResponseError("ERR DB index is out of range"), RedisCause.DB_OUT_OF_RANGE),
        (
            rx.ConnectionError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
            RedisCause.TLS_NOT_SPOKEN,
        ),
    ],
)
def test_a_url_that_does_not_fit_the_server_is_named_by_what_to_change(exc: BaseException, cause: RedisCause) -> None:
    assert classify(exc) is cause


def test_a_socket_refused_by_a_local_firewall_is_not_a_missing_socket() -> None:
    assert classify(PermissionError(errno.EPERM, "Operation not permitted")) is not RedisCause.SOCKET_NOT_FOUND


def test_the_database_remedy_names_the_number_when_it_is_known() -> None:
    assert database_remedy(3).startswith("REDIS_URL asks for database 3, which this server does not have; use /0")
    assert database_remedy(None).startswith("REDIS_URL asks for a database this server does not have")
