"""The invalid-session runbook's rules on records and server facts already read: the ``session
key`` step (:func:`judge_key`), the ``eviction`` step, and the ``shared store``, ``replication``
and ``clocks`` steps, without a server (tests/runbooks/test_diagnosis.py and
test_invalid_session_instances.py run the whole runbook against real ones)."""

from __future__ import annotations

import pytest

from labsession import Settings
from labsession.checks import Status
from labsession.probes.backend import parse_diagnostics
from labsession.runbooks.clocks import judge_clocks
from labsession.runbooks.instances import InstanceSample, compare_stores
from labsession.runbooks.invalid_session import InvalidSessionCause, eviction_check, judge_key
from labsession.runbooks.replication import ReplicaLag, judge_replication
from labsession.sessions.model import LabSession
from labsession.sessions.service import SessionRecord
from labsession.store.service import RedisHealth, StoreIdentity

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


# -- shared store, replication and clocks on answers already read ----------------------------------

MASTER = StoreIdentity("m:1", "run-m", role="master", replid="repl-1", offset=500, db=0, key_prefix="session:")
REPLICA = StoreIdentity(
    "r:1", "run-r", role="slave", replid="repl-1", offset=400, link="up", db=0, key_prefix="session:"
)
OTHER = StoreIdentity("o:1", "run-o", role="master", replid="repl-2", offset=9, db=0, key_prefix="session:")


def answer(instance: str, store: StoreIdentity | None, offset_s: float | None = 0.0) -> InstanceSample:
    return InstanceSample(f"http://{instance}", instance, store, clock_offset_s=offset_s)


def test_a_master_and_its_replica_are_one_data_set_and_the_replica_is_handed_on() -> None:
    found = compare_stores([answer("a", MASTER), answer("b", REPLICA)], MASTER)
    assert (found.split, found.keyspace, found.check.status) == (False, False, Status.PASS), found.check
    assert [s.instance for s in found.replicas] == ["b"] and found.master is MASTER and found.ours_is_master
    assert "one data set (replication id repl-1) on 2 server(s)" in found.check.evidence


def test_another_data_set_is_a_split_and_old_identities_without_a_replication_id_still_are() -> None:
    assert compare_stores([answer("a", MASTER), answer("b", OTHER)], MASTER).split
    bare_a, bare_b = StoreIdentity("m:1", "run-m"), StoreIdentity("r:1", "run-r")
    found = compare_stores([answer("a", bare_a), answer("b", bare_b)], None)
    assert found.split and "not every instance reports a replication id" in found.check.evidence


def test_unknown_db_or_prefix_is_no_evidence_of_a_different_keyspace() -> None:
    unknown = StoreIdentity("m:1", "run-m", role="master", replid="repl-1")  # an older labsession backend
    found = compare_stores([answer("a", MASTER), answer("b", unknown)], MASTER)
    assert not found.keyspace and not found.split, found.check
    other_db = StoreIdentity("m:1", "run-m", role="master", replid="repl-1", db=3, key_prefix="session:")
    found = compare_stores([answer("a", MASTER), answer("b", other_db)], MASTER)
    assert found.keyspace and "b: db 3, prefix 'session:'" in found.check.evidence


def test_the_diagnostics_store_fields_are_read_and_wrong_types_count_as_unknown() -> None:
    body = {"instance": {"id": "a"}, "store": MASTER.to_dict()}
    assert parse_diagnostics(body).store == MASTER
    odd = {"instance": {"id": "a"}, "store": {"endpoint": "m:1", "runId": "run-m", "db": "0", "replOffset": True}}
    store = parse_diagnostics(odd).store
    assert store is not None and (store.db, store.offset, store.replid) == (None, None, None)


def test_instances_on_another_data_set_than_the_runbooks_redis_are_a_split() -> None:
    found = compare_stores([answer("a", MASTER), answer("b", MASTER)], OTHER)
    assert found.split and found.check.status is Status.FAIL, found.check
    assert found.check.evidence == (
        "every instance uses m:1 (run_id run-m), not the Redis that the runbook's URL names (o:1, run_id run-o)"
    )


def test_instances_in_another_keyspace_than_the_runbook_name_it() -> None:
    ours = StoreIdentity("m:1", "run-m", role="master", replid="repl-1", offset=500, db=2, key_prefix="session:")
    found = compare_stores([answer("a", MASTER)], ours)
    assert found.keyspace and not found.split, found.check
    assert found.check.evidence.startswith(
        "the instances read db 0, prefix 'session:', but this runbook reads db 2, prefix 'session:' of the same"
    )


def test_no_answer_is_an_error_when_requests_failed_and_a_skip_when_none_were_made() -> None:
    failed = [
        InstanceSample("http://a", None, None, error="timed out"),
        InstanceSample("http://b", None, None, error="refused"),
    ]
    found = compare_stores(failed, MASTER)
    assert found.check.status is Status.ERROR and found.check.evidence.endswith("(timed out)"), found.check
    found = compare_stores([], MASTER)
    assert found.check.status is Status.SKIP and found.check.evidence.endswith("(no backend URL given)"), found.check


def test_an_instance_that_reports_no_store_next_to_one_that_does_is_a_split() -> None:
    found = compare_stores([answer("a", MASTER), answer("b", None)], MASTER)
    assert found.split and found.check.status is Status.FAIL, found.check
    assert found.check.evidence.startswith("some instances report no store (run-m: 1 answer(s), none: 1 answer(s))")


def test_equal_names_read_apart_are_one_server_one_data_set_and_one_keyspace() -> None:
    # strings built at run time, as JSON gives them: compared by value, not identity
    run, repl, prefix = "".join(["run-", "m"]), "".join(["repl-", "1"]), "".join(["session", ":"])
    bare = [StoreIdentity("m:1", "run-m"), StoreIdentity("m:1", run)]
    found = compare_stores([answer("a", bare[0]), answer("b", bare[1])], None)
    assert not found.split and found.check.status is Status.PASS, found.check
    assert found.check.data["stores"] == {"run-m": 2}
    twin = StoreIdentity("r:1", "run-r", role="slave", replid=repl, offset=400, link="up", db=0, key_prefix=prefix)
    found = compare_stores([answer("a", MASTER), answer("b", twin)], MASTER)
    assert not found.split and not found.keyspace and found.check.status is Status.PASS, found.check


def test_a_server_known_by_run_id_and_by_replication_id_joins_both_into_one_data_set() -> None:
    # an older backend reports no replication id; a newer one on the same server does, and so does another server
    old = StoreIdentity("x:1", "run-a")
    other = StoreIdentity("y:1", "run-b", replid="r")
    new = StoreIdentity("x:1", "run-a", replid="r")
    found = compare_stores([answer("a", old), answer("b", other), answer("c", new)], None)
    assert not found.split, found.check


@pytest.mark.parametrize(("db", "prefix"), [(3, "session:"), (0, "a:"), (0, "z:")])
def test_a_runbook_keyspace_on_either_side_of_the_instances_is_named(db: int, prefix: str) -> None:
    theirs = StoreIdentity("m:1", "run-m", role="master", replid="repl-1", db=db, key_prefix=prefix)
    found = compare_stores([answer("a", theirs)], MASTER)
    assert found.keyspace, found.check


def test_the_first_instance_speaks_for_the_data_set_and_its_master_is_named() -> None:
    found = compare_stores([answer("a", MASTER), answer("b", REPLICA)], OTHER)
    assert found.check.evidence.startswith("every instance uses m:1 (run_id run-m)"), found.check
    found = compare_stores([answer("a", MASTER), answer("b", REPLICA)], None)
    assert found.master is MASTER and not found.ours_is_master
    ours = StoreIdentity("r:1", "run-r", role="slave", replid="repl-1", offset=400, db=0, key_prefix="session:")
    found = compare_stores([answer("a", MASTER)], ours)
    assert found.master is MASTER and not found.ours_is_master, found


def test_the_runbooks_own_redis_is_the_master_named_when_it_is_one() -> None:
    ours = StoreIdentity("m:1", "run-m", role="master", replid="repl-1", offset=500, db=0, key_prefix="session:")
    found = compare_stores([answer("a", MASTER)], ours)
    assert found.master is ours and found.ours_is_master
    assert compare_stores([answer("a", MASTER)], None).master is MASTER


def test_hundreds_of_answers_are_counted_by_value() -> None:
    many = [answer(f"i{n}", MASTER) for n in range(300)]
    found = compare_stores(many, MASTER)
    assert found.check.status is Status.PASS and not found.split, found.check
    found = compare_stores(many, OTHER)
    assert found.split and found.check.evidence.startswith("every instance uses m:1"), found.check


def test_large_database_numbers_are_compared_by_value() -> None:
    # Redis allows thousands of databases; two equal numbers read apart are one keyspace
    one = StoreIdentity("m:1", "run-m", role="master", replid="repl-1", db=int("300"), key_prefix="s:")
    two = StoreIdentity("m:1", "run-m", role="master", replid="repl-1", db=int("300"), key_prefix="s:")
    found = compare_stores([answer("a", one), answer("b", two)], None)
    assert not found.keyspace and found.check.status is Status.PASS, found.check


def test_servers_are_counted_by_run_id_even_behind_one_endpoint_and_failed_samples_are_noted() -> None:
    replica = StoreIdentity(
        "m:1", "run-r", role="slave", replid="repl-1", offset=400, link="up", db=0, key_prefix="session:"
    )
    failed = InstanceSample("http://c", "c", None, error="timed out")
    found = compare_stores([answer("a", MASTER), answer("b", replica), failed], MASTER)
    assert found.check.status is Status.WARN, found.check
    assert found.check.evidence == (
        "2 answer(s) from 2 instance(s), one data set (replication id repl-1) on 2 server(s); 1 instance(s) read "
        "through a replica (b), whose lag the replication step judges; 1 sample(s) failed"
    )
    # a second server of the data set whose role is hidden: two servers, no replica named
    hidden = StoreIdentity("r:1", "run-r", replid="repl-1", db=0, key_prefix="session:")
    found = compare_stores([answer("a", MASTER), answer("b", hidden)], MASTER)
    assert "one data set (replication id repl-1) on 2 server(s); 0 instance(s) read" in found.check.evidence
    found = compare_stores([answer("a", MASTER), answer("b", MASTER)], MASTER)
    assert (found.check.status, found.check.evidence) == (
        Status.PASS,
        "2 answer(s) from 2 instance(s), all on one store (run-m)",
    )


@pytest.mark.parametrize(
    ("lag", "failed", "says"),
    [
        (ReplicaLag("b", "u", 500, 100, 40.0, "up", 2), False, "b caught up 100 bytes in 40 ms"),
        (
            ReplicaLag("b", "u", 500, 100, 900.0, "up", 9),
            True,
            "100 bytes behind the master; it caught up after 900 ms",
        ),
        (ReplicaLag("b", "u", 500, 100, None, "up", 21), True, "it had not caught up after 2100 ms"),
        (ReplicaLag("b", "u", 500, 0, 3.0, "down", 1), True, "its link to the master is down"),
    ],
)
def test_the_replication_step(lag: ReplicaLag, failed: bool, says: str) -> None:
    check, lagging, _ = judge_replication([lag], 700.0, 2100.0, wrote=True)
    assert (check.status is Status.FAIL, lagging) == (failed, failed)
    assert says in check.evidence, check.evidence


def test_a_replica_in_sync_on_a_read_only_run_is_shown_in_sync_not_timed() -> None:
    check, lagging, _ = judge_replication([ReplicaLag("b", "u", 500, 0, 2.0, "up", 1)], 700.0, 2100.0, wrote=False)
    assert check.status is Status.PASS and not lagging
    assert "b in sync at offset 500" in check.evidence and "read_only=False" in check.evidence


@pytest.mark.parametrize(
    ("offsets", "redis_s", "expires_in_s", "skewed", "says"),
    [
        ({"a": 0.2, "b": -0.4}, 0.0, None, False, "2 instance clock(s) agree with Redis's within 10 s"),
        ({"a": 0.2, "b": 12.0}, 0.0, None, True, "b's clock is 12 s ahead of Redis's"),
        ({"a": 0.2, "b": -30.0}, None, None, True, "b's clock is 30 s behind this machine's"),
        ({"a": 0.2, "b": 8.0}, 0.0, 5.0, True, "b's clock is 8 s ahead, past this session's expiresAt (5 s away)"),
        ({"a": 0.2, "b": 8.0}, 0.0, 600.0, False, "agree"),
        ({"a": 0.0}, 40.0, None, True, "a's clock is 40 s behind Redis's"),
        ({}, 0.0, None, False, "no instance sent a readable HTTP Date header"),
    ],
)
def test_the_clocks_step(
    offsets: dict[str, float], redis_s: float | None, expires_in_s: float | None, skewed: bool, says: str
) -> None:
    samples = [answer(name, MASTER, value) for name, value in offsets.items()] + [answer("c", MASTER, None)]
    check, found, _ = judge_clocks(
        samples[:-1] if offsets else samples, redis_s, max_skew_s=10.0, session_expires_in_s=expires_in_s
    )
    assert found is skewed and (check.status is Status.FAIL) is skewed, check
    assert says in check.evidence, check.evidence


def test_a_lag_equal_to_the_window_is_still_within_it() -> None:
    check, lagging, _ = judge_replication([ReplicaLag("b", "u", 500, 100, 700.0, "up", 7)], 700.0, 2100.0, wrote=True)
    assert check.status is Status.PASS and not lagging, check


@pytest.mark.parametrize(
    ("order", "named"),
    [
        (["slow", "slower", "fast"], "slower"),
        (["slower", "slow", "fast"], "slower"),
        (["never", "slower"], "never"),
        (["slower", "never"], "never"),
        (["down", "slow"], "slow"),
        (["slow", "twin"], "slow"),
    ],
)
def test_the_replica_named_is_the_one_furthest_behind_whatever_the_order(order: list[str], named: str) -> None:
    """The longest lag is named, one that never caught up longest of all; the first listed on a tie."""
    lags = {
        "fast": ReplicaLag("fast", "u", 500, 10, 40.0, "up", 2),
        "slow": ReplicaLag("slow", "u", 500, 20, 900.0, "up", 9),
        "twin": ReplicaLag("twin", "u", 500, 30, 900.0, "up", 9),
        "slower": ReplicaLag("slower", "u", 500, 30, 1500.0, "up", 15),
        "never": ReplicaLag("never", "u", 500, None, None, "up", 0),
        "down": ReplicaLag("down", "u", 500, 0, 3.0, "down", 1),
    }
    check, lagging, short = judge_replication([lags[n] for n in order], 700.0, 2100.0, wrote=True)
    assert check.status is Status.FAIL and lagging
    assert short.startswith(f"{named} reads through a replica"), short
    assert check.evidence.startswith(short) and "the lookup retry window is 700 ms" in check.evidence


def test_a_replica_that_never_answered_is_an_unknown_number_of_bytes_behind() -> None:
    _, _, short = judge_replication([ReplicaLag("b", "u", 500, None, None, None, 0)], 700.0, 2100.0, wrote=True)
    assert short == "b reads through a replica an unknown number of bytes behind the master; " + (
        "it had not caught up after 2100 ms"
    )


def test_a_link_reported_other_than_up_or_down_is_judged_by_its_lag() -> None:
    """``master_link_status`` is ``up`` or ``down``; anything else (or nothing) is no link failure."""
    for link in (None, "connecting", "aaa"):
        check, lagging, _ = judge_replication([ReplicaLag("b", "u", 500, 5, 40.0, link, 2)], 700.0, 2100.0, wrote=True)
        assert check.status is Status.PASS and not lagging, (link, check)
        _, _, short = judge_replication([ReplicaLag("b", "u", 500, 5, None, link, 2)], 700.0, 2100.0, wrote=True)
        assert short.endswith("it had not caught up after 2100 ms"), (link, short)


def test_in_sync_is_said_only_of_a_replica_at_the_offset_on_a_read_only_run() -> None:
    lags = [ReplicaLag("b", "u", 500, 0, 2.0, "up", 1), ReplicaLag("c", "u", 500, 40, 30.0, "up", 3)]
    check, _, short = judge_replication(lags, 700.0, 2100.0, wrote=False)
    assert check.evidence == (
        "replicas keep up within the 700 ms lookup window: b in sync at offset 500; c caught up 40 bytes in 30 ms"
        " (read-only run: a replica in sync with no write in flight is shown in sync, not timed;"
        " read_only=False writes a probe key to time it)"
    )
    assert short == "" and check.name == "replication"
    check, _, _ = judge_replication(lags, 700.0, 2100.0, wrote=True)
    assert check.evidence == (
        "replicas keep up within the 700 ms lookup window: b caught up 0 bytes in 2 ms; c caught up 40 bytes in 30 ms"
    )
    zero = ReplicaLag("d", "u", 500, 0, 0.0, "up", 1)  # caught up by its first answer
    assert judge_replication([zero], 700.0, 2100.0, wrote=True)[0].evidence.endswith("d caught up 0 bytes in 0 ms")


def test_the_replication_data_lists_every_replica_and_the_bounds() -> None:
    lags = [ReplicaLag("b", "u", 500, 0, 2.04, "up", 1), ReplicaLag("c", "u", 500, None, None, "down", 0)]
    for check in (
        judge_replication(lags, 700.0, 2100.0, wrote=True)[0],
        judge_replication(lags[:1], 700.0, 2100.0, wrote=False)[0],
    ):
        assert check.data["window_ms"] == 700.0 and check.data["bound_ms"] == 2100.0
        assert check.data["replicas"] == [lag.to_dict() for lag in lags[: len(check.data["replicas"])]]
    assert len(judge_replication(lags, 700.0, 2100.0, wrote=True)[0].data["replicas"]) == 2
