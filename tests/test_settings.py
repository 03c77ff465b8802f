"""Settings: from_env/from_url, one ConfigError per bad variable, nothing secret in repr/str."""

from __future__ import annotations

from pathlib import Path

import pytest

from labsession import ConfigError, Settings

from support import CANARY

URL = f"redis://default:{CANARY}@127.0.0.1:6390/0"


def test_from_env_reads_every_variable(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    env = {
        "REDIS_URL": URL,
        "LAB_TIMEOUT_MINUTES": "30",
        "SESSION_KEY_PREFIX": "lab:",
        "SESSION_GRACE_SECONDS": "2.5",
        "REDIS_CA_CERT": str(ca),
        "REDIS_TLS_VERIFY": "yes",
        "REDIS_CONNECT_TIMEOUT": "1.5",
        "REDIS_SOCKET_TIMEOUT": "2",
        "REDIS_OPERATION_TIMEOUT": "4",
        "REDIS_RETRY_ATTEMPTS": "3",
        "REDIS_CLIENT_NAME": "probe-1",
        "REDIS_CLUSTER": "false",
    }
    s = Settings.from_env(env)
    assert (s.redis_url, s.lab_timeout_minutes, s.key_prefix, s.grace_seconds) == (URL, 30, "lab:", 2.5)
    assert (s.ca_cert, s.tls_verify, s.connect_timeout, s.socket_timeout) == (str(ca), True, 1.5, 2.0)
    assert (s.operation_timeout, s.retry_attempts, s.client_name, s.cluster) == (4.0, 3, "probe-1", False)
    assert s.session_ttl_seconds == 1800


def test_defaults_match_the_typescript_backend() -> None:
    s = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379"})
    assert s.lab_timeout_minutes == 120
    assert s.session_ttl_seconds == 7200
    assert s.key_prefix == "session:"
    assert s.grace_seconds == 10
    assert s.tls is False and s.tls_verify is True and s.cluster is False
    assert s.retry_attempts == 10
    assert s.client_name.startswith("labsession-")


def test_overrides_win_over_the_environment() -> None:
    s = Settings.from_env({"REDIS_URL": URL, "LAB_TIMEOUT_MINUTES": "30"}, lab_timeout_minutes=5)
    assert s.lab_timeout_minutes == 5


def test_from_url_decides_tls_by_scheme() -> None:
    assert Settings.from_url("rediss://h.example:6380").tls is True
    assert Settings.from_url("redis://h.example:6380").tls is False
    unix = Settings.from_url("unix:///run/redis/redis.sock")
    assert unix.tls is False and unix.endpoint == "/run/redis/redis.sock" and unix.port is None


def test_upstash_redis_url_is_upgraded_to_tls() -> None:
    s = Settings.from_url(f"redis://default:{CANARY}@eu1-fine-cat-12345.upstash.io:6379")
    assert s.is_upstash and s.tls and s.tls_upgraded
    already = Settings.from_url(f"rediss://default:{CANARY}@eu1-fine-cat-12345.upstash.io:6379")
    assert already.tls and not already.tls_upgraded
    lookalike = Settings.from_url("redis://upstash.io.evil.example:6379")
    assert not lookalike.tls


@pytest.mark.parametrize(
    ("url", "env", "cluster"),
    [
        ("redis://127.0.0.1:7000?cluster=true", {}, True),
        ("redis://127.0.0.1:7000?cluster=false", {}, False),
        ("redis://127.0.0.1:7000", {"REDIS_CLUSTER": "1"}, True),
        ("redis://127.0.0.1:7000?cluster=true", {"REDIS_CLUSTER": "off"}, False),
    ],
)
def test_cluster_flag(url: str, env: dict[str, str], cluster: bool) -> None:
    assert Settings.from_env({"REDIS_URL": url, **env}).cluster is cluster


def test_from_url_cluster_query() -> None:
    assert Settings.from_url("redis://127.0.0.1:7000?cluster=yes").cluster is True
    assert Settings.from_url("redis://127.0.0.1:7000?cluster=yes", cluster=False).cluster is False


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "REDIS_URL"),
        ({"REDIS_URL": "   "}, "REDIS_URL"),
        ({"REDIS_URL": f"http://default:{CANARY}@host:6379"}, "REDIS_URL"),
        ({"REDIS_URL": f"redis://default:{CANARY}@host:notaport"}, "REDIS_URL"),
        ({"REDIS_URL": f"redis://default:{CANARY}@:6379"}, "REDIS_URL"),
        ({"REDIS_URL": f"{CANARY}@host:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://host:0"}, "REDIS_URL"),
        ({"REDIS_URL": "unix://"}, "REDIS_URL"),
        ({"REDIS_URL": URL, "LAB_TIMEOUT_MINUTES": "two hours"}, "LAB_TIMEOUT_MINUTES"),
        ({"REDIS_URL": URL, "LAB_TIMEOUT_MINUTES": "0"}, "LAB_TIMEOUT_MINUTES"),
        ({"REDIS_URL": URL, "SESSION_GRACE_SECONDS": "ten"}, "SESSION_GRACE_SECONDS"),
        ({"REDIS_URL": URL, "REDIS_TLS_VERIFY": "maybe"}, "REDIS_TLS_VERIFY"),
        ({"REDIS_URL": URL, "REDIS_CA_CERT": "/nonexistent/ca.pem"}, "REDIS_CA_CERT"),
        ({"REDIS_URL": URL, "REDIS_RETRY_ATTEMPTS": "many"}, "REDIS_RETRY_ATTEMPTS"),
        ({"REDIS_URL": URL, "REDIS_RETRY_ATTEMPTS": "0"}, "REDIS_RETRY_ATTEMPTS"),
        ({"REDIS_URL": URL, "REDIS_CONNECT_TIMEOUT": "-1"}, "REDIS_CONNECT_TIMEOUT"),
        ({"REDIS_URL": URL, "REDIS_SOCKET_TIMEOUT": "0"}, "REDIS_SOCKET_TIMEOUT"),
        ({"REDIS_URL": URL, "REDIS_OPERATION_TIMEOUT": "soon"}, "REDIS_OPERATION_TIMEOUT"),
        ({"REDIS_URL": URL, "REDIS_CLUSTER": "sometimes"}, "REDIS_CLUSTER"),
    ],
)
def test_each_config_error_names_its_variable_and_is_masked(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    error = caught.value
    assert error.variable == variable
    assert str(error).startswith(variable)
    assert CANARY not in str(error) and CANARY not in repr(error)
    # Every error shows a good example; a URL example never carries a real password.
    assert error.example
    assert f"{variable}={error.example}" in str(error)
    if "@" in error.example:
        assert ":****@" in error.example


def test_repr_and_str_never_show_the_password() -> None:
    s = Settings.from_url(URL)
    for text in (repr(s), str(s), s.masked_url, s.endpoint, f"{s}", f"{s!r}"):
        assert CANARY not in text
    assert "****" in repr(s)
    assert s.endpoint == "127.0.0.1:6390"


def test_with_changes_validates_again() -> None:
    s = Settings.from_url(URL)
    assert s.with_changes(grace_seconds=1.0).grace_seconds == 1.0
    with pytest.raises(ConfigError) as caught:
        s.with_changes(key_prefix="")
    assert caught.value.variable == "SESSION_KEY_PREFIX"


@pytest.mark.parametrize(
    "url",
    [
        # A password with '#', '/' or '?' unescaped: the URL parses as a port made of the password,
        # or as a host and path, and any error quoting the parse would quote part of the password.
        "redis://default:Zq#s3cret-1@host:6379/0",
        "redis://default:Zq/s3cret-2@host:6379/0",
        "rediss://default:Zq?s3cret-3@host:6379",
        "redis://default:4242#s3cret-4@host:6379",  # reads as host 'default', port 4242
        "redis://:Zq@s3cret#5@host:6379",
        # No scheme at all: nothing of it may be echoed.
        "Zqs3cret-6@host:6379",
        "//default:Zq#s3cret-7@host:6379",
    ],
)
def test_a_url_that_does_not_parse_is_refused_without_quoting_any_of_it(url: str) -> None:
    # These passwords are registered nowhere: only not quoting keeps them out of the message.
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"REDIS_URL": url})
    error = caught.value
    assert error.variable == "REDIS_URL"
    for text in (str(error), repr(error), repr(error.args)):
        assert "s3cret" not in text and "Zq" not in text and "4242" not in text, text


@pytest.mark.parametrize("url", ["redis://[::1:6379", "rediss://default:pw@[fe80::1/0", "redis://::1]:6379"])
def test_a_broken_ipv6_host_names_the_variable_and_quotes_nothing(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"REDIS_URL": url})
    assert caught.value.variable == "REDIS_URL" and "pw" not in str(caught.value)
    with pytest.raises(ConfigError):
        Settings.from_url(url)


@pytest.mark.parametrize(
    ("changes", "ok"),
    [
        ({"grace_seconds": 0}, True),
        ({"grace_seconds": 0.5}, True),
        ({"grace_seconds": -0.5}, False),
        ({"retry_base": 0}, True),
        ({"retry_base": 0.5}, True),
        ({"retry_base": -0.5}, False),
        ({"retry_attempts": 1}, True),
        ({"retry_attempts": 0}, False),
        ({"max_connections": 1}, True),
        ({"max_connections": 0}, False),
        ({"lab_timeout_minutes": 1}, True),
        ({"lab_timeout_minutes": 0}, False),
        ({"connect_timeout": 0.001}, True),
        ({"connect_timeout": 0}, False),
        ({"socket_timeout": 0.001}, True),
        ({"socket_timeout": -1}, False),
        ({"operation_timeout": 0.001}, True),
        ({"operation_timeout": 0}, False),
        ({"retry_cap": 0.001}, True),
        ({"retry_cap": 0}, False),
        ({"key_prefix": "s:"}, True),
        ({"key_prefix": ""}, False),
    ],
)
def test_each_bound_takes_its_smallest_good_value_and_refuses_the_next_one_down(
    changes: dict[str, float], ok: bool
) -> None:
    if ok:
        s = Settings.from_url(URL, **changes)
        assert all(getattr(s, name) == value for name, value in changes.items())
    else:
        with pytest.raises(ConfigError):
            Settings.from_url(URL, **changes)


def test_blank_variables_count_as_unset() -> None:
    env = {
        name: "  "
        for name in (
            "LAB_TIMEOUT_MINUTES",
            "SESSION_KEY_PREFIX",
            "SESSION_GRACE_SECONDS",
            "REDIS_CA_CERT",
            "REDIS_TLS_VERIFY",
            "REDIS_CONNECT_TIMEOUT",
            "REDIS_SOCKET_TIMEOUT",
            "REDIS_OPERATION_TIMEOUT",
            "REDIS_RETRY_ATTEMPTS",
            "REDIS_CLIENT_NAME",
            "REDIS_CLUSTER",
        )
    }
    s = Settings.from_env({"REDIS_URL": " redis://127.0.0.1:6379 ", **env})
    assert (s.redis_url, s.lab_timeout_minutes, s.key_prefix, s.grace_seconds) == (
        "redis://127.0.0.1:6379",
        120,
        "session:",
        10,
    )
    assert (s.ca_cert, s.tls_verify, s.retry_attempts, s.cluster) == (None, True, 10, False)
    assert s.client_name.startswith("labsession-")


def test_the_last_cluster_flag_in_a_url_wins() -> None:
    url = "redis://127.0.0.1:7000?cluster=false&cluster=true"
    assert Settings.from_url(url).cluster is True
    assert Settings.from_env({"REDIS_URL": url}).cluster is True
    flipped = "redis://127.0.0.1:7000?cluster=true&cluster=no"
    assert Settings.from_url(flipped).cluster is False
    assert Settings.from_env({"REDIS_URL": flipped}).cluster is False


@pytest.mark.parametrize(
    ("url", "endpoint", "port", "tls", "upgraded"),
    [
        ("redis://cache.example", "cache.example:6379", None, False, False),
        ("rediss://cache.example", "cache.example:6379", None, True, False),
        ("REDISS://cache.example:6380", "cache.example:6380", 6380, True, False),
        ("redis://x.upstash.io", "x.upstash.io:6379", None, True, True),
        # A socket path is where the store is; a host or port written in a unix:// URL means nothing.
        ("unix:///run/redis.sock", "/run/redis.sock", None, False, False),
        ("unix://localhost:6379/run/redis.sock", "/run/redis.sock", None, False, False),
        ("unix://x.upstash.io/run/redis.sock", "/run/redis.sock", None, False, False),
    ],
)
def test_where_the_store_is_and_whether_it_takes_tls(
    url: str, endpoint: str, port: int | None, tls: bool, upgraded: bool
) -> None:
    s = Settings.from_url(url)
    assert (s.endpoint, s.port, s.tls, s.tls_upgraded) == (endpoint, port, tls, upgraded)


@pytest.mark.parametrize("url", ["redis://host/0@x", "redis://host/0?name=a@b", "redis://host/0#a@b"])
def test_an_at_sign_after_the_host_is_refused_wherever_it_is(url: str) -> None:
    with pytest.raises(ConfigError, match="has an '@' after its host"):
        Settings.from_url(url)


def test_a_wrong_scheme_is_named_only_when_written_as_one() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_url("http://host:6379")
    assert ", not http://" in str(caught.value)
    # A bare 'password:more' reads as the scheme 'zq': a piece of a password, never to be quoted.
    with pytest.raises(ConfigError) as caught:
        Settings.from_url("Zq:s3cret-host")
    assert "must start with redis://, rediss:// or unix:// (" in str(caught.value)
    assert "Zq" not in str(caught.value) and "zq" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("redis://127.0.0.1:6379", 0),
        ("redis://127.0.0.1:6379/0", 0),
        ("rediss://default:pw@h.example:6379/3", 3),
        ("redis://127.0.0.1:6379/1?db=5", 5),
        ("unix:///tmp/redis.sock?db=2", 2),
        ("unix:///tmp/redis.sock", 0),
    ],
)
def test_the_database_number_is_read_from_the_url_as_redis_py_reads_it(url: str, db: int) -> None:
    assert Settings.from_url(url).db == db
