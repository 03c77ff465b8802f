"""Masking: URL passwords, AUTH arguments, registered secrets and secret-named fields."""

from __future__ import annotations

import logging
import string
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labsession.masking import (
    MASK,
    MaskingFilter,
    get_logger,
    is_secret_name,
    log_id,
    mask_text,
    mask_url,
    redact,
    register_secret,
)
from labsession.probes.ttl import short_id

from support import CANARY

# Characters a password may hold inside a URL's userinfo (RFC 3986 unreserved + sub-delims, and
# '%' for percent-escapes); '@', '/', '?' and '#' are tested separately.
PASSWORD_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=%"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (f"redis://default:{CANARY}@host:6379/0", "redis://default:****@host:6379/0"),
        (f"rediss://:{CANARY}@h.upstash.io:6379", "rediss://:****@h.upstash.io:6379"),
        (f"redis://{CANARY}@host:6379", "redis://****@host:6379"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        (f"unix://:{CANARY}@/run/redis.sock?db=0", "unix://:****@/run/redis.sock?db=0"),
        (f"unix:///run/redis.sock?password={CANARY}", "unix:///run/redis.sock?password=****"),
        (f"redis://host:6379/0?password={CANARY}&db=1", "redis://host:6379/0?password=****&db=1"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_url_with_reserved_characters_in_the_password() -> None:
    for password in ("p@ss-word-1", "pa:ss-word-2", "p@ss@w:rd-3"):
        masked = mask_url(f"redis://default:{password}@host:6379")
        assert masked == "redis://default:****@host:6379"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        # A bare password (no user name) with '@' in it: the userinfo runs to the *last* '@'.
        ("redis://Zq@ss-1@host:6379/0", "redis://****@host:6379/0"),
        ("rediss://Zq@s@s-2@h.upstash.io:6379", "rediss://****@h.upstash.io:6379"),
        # A user name with '@' (an e-mail as user) and a password after it.
        ("redis://ada@example.com:Zq-pw-3@host:6379", "redis://ada@example.com:****@host:6379"),
        ("redis://ada@example.com:Zq@pw-4@host:6379", "redis://ada@example.com:****@host:6379"),
    ],
)
def test_mask_url_takes_the_userinfo_to_the_last_at_sign(url: str, masked: str) -> None:
    # Neither mask_text's backstop nor a registered secret can be what hides these: the passwords
    # are registered nowhere, and the backstop masks only what follows 'user:' with no '@' in user.
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "password", ["Zq#frag-1", "Zq/path-2", "Zq?query-3", "Zq:colon-4", "Zq@a#b/c:d?e-5", "Zq#@/?:-6", "Zq//x@y-7"]
)
@pytest.mark.parametrize("user", ["default", "", "ada@example.com"])
def test_no_part_of_a_password_with_reserved_characters_is_shown(user: str, password: str) -> None:
    # People paste passwords unescaped: '#', '/', '?' and ':' end no userinfo, only its last '@' does.
    url = f"rediss://{user}:{password}@cache.example.com:6380/2?db=2"
    expected = f"rediss://{user}:****@cache.example.com:6380/2?db=2"
    assert mask_url(url) == expected
    assert mask_text(f"connecting to {url} failed") == f"connecting to {expected} failed"


@given(st.text(PASSWORD_CHARS + "@:/?#", min_size=1, max_size=40))
def test_mask_url_and_mask_text_show_no_part_of_any_password(tail: str) -> None:
    password = "Zq" + tail
    for user in ("someone", "ada@example.com"):
        url = f"rediss://{user}:{password}@cache.example.com:6380/2"
        expected = f"rediss://{user}:****@cache.example.com:6380/2"
        assert mask_url(url) == expected
        assert mask_text(f"connecting to {url} failed") == f"connecting to {expected} failed"


@given(st.text(PASSWORD_CHARS, min_size=1, max_size=40))
def test_mask_url_never_keeps_the_password(tail: str) -> None:
    password = "Zq" + tail  # a prefix no other part of the URL contains
    url = f"rediss://someone:{password}@cache.example.com:6380/2"
    assert password not in mask_url(url)
    assert password not in mask_text(f"connecting to {url} failed")


@given(st.text(PASSWORD_CHARS + "@:", min_size=1, max_size=40))
def test_mask_text_handles_at_signs_in_unregistered_passwords(tail: str) -> None:
    password = "Zq" + tail
    text = f"Error connecting to redis://u:{password}@host:6379/0 (refused)"
    assert mask_text(text) == "Error connecting to redis://u:****@host:6379/0 (refused)"


def test_mask_text_masks_auth_arguments_and_registered_secrets() -> None:
    assert mask_text(f"AUTH {CANARY}") == f"AUTH {MASK}"
    assert mask_text(f"auth default {CANARY}") == f"auth {MASK}{MASK}"
    assert CANARY not in mask_text(f"config set requirepass {CANARY}")
    # conftest's servers register CANARY the moment they are built; Settings does it for URL passwords.
    from labsession import Settings

    Settings.from_url(f"redis://:{CANARY}@127.0.0.1:1")
    assert mask_text(f"the password is {CANARY}!") == f"the password is {MASK}!"


@pytest.mark.parametrize(
    ("session_id", "shown"),
    [
        ("3f2b9c1e-7a4d-4e2b-9c1e-7a4d4e2b9c1e", "3f2b9c1e~"),
        ("abc", "abc~"),
        ("\x1b[31m*\nx", "??31m??x~"),
    ],
)
def test_log_id_is_eight_printable_characters_of_an_id(session_id: str, shown: str) -> None:
    assert log_id(session_id) == shown
    assert short_id is log_id  # the TTL samples show an id the same way the logs do


@pytest.mark.parametrize(
    "name",
    [
        "iamSecretAccessKey",
        "secretAccessKey",
        "password",
        "PASSWD",
        "apiToken",
        "credentials",
        "privateKey",
        "Authorization",
        "iamAccessKeyId",
        "sessionToken",
        "pwd",
        "accessKeys",
        "apiKey",
        "key",
        "secretKeys",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "sessionId",
        "userId",
        "labId",
        "region",
        "email",
        "status",
        "expiresAt",
        # Redis keys counted or prefixed, not keys to anything: on-call needs these numbers in reports
        "keys",
        "evicted_keys",
        "expiredKeys",
        "max_keys",
        "keys_without_ttl",
        "keyPrefix",
        "key_prefix",
        "keyspace",
    ],
)
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_redact_at_any_depth_keeps_the_rest() -> None:
    value = {
        "sessionId": "s-1",
        "sandboxAccount": {
            "accountId": "123456789012",
            "iamUserName": "lab-user",
            "iamAccessKeyId": "AKIAEXAMPLE",
            "iamSecretAccessKey": "wJalrXUtnFEMI/K7MDENG",
            "region": "us-east-1",
            "nested": [{"sessionToken": "tok-123"}, ({"password": "pw-123"},)],
        },
        "notes": f"see redis://u:{CANARY}@h:1",
        "token": None,
        "count": 3,
    }
    out = redact(value)
    account = out["sandboxAccount"]
    assert account["iamSecretAccessKey"] == MASK and account["iamAccessKeyId"] == MASK
    assert account["nested"][0]["sessionToken"] == MASK
    assert account["nested"][1][0]["password"] == MASK
    assert account["accountId"] == "123456789012" and account["region"] == "us-east-1"
    assert out["notes"] == "see redis://u:****@h:1"
    assert out["token"] is None and out["count"] == 3
    # a deep copy: the original keeps its values
    assert value["sandboxAccount"]["iamSecretAccessKey"] == "wJalrXUtnFEMI/K7MDENG"  # type: ignore[index]
    for secret in ("wJalrXUtnFEMI", "tok-123", "pw-123", CANARY):
        assert secret not in repr(out)


def test_masking_filter_masks_formatted_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = get_logger("labsession.test_masking")
    assert get_logger("labsession.test_masking") is logger
    assert sum(isinstance(f, MaskingFilter) for f in logger.filters) == 1
    caplog.set_level(logging.DEBUG, logger="labsession")
    logger.warning("could not reach %s", f"redis://default:{CANARY}@h:6379")
    logger.info("AUTH %s", CANARY)
    logger.error("broken format %s %s", "only one")
    try:
        raise RuntimeError(f"redis://x:{CANARY}@h failed")
    except RuntimeError:
        logger.exception("with a traceback")
    assert len(caplog.records) == 4
    assert caplog.records[0].getMessage() == "could not reach redis://default:****@h:6379"
    for record in caplog.records:
        assert CANARY not in record.getMessage()
    assert CANARY not in caplog.text


def test_masking_filter_on_a_foreign_handler() -> None:
    record = logging.LogRecord("other", logging.INFO, __file__, 1, "url=%s", (f"redis://:{CANARY}@h",), None)
    assert MaskingFilter().filter(record) is True
    assert record.getMessage() == "url=redis://:****@h"
    assert record.args is None


def test_secrets_of_four_characters_and_more_are_registered_shorter_ones_are_not() -> None:
    register_secret("Qv7#")
    register_secret("Kx9")
    register_secret("")
    register_secret(None)
    assert mask_text("a Qv7# b") == f"a {MASK} b"
    assert mask_text("a Kx9 b") == "a Kx9 b"  # three characters would mangle ordinary text
    assert mask_text("") == ""


def test_a_secret_inside_a_longer_one_never_leaves_the_rest_of_the_longer_one_shown() -> None:
    register_secret("Wm4pT")
    register_secret("Wm4pT-8yqLr")
    assert mask_text("Wm4pT-8yqLr and Wm4pT") == f"{MASK} and {MASK}"


def test_a_password_holding_a_scheme_is_masked_whole() -> None:
    # "x://y:z" inside the userinfo looks like another URL with a password of its own.
    assert mask_text("redis://u:x://y:Zq3@host:1 and more") == "redis://u:****@host:1 and more"
    assert mask_url("redis://u:x://y:Zq3@host:1") == "redis://u:****@host:1"
    # ... and the URLs after it are masked too
    assert mask_text("redis://u:x://y:Zq3@h:1 redis://v:Zq4@h:2") == "redis://u:****@h:1 redis://v:****@h:2"


def test_a_url_without_a_password_does_not_stop_the_masking_of_the_next_one() -> None:
    text = "see http://docs.example/x and redis://u:Zq3pw@h:1 and http://plain.example"
    assert mask_text(text) == "see http://docs.example/x and redis://u:****@h:1 and http://plain.example"
    text = "user@host then redis://name@h:1 then redis://u:Zq3pw@h:2"
    assert mask_text(text) == "user@host then redis://name@h:1 then redis://u:****@h:2"


def test_the_filter_keeps_a_masked_traceback_and_drops_exc_info() -> None:
    try:
        raise RuntimeError("redis://x:Zq3-trace@h failed")
    except RuntimeError:
        record = logging.LogRecord("other", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    assert MaskingFilter().filter(record) is True
    assert record.exc_info is None
    assert record.exc_text is not None
    assert "Traceback (most recent call last)" in record.exc_text
    assert "RuntimeError: redis://x:****@h failed" in record.exc_text
    # A record formatted before (exc_text set) keeps that text, masked.
    again = logging.LogRecord("other", logging.ERROR, __file__, 1, "boom", None, None)
    again.exc_text = "RuntimeError: redis://x:Zq3-again@h"
    again.stack_info = "Stack: redis://x:Zq3-stack@h"
    assert MaskingFilter().filter(again) is True
    assert again.exc_text == "RuntimeError: redis://x:****@h"
    assert again.stack_info == "Stack: redis://x:****@h"
