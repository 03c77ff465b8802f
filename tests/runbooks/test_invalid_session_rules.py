"""The invalid-session runbook's rules on records and server facts already read: the ``session
key`` step (:func:`judge_key`) and the ``eviction`` step, without a server (tests/runbooks/
test_diagnosis.py runs the whole runbook against real ones)."""

from __future__ import annotations

import pytest

from labsession import Settings
from labsession.checks import Status
from labsession.runbooks.invalid_session import InvalidSessionCause, eviction_check, judge_key
from labsession.sessions.model import LabSession
from labsession.sessions.service import SessionRecord
from labsession.store.service import RedisHealth

C = InvalidSessionCause
NOW = 1_764_000_000_000
SID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
SETTINGS = Settings.from_url("redis://127.0.0.1:6379")  # grace period 10 s


def health(policy: str | None = "noeviction", evicted: int | None = 0, maxmemory: int | None = 0) -> RedisHealth:
    return RedisHealth(
        "h:1", False, 0.1, "redis", maxmemory_policy=policy, evicted_keys=evicted, maxmemory=maxmemory, used_memory=1000
    )


def record(
    status: str = "active", *, age_ms: int = 60_000, expires_in_ms: int = 600_000, ttl: int | None = 600
) -> SessionRecord:
    session = LabSession.from_dict(
        {"sessionId": SID, "status": status, "createdAt": NOW - age_ms, "expiresAt": NOW + expires_in_ms}
    )
    return SessionRecord(SID, f"session:{SID}", session, None, ttl, 300)


def judge(rec: SessionRecord, facts: RedisHealth | None = None) -> tuple[Status, C | None, str, dict[str, object]]:
    check, cause = judge_key(rec, facts if facts is not None else health(), SETTINGS, NOW)
    assert check.name == "session key"
    return check.status, cause, check.evidence, check.data


def test_no_key_is_a_missing_session_unless_redis_has_evicted_keys() -> None:
    gone = SessionRecord(SID, f"session:{SID}", None, None, -2, 0)
    status, cause, evidence, data = judge(gone)
    assert (status, cause, data) == (Status.FAIL, C.SESSION_MISSING, {"exists": False})
    assert evidence == f"no key for session {SID} in this Redis"
    assert judge_key(gone, None, SETTINGS, NOW)[1] is C.SESSION_MISSING
    # keys evicted, but under noeviction (an earlier policy did it): not evidence about this session
    assert judge(gone, health(evicted=5))[1] is C.SESSION_MISSING
    status, cause, evidence, data = judge(gone, health("allkeys-lru", evicted=5, maxmemory=10))
    assert (status, cause, data) == (Status.FAIL, C.EVICTION_SUSPECTED, {"exists": False})
    assert evidence == (
        f"no key for session {SID}, and Redis has evicted keys (evicted_keys=5, maxmemory-policy=allkeys-lru)"
    )
    assert "maxmemory-policy=hidden" in judge(gone, health(None, evicted=5))[2]


def test_a_value_that_is_no_session_is_corrupt() -> None:
    bad = SessionRecord(SID, f"session:{SID}", None, "not JSON (JSONDecodeError)", 120, 9)
    status, cause, evidence, data = judge(bad)
    assert (status, cause) == (Status.FAIL, C.SESSION_CORRUPT)
    assert evidence == f"the value of session {SID} is not a session: not JSON (JSONDecodeError)"
    assert data == {"exists": True, "size": 9, "ttl": 120}


@pytest.mark.parametrize(
    ("rec", "status", "cause", "says"),
    [
        (record(), Status.PASS, None, "session is active: "),
        (record("destroyed"), Status.FAIL, C.SESSION_ENDED, "session was ended: "),
        (record("destroyed", expires_in_ms=-5000, ttl=30), Status.FAIL, C.SESSION_ENDED, "session was ended: "),
        (record("expired"), Status.FAIL, C.SESSION_EXPIRED, "session has expired: "),
        (record(expires_in_ms=0), Status.FAIL, C.SESSION_EXPIRED, "session has expired: "),
        (record(expires_in_ms=-5000, ttl=30), Status.FAIL, C.SESSION_EXPIRED, "session has expired: "),
        (record(expires_in_ms=1, ttl=1), Status.PASS, None, "session is active: "),
        (record("creating", expires_in_ms=0, age_ms=1000), Status.FAIL, C.SESSION_EXPIRED, "session has expired: "),
        # the grace period (10 s) covers a session still being created, and nothing older
        (
            record("creating", age_ms=9_999),
            Status.WARN,
            None,
            "session is still being created, inside the 10 s grace period: ",
        ),
        (record("creating", age_ms=-2000), Status.WARN, None, "session is still being created"),
        (
            record("creating", age_ms=10_000),
            Status.FAIL,
            C.SESSION_NOT_ACTIVE,
            "session is not active and older than the 10 s grace period: ",
        ),
        (record("starting", age_ms=60_000), Status.FAIL, C.SESSION_NOT_ACTIVE, "session is not active"),
        (record("aborted", age_ms=60_000), Status.FAIL, C.SESSION_NOT_ACTIVE, "session is not active"),
        (record("Active", age_ms=60_000), Status.FAIL, C.SESSION_NOT_ACTIVE, "session is not active"),
        # TTL against expiresAt: no TTL is a leak; more than 5 s apart is skew or a TTL not moved
        (record(ttl=-1), Status.WARN, None, "session is active but has no TTL (a leak): "),
        (record(ttl=None), Status.PASS, None, "session is active: "),
        (record(ttl=605), Status.PASS, None, "session is active: "),
        (record(ttl=595), Status.PASS, None, "session is active: "),
        (record(ttl=606), Status.WARN, None, "session is active, but its TTL and expiresAt disagree by 6 s"),
        (record(ttl=594), Status.WARN, None, "session is active, but its TTL and expiresAt disagree by 6 s"),
        (
            record(expires_in_ms=605_500, ttl=600),
            Status.WARN,
            None,
            "session is active, but its TTL and expiresAt disagree by 6 s",
        ),  # 5.5 s: fractions of a second count
        (record(expires_in_ms=605_000, ttl=600), Status.PASS, None, "session is active: "),
        (record(ttl=0), Status.WARN, None, "session is active, but its TTL and expiresAt disagree by 600 s"),
        (record(expires_in_ms=2000, ttl=0), Status.PASS, None, "session is active: "),
    ],
)
def test_the_session_key_step(rec: SessionRecord, status: Status, cause: C | None, says: str) -> None:
    got_status, got_cause, evidence, _ = judge(rec)
    assert (got_status, got_cause) == (status, cause), evidence
    assert evidence.startswith(says), evidence


def test_the_session_key_facts() -> None:
    _, _, evidence, data = judge(record(age_ms=61_549, expires_in_ms=612_340, ttl=612))
    assert data == {
        "exists": True,
        "status": "active",
        "ttl": 612,
        "expiresAt": NOW + 612_340,
        "expires_in": 612.3,
        "age_s": 61.5,
        "grace_s": 10.0,
    }
    assert evidence == (
        "session is active: status 'active', TTL 612 s, expiresAt 2025-11-24T16:10:12+00:00 (+612.3 s), age 62 s"
    )
    assert judge(record(ttl=None))[3]["ttl"] == -2
    assert judge(record("destroyed", expires_in_ms=-4_000))[3]["expires_in"] == -4.0


@pytest.mark.parametrize(
    ("facts", "status", "lost", "says"),
    [
        (health("noeviction", 0), Status.PASS, False, "no key evicted (maxmemory-policy noeviction)"),
        (health("allkeys-lru", 0, maxmemory=0), Status.PASS, False, "no key evicted (maxmemory-policy allkeys-lru)"),
        (
            health("allkeys-lru", 7, maxmemory=10),
            Status.FAIL,
            True,
            "7 keys were evicted since the server started under maxmemory-policy allkeys-lru; sessions may have "
            "vanished early (used 1000 of 10 bytes)",
        ),
        (
            health(None, 7, maxmemory=None),
            Status.FAIL,
            True,
            "7 keys were evicted since the server started under maxmemory-policy hidden; sessions may have vanished "
            "early (used 1000 of unlimited bytes)",
        ),
        # the worse of policy and evictions is shown; at a tie, the policy
        (health("allkeys-lru", 0, maxmemory=10), Status.WARN, False, "maxmemory-policy allkeys-lru can evict"),
        (health("noeviction", 3), Status.WARN, False, "3 keys were evicted since the server started, under an "),
        (health(None, None), Status.WARN, False, "maxmemory-policy is hidden by the provider"),
        (health("noeviction", None), Status.WARN, False, "the provider hides evicted_keys"),
    ],
)
def test_the_eviction_step(facts: RedisHealth, status: Status, lost: bool, says: str) -> None:
    check, evicted = eviction_check(facts)
    assert (check.name, check.status, evicted) == ("eviction", status, lost)
    assert check.evidence.startswith(says), check.evidence
    assert check.data == {
        "evicted": facts.evicted_keys,
        "policy": facts.maxmemory_policy,
        "maxmemory": facts.maxmemory,
        "used_memory": 1000,
    }
