"""LabSession: the TypeScript backend's JSON both ways, unknown fields kept, secrets redacted;
session ids checked so that none can address another key or act as a glob."""

from __future__ import annotations

import json
import string
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labsession import CorruptSession, InvalidSessionId, LabSession, SessionStatus, check_session_id
from labsession.masking import MASK
from labsession.sessions.codec import decode_json as _loads
from labsession.sessions.codec import encode_json as _dumps

from support.tsformat import SECRET_ACCESS_KEY, TS_FIELDS, ts_json, ts_session

SID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
NOW = 1_764_000_000_000


def test_reads_the_typescript_format_and_writes_it_back_unchanged() -> None:
    raw = ts_json(ts_session(SID, NOW, extra={"instanceId": "i-0abc", "meta": {"b": 1, "a": [1, 2]}}))
    session = LabSession.from_json(raw)
    assert session.session_id == SID and session.user_id == "user-42" and session.terminal_port == 7681
    assert session.expires_at == NOW + 7_200_000 and session.status == "active"
    assert session.sandbox_account is not None
    assert session.sandbox_account["iamSecretAccessKey"] == SECRET_ACCESS_KEY
    assert session.extra == {"instanceId": "i-0abc", "meta": {"b": 1, "a": [1, 2]}}
    # byte for byte: same fields, same order, same separators
    assert session.to_json() == raw
    assert list(json.loads(session.to_json())) == [*TS_FIELDS, "instanceId", "meta"]


def test_bytes_and_non_ascii_values() -> None:
    value = ts_session(SID, NOW, extra={"displayName": "Zoë 🧪"})
    session = LabSession.from_json(ts_json(value).encode())
    assert session.extra["displayName"] == "Zoë 🧪"
    assert json.loads(session.to_json()) == value


def test_float_times_as_javascript_may_write_them_are_read_as_integers() -> None:
    session = LabSession.from_dict(
        {"sessionId": SID, "expiresAt": NOW + 0.5, "createdAt": 1.0 * NOW, "status": "active"}
    )
    assert (session.expires_at, session.created_at, session.started_at) == (NOW, NOW, NOW)
    assert isinstance(session.expires_at, int)


def test_minimal_record_gets_defaults() -> None:
    session = LabSession.from_dict({"sessionId": SID, "expiresAt": NOW, "status": "creating"})
    assert session.created_at == NOW and session.started_at == NOW
    assert session.user_id == "" and session.sandbox_account is None and session.terminal_port is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ("[1, 2]", "not an object"),
        ('"active"', "not an object"),
        (json.dumps({"sessionId": SID, "status": "active"}), "expiresAt"),
        (json.dumps({"sessionId": SID, "expiresAt": "tomorrow", "status": "active"}), "expiresAt"),
        (json.dumps({"sessionId": SID, "expiresAt": True, "status": "active"}), "expiresAt"),
        (json.dumps({"sessionId": SID, "expiresAt": NOW, "status": 1}), "status"),
        (json.dumps({"sessionId": SID, "expiresAt": NOW, "createdAt": None, "status": "active"}), "createdAt"),
        ('{"sessionId": "x", "expiresAt": 1e400, "status": "active"}', "expiresAt"),
        ('{"sessionId": "x", "expiresAt": NaN, "status": "active"}', "expiresAt"),
    ],
)
def test_corrupt_values_raise_corrupt_session(raw: str | bytes, reason: str) -> None:
    with pytest.raises(CorruptSession) as caught:
        LabSession.from_json(raw, session_id=SID)
    assert reason in caught.value.reason
    assert caught.value.session_id == SID


def test_redacted_view_and_repr_hide_the_sandbox_secrets() -> None:
    session = LabSession.from_json(ts_json(ts_session(SID, NOW, extra={"apiToken": "tok-secret-1"})))
    shown = session.redacted()
    assert shown["sandboxAccount"]["iamSecretAccessKey"] == MASK
    assert shown["sandboxAccount"]["iamAccessKeyId"] == MASK
    assert shown["apiToken"] == MASK
    assert shown["sandboxAccount"]["region"] == "us-east-1" and shown["sessionId"] == SID
    for text in (json.dumps(shown), repr(session), str(session)):
        assert SECRET_ACCESS_KEY not in text and "tok-secret-1" not in text
    # the session itself is untouched
    assert session.sandbox_account is not None and session.sandbox_account["iamSecretAccessKey"] == SECRET_ACCESS_KEY


def test_expires_in_and_ttl_follow_the_typescript_rounding() -> None:
    session = LabSession.from_dict({"sessionId": SID, "expiresAt": NOW + 1500, "status": "active"})
    assert session.expires_in(NOW) == 1  # whole seconds left, rounded down
    assert session.ttl_seconds(NOW) == 2  # ceil((expiresAt - now) / 1000)
    assert session.ttl_seconds(NOW + 1000) == 1
    assert session.ttl_seconds(NOW + 99_999) == 1  # never 0 or negative: SET EX needs >= 1
    assert session.expires_in(NOW + 99_999) == 0


# -- session ids --------------------------------------------------------------------------------


@given(st.uuids())
def test_every_uuid_string_is_an_id(value: uuid.UUID) -> None:
    assert check_session_id(str(value)) == str(value)
    assert check_session_id(str(value).upper()) == str(value).upper()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "*",
        "?",
        "[a-z]*",
        "session:*",
        "../x",
        f"{SID}*",
        f"{SID}?",
        f"[{SID}]",
        f"{SID[:-1]}*",
        f"{SID}\n",
        f" {SID}",
        f"{SID} ",
        f"{SID}:x",
        f"session:{SID}",
        "-x",
        ".x",
        "_x",
        "a/b",
        "a\\b",
        "x" * 10_000,
        "x" * 129,
        f"{{{SID}}}",
        "tést",
        "a b",
        "a\x00b",
    ],
)
def test_malformed_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidSessionId) as caught:
        check_session_id(bad)
    assert caught.value.session_id == bad
    assert len(str(caught.value)) < 200  # a 10 kB id is not echoed whole


@pytest.mark.parametrize("bad", [None, 42, b"6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f", uuid.UUID(SID), ["x"]])
def test_non_strings_are_refused(bad: object) -> None:
    with pytest.raises(InvalidSessionId):
        check_session_id(bad)


@pytest.mark.parametrize("peer_id", ["test-session-1796197253000", SID.replace("-", ""), "x" * 128, "A.b_c-9"])
def test_ids_a_peer_may_have_stored_are_ids(peer_id: str) -> None:
    assert check_session_id(peer_id) == peer_id


@given(st.text(max_size=200))
def test_only_the_key_safe_alphabet_gets_through(text: str) -> None:
    allowed = set(string.ascii_letters + string.digits + "._-")
    safe = 1 <= len(text) <= 128 and text[0].isascii() and text[0].isalnum() and set(text) <= allowed
    if safe:
        assert check_session_id(text) == text
    else:
        with pytest.raises(InvalidSessionId):
            check_session_id(text)


# -- orjson gives exactly what json gives ------------------------------------------------------------
# LabSession reads and writes with orjson where that is byte for byte what json does (3-4x faster
# for a listing); these pin that down, including orjson's differences: integers beyond 64 bits
# (read as floats, refused when writing), floats written as 1e16 vs 1e+16, NaN, lone surrogates.

_EDGE_INTS = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**30)])
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | _EDGE_INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e16, 1e-5, 1e22, 0.1, -0.0])
    | st.text()
    | st.text(alphabet=st.characters(codec="utf-8"))
    | st.sampled_from(["\x00\x1f\x7f\u2028", "Zoë 🧪"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _exact(value: object) -> str:
    """A rendering that tells 1 from 1.0 and True from 1 (== does not) and shows key order."""
    return repr(value)


def _outcome(call: Callable[[], object]) -> str:
    try:
        return _exact(call())
    except Exception as exc:  # the same kind of failure counts as the same outcome
        return f"raises {type(exc).__name__}"


@given(_VALUES)
def test_reading_any_json_value_gives_what_json_gives(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)  # NaN and Infinity included, as json writes them
    expected = json.loads(text)
    for raw in (text, text.encode("utf-8", "surrogatepass"), json.dumps(value).encode()):
        assert _outcome(lambda raw=raw: _loads(raw)) == _outcome(lambda raw=raw: json.loads(raw))
    assert _exact(_loads(json.dumps(value))) == _exact(expected)


@given(
    st.binary(max_size=40)
    | st.sampled_from([b"\xef\xbb\xbf{}", b'{"a":"\\ud800"}', b"[1E400]", b" {} ", b"[-0]", '{"a":1}'.encode("utf-16")])
)
def test_reading_any_bytes_fails_or_succeeds_as_json_does(raw: bytes) -> None:
    assert _outcome(lambda: _loads(raw)) == _outcome(lambda: json.loads(raw))


@given(st.dictionaries(st.text(max_size=8), _VALUES, max_size=6))
def test_writing_gives_the_bytes_json_dumps_gives(data: dict[str, object]) -> None:
    def compact() -> str:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    assert _outcome(lambda: _dumps(data)) == _outcome(compact)


@pytest.mark.parametrize(
    "odd",
    [
        {1: "int key"},
        {"k": uuid.UUID(SID)},
        {"k": SessionStatus.ACTIVE},
        {"k": (1, 2)},
        {"k": "\ud800"},
        {"k": float("nan")},
        {"k": 2**64},
    ],
)
def test_writing_values_orjson_treats_differently_still_matches_json(odd: dict[str, object]) -> None:
    assert _outcome(lambda: _dumps(odd)) == _outcome(lambda: json.dumps(odd, separators=(",", ":"), ensure_ascii=False))


def test_big_integers_and_exponent_floats_in_unknown_fields_survive_a_round_trip() -> None:
    raw = ts_json(
        ts_session(
            SID,
            NOW,
            extra={
                "big": 2**64 + 1,
                "neg": -(2**63) - 1,
                "huge": 10**40,
                "f": 1e16,
                "small": 1e-7,
                "nested": [{"id": 123456789012345678901}],
            },
        )
    )
    session = LabSession.from_json(raw.encode())
    assert session.extra["big"] == 2**64 + 1 and type(session.extra["neg"]) is int
    assert session.extra["nested"] == [{"id": 123456789012345678901}]
    assert session.to_json() == raw


@pytest.mark.parametrize("field", ["expiresAt", "createdAt", "startedAt"])
def test_one_float_time_among_integers_is_read_as_an_integer(field: str) -> None:
    data: dict[str, object] = {
        "sessionId": SID,
        "expiresAt": NOW,
        "createdAt": NOW,
        "startedAt": NOW,
        "status": "active",
        field: NOW + 0.5,
    }
    session = LabSession.from_dict(data)
    times = (session.expires_at, session.created_at, session.started_at)
    assert times == (NOW, NOW, NOW)
    assert all(type(t) is int for t in times)


def test_the_session_id_asked_for_is_a_keyword() -> None:
    data = {"sessionId": SID, "expiresAt": NOW, "status": "active"}
    with pytest.raises(TypeError):
        LabSession.from_dict(data, SID)  # type: ignore[misc]
    with pytest.raises(TypeError):
        LabSession.from_json(json.dumps(data), SID)  # type: ignore[misc]
    assert LabSession.from_json(json.dumps(data), session_id=SID).session_id == SID


@pytest.mark.parametrize(
    ("left_ms", "expires_in", "ttl"),
    [
        (-5000, 0, 1),
        (0, 0, 1),
        (1, 0, 1),
        (999, 0, 1),
        (1000, 1, 1),
        (1001, 1, 2),
        (1999, 1, 2),
        (2000, 2, 2),
        (2001, 2, 3),
        (7_200_000, 7200, 7200),
    ],
)
def test_seconds_left_round_down_and_the_ttl_rounds_up(left_ms: int, expires_in: int, ttl: int) -> None:
    session = LabSession.from_dict({"sessionId": SID, "expiresAt": NOW + left_ms, "status": "active"})
    assert session.expires_in(NOW) == expires_in
    assert session.ttl_seconds(NOW) == ttl
