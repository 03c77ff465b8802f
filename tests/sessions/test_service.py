"""LabSessionService against a real redis-server: the TypeScript backend's format both ways,
docs/contract.md's validation table, atomic extend, idempotent end, SCAN listing, command counts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable

import pytest
import redis

from labsession import (
    CorruptSession,
    EmbeddedRedis,
    InvalidExtension,
    InvalidSessionId,
    LabSessionService,
    RedisService,
    RedisUnavailable,
    SessionEnded,
    SessionNotActive,
    SessionNotFound,
    Settings,
    ValidationReason,
)
from labsession.sessions.service import ENDED_TTL_SECONDS, MAX_EXTEND_MINUTES, check_extension_minutes

from support.redisstats import CommandCounter
from support.tsformat import TS_FIELDS, ts_json, ts_session


class Clock:
    """A clock the test moves by hand (seconds since the epoch), starting at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def raw(embedded_redis: EmbeddedRedis) -> redis.Redis:
    """A plain client for writing and reading values behind the service's back."""
    client = redis.Redis.from_url(embedded_redis.url)
    yield client
    client.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(redis_service: RedisService, clock: Clock) -> LabSessionService:
    return LabSessionService(redis_service, clock=clock)


def new_id() -> str:
    return str(uuid.uuid4())


def now_ms(clock: Clock) -> int:
    return int(clock.now * 1000)


# -- compatibility with the TypeScript backend ---------------------------------------------------


async def test_a_typescript_value_is_read(service: LabSessionService, raw: redis.Redis, clock: Clock) -> None:
    sid = new_id()
    value = ts_session(sid, now_ms(clock), extra={"instanceId": "i-0abc", "flags": {"beta": True}})
    raw.set(f"session:{sid}", ts_json(value), ex=7200)
    session = await service.get(sid)
    assert session is not None
    assert session.to_dict() == value
    assert session.sandbox_account is not None and session.sandbox_account["iamSecretAccessKey"]
    result = await service.validate(sid)
    assert result.valid and result.reason is ValidationReason.OK
    assert result.expires_in is not None and 7190 <= result.expires_in <= 7200


async def test_a_created_session_has_the_typescript_fields_and_ttl(
    service: LabSessionService, raw: redis.Redis, clock: Clock, embedded_redis: EmbeddedRedis
) -> None:
    with CommandCounter(embedded_redis.url) as seen:
        session = await service.create("user-42", "lab-aws-101", "pur_9XkQ", base_url="wss://labs.example.com/")
    assert seen.delta == {"set": 1}  # one round trip
    stored = json.loads(raw.get(f"session:{session.session_id}") or b"")
    assert list(stored) == TS_FIELDS
    assert uuid.UUID(stored["sessionId"]).version == 4
    assert stored["status"] == "active"
    assert stored["createdAt"] == stored["startedAt"] == now_ms(clock)
    assert stored["expiresAt"] - stored["createdAt"] == 120 * 60_000
    assert stored["webSocketUrl"] == f"wss://labs.example.com/terminal/{session.session_id}"
    assert stored["sandboxAccount"] is None
    pttl = raw.pttl(f"session:{session.session_id}")
    assert 7_190_000 < pttl <= 7_200_000


async def test_create_honours_lab_timeout_minutes(redis_service: RedisService, raw: redis.Redis) -> None:
    service = LabSessionService(redis_service, redis_service.settings.with_changes(lab_timeout_minutes=30))
    session = await service.create("u", "l", "p", base_url="ws://h")
    assert 1790 <= raw.ttl(f"session:{session.session_id}") <= 1800


async def test_create_never_overwrites_an_existing_key(redis_service: RedisService, raw: redis.Redis) -> None:
    taken = new_id()
    raw.set(f"session:{taken}", "someone else's")
    fresh = new_id()
    ids = iter([taken, fresh])
    service = LabSessionService(redis_service, id_factory=lambda: next(ids))
    session = await service.create("u", "l", "p", base_url="ws://h")
    assert session.session_id == fresh
    assert raw.get(f"session:{taken}") == b"someone else's"


async def test_unknown_fields_survive_extend_and_end(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    sid = new_id()
    value = ts_session(sid, now_ms(clock), extra={"instanceId": "i-0abc", "tags": ["a", {"b": None}], "n": 1.5})
    raw.set(f"session:{sid}", ts_json(value), ex=7200)
    await service.extend(sid, 15)
    after_extend = json.loads(raw.get(f"session:{sid}") or b"")
    assert after_extend == {**value, "expiresAt": value["expiresAt"] + 15 * 60_000}
    assert list(after_extend) == list(value)
    await service.end(sid)
    after_end = json.loads(raw.get(f"session:{sid}") or b"")
    assert after_end == {**after_extend, "status": "destroyed"}
    assert list(after_end) == list(value)


async def test_big_integers_and_odd_numbers_in_unknown_fields_survive_extend_exactly(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    """orjson reads integers beyond 64 bits as floats: the value must still come back exact."""
    sid = new_id()
    value = ts_session(
        sid,
        now_ms(clock),
        extra={"big": 2**64 + 1, "neg": -(2**63) - 1, "f": 1e16, "nested": [{"id": 10**25}], "name": "Zoë 🧪"},
    )
    raw.set(f"session:{sid}", ts_json(value), ex=7200)
    await service.extend(sid, 1)
    expected = {**value, "expiresAt": value["expiresAt"] + 60_000}
    assert raw.get(f"session:{sid}") == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    assert [s.extra async for s in service.scan()] == [
        {k: expected[k] for k in ("big", "neg", "f", "nested")} | {"name": "Zoë 🧪"}
    ]


# -- the validation table -------------------------------------------------------------------------


def _store(
    raw: redis.Redis,
    clock: Clock,
    *,
    status: str = "active",
    created_ago_s: float = 3600,
    expires_in_s: float = 3600,
    ttl: int = 3600,
) -> str:
    sid = new_id()
    now = now_ms(clock)
    value = ts_session(sid, now, status=status, created_ago_ms=int(created_ago_s * 1000))
    value["expiresAt"] = now + int(expires_in_s * 1000)
    raw.set(f"session:{sid}", ts_json(value), ex=ttl)
    return sid


@pytest.mark.parametrize(
    ("state", "reason", "in_grace"),
    [
        ({}, ValidationReason.OK, False),
        ({"expires_in_s": -5}, ValidationReason.EXPIRED, False),
        ({"status": "creating", "created_ago_s": 3}, ValidationReason.OK, True),
        ({"status": "creating", "created_ago_s": 9.9}, ValidationReason.OK, True),
        ({"status": "creating", "created_ago_s": 10}, ValidationReason.NOT_ACTIVE, False),
        ({"status": "creating", "created_ago_s": 60}, ValidationReason.NOT_ACTIVE, False),
        # the grace period never revives an ended or expired session
        ({"status": "destroyed", "created_ago_s": 1}, ValidationReason.ENDED, False),
        ({"status": "destroyed", "created_ago_s": 3600}, ValidationReason.ENDED, False),
        ({"status": "expired", "created_ago_s": 1}, ValidationReason.EXPIRED, False),
        ({"status": "creating", "created_ago_s": 1, "expires_in_s": -1}, ValidationReason.EXPIRED, False),
        # boundaries: expiresAt == now has expired; an ended session stays ended past its expiry
        ({"expires_in_s": 0}, ValidationReason.EXPIRED, False),
        ({"expires_in_s": 0.001}, ValidationReason.OK, False),
        ({"status": "creating", "created_ago_s": 1, "expires_in_s": 0}, ValidationReason.EXPIRED, False),
        ({"status": "destroyed", "created_ago_s": 7200, "expires_in_s": 0}, ValidationReason.ENDED, False),
        ({"status": "destroyed", "created_ago_s": 7200, "expires_in_s": -5}, ValidationReason.ENDED, False),
        ({"status": "creating", "created_ago_s": 9.999}, ValidationReason.OK, True),  # the last grace millisecond
        # createdAt ahead of this clock (another instance's clock is fast): still being created
        ({"status": "creating", "created_ago_s": -2}, ValidationReason.OK, True),
        # any status but the three known ones is "being set up", wherever it sorts among them
        ({"status": "starting", "created_ago_s": 3}, ValidationReason.OK, True),
        ({"status": "starting", "created_ago_s": 60}, ValidationReason.NOT_ACTIVE, False),
        ({"status": "aborted", "created_ago_s": 3}, ValidationReason.OK, True),
        ({"status": "aborted", "created_ago_s": 60}, ValidationReason.NOT_ACTIVE, False),
        ({"status": "", "created_ago_s": 60}, ValidationReason.NOT_ACTIVE, False),
        ({"status": "Active", "created_ago_s": 60}, ValidationReason.NOT_ACTIVE, False),
        ({"status": "expired", "created_ago_s": 3600, "expires_in_s": 600}, ValidationReason.EXPIRED, False),
    ],
)
async def test_validation_table_and_reads_never_write(
    service: LabSessionService,
    raw: redis.Redis,
    clock: Clock,
    embedded_redis: EmbeddedRedis,
    state: dict[str, object],
    reason: ValidationReason,
    in_grace: bool,
) -> None:
    sid = _store(raw, clock, **state)  # type: ignore[arg-type]
    before = raw.get(f"session:{sid}")
    with CommandCounter(embedded_redis.url) as seen:
        result = await service.validate(sid)
        session = await service.get(sid)
    assert (result.reason, result.in_grace, result.valid) == (reason, in_grace, reason is ValidationReason.OK)
    assert result.session is not None and session is not None
    # Whole seconds left: none once expired, else what expiresAt says.
    left = max(0, (session.expires_at - now_ms(clock)) // 1000)
    assert result.expires_in == (0 if reason is ValidationReason.EXPIRED else left)
    assert seen.delta == {"get": 2}  # one GET each, nothing written, nothing deleted
    assert raw.get(f"session:{sid}") == before
    assert raw.ttl(f"session:{sid}") > 3000


async def test_active_ids_stop_listing_a_session_the_millisecond_it_expires(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    # The listing decides plain active records on the raw JSON, apart from judge(): the same rule.
    due = _store(raw, clock, expires_in_s=0)
    later = _store(raw, clock, expires_in_s=0.001)
    assert await service.active_ids() == [later]
    assert (await service.validate(due)).reason is ValidationReason.EXPIRED
    clock.now += 0.002  # past the next millisecond whatever the float rounding
    assert await service.active_ids() == []


async def test_grace_period_follows_the_clock_and_settings(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    sid = _store(raw, clock, status="creating", created_ago_s=0)
    assert (await service.validate(sid)).in_grace
    clock.now += 10.0
    assert (await service.validate(sid)).reason is ValidationReason.NOT_ACTIVE
    strict = LabSessionService(service.redis, service.settings.with_changes(grace_seconds=0), clock=clock)
    assert (
        await strict.validate(_store(raw, clock, status="creating", created_ago_s=0))
    ).reason is ValidationReason.NOT_ACTIVE


async def test_missing_key_is_not_found(service: LabSessionService, embedded_redis: EmbeddedRedis) -> None:
    sid = new_id()
    with CommandCounter(embedded_redis.url) as seen:
        assert await service.get(sid) is None
        result = await service.validate(sid)
    assert result.reason is ValidationReason.NOT_FOUND and result.session is None and not result.valid
    assert seen.delta == {"get": 2}  # a miss is one GET too, and never KEYS


@pytest.mark.parametrize("value", [b"{not json", b"\xff\xfe\x00", b"[1,2,3]", b'{"sessionId":"x"}', b""])
async def test_corrupt_value_is_reported_and_kept(
    service: LabSessionService, raw: redis.Redis, embedded_redis: EmbeddedRedis, value: bytes
) -> None:
    sid = new_id()
    raw.set(f"session:{sid}", value, ex=500)
    with CommandCounter(embedded_redis.url) as seen:
        result = await service.validate(sid)
        with pytest.raises(CorruptSession):
            await service.get(sid)
    assert result.reason is ValidationReason.CORRUPT and result.detail
    assert seen.delta == {"get": 2}
    assert raw.get(f"session:{sid}") == value and raw.ttl(f"session:{sid}") > 400
    with pytest.raises(CorruptSession):
        await service.extend(sid, 5)
    with pytest.raises(CorruptSession):
        await service.end(sid)
    assert raw.get(f"session:{sid}") == value


async def test_key_of_another_redis_type_is_corrupt_not_an_error(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    """A GET answered WRONGTYPE (someone wrote a hash there) is a corrupt session: reported, kept,
    and never a raw driver error (a 500 on HTTP, a crashed WebSocket handler, a dead watcher round)."""
    from labsession.backend.watcher import SessionWatcher

    sid = new_id()
    raw.hset(f"session:{sid}", "sessionId", sid)
    result = await service.validate(sid)
    assert result.reason is ValidationReason.CORRUPT and result.detail
    with pytest.raises(CorruptSession):
        await service.get(sid)
    record = await service.inspect(sid)
    assert record.exists and record.session is None and record.error and record.ttl == -1
    with pytest.raises(CorruptSession):
        await service.extend(sid, 5)
    with pytest.raises(CorruptSession):
        await service.end(sid)
    assert raw.type(f"session:{sid}") == b"hash"
    # The watcher still tells the other sockets: one odd key does not fail the whole round.
    ended = _store(raw, clock)
    await service.end(ended)
    seen: dict[str, ValidationReason] = {}
    watcher = SessionWatcher(service, 1.0)
    for watched in (sid, ended):
        watcher.watch(watched, lambda verdict, w=watched: seen.__setitem__(w, verdict.reason))
    await watcher.check_once()
    assert seen == {sid: ValidationReason.CORRUPT, ended: ValidationReason.ENDED}


async def test_inspect_reports_value_ttl_and_size(service: LabSessionService, raw: redis.Redis, clock: Clock) -> None:
    sid = _store(raw, clock, ttl=900)
    record = await service.inspect(sid)
    assert record.exists and record.session is not None and record.error is None
    assert 890 <= (record.ttl or 0) <= 900 and record.size == len(raw.get(f"session:{sid}") or b"")
    missing = await service.inspect(new_id())
    assert not missing.exists and missing.ttl == -2


# -- extend -----------------------------------------------------------------------------------------


def test_the_limits_are_a_day_of_extension_and_a_minute_of_ended_record() -> None:
    assert MAX_EXTEND_MINUTES == 1440
    assert ENDED_TTL_SECONDS == 60
    assert check_extension_minutes(1) == 1
    assert check_extension_minutes(1440) == 1440
    for bad in (0, 1441, -1):
        with pytest.raises(InvalidExtension) as caught:
            check_extension_minutes(bad, "s-1")
        assert caught.value.minutes == bad


@pytest.mark.parametrize("minutes", [0, -5, "30", 1.5, 30.0, True, False, None, MAX_EXTEND_MINUTES + 1, 10**9])
async def test_extend_validates_minutes_before_touching_redis(
    service: LabSessionService, raw: redis.Redis, clock: Clock, embedded_redis: EmbeddedRedis, minutes: object
) -> None:
    sid = _store(raw, clock)
    before = raw.get(f"session:{sid}")
    with CommandCounter(embedded_redis.url) as seen:
        with pytest.raises(InvalidExtension) as caught:
            await service.extend(sid, minutes)
    assert caught.value.minutes == minutes and isinstance(caught.value, ValueError)
    assert seen.total == 0
    assert raw.get(f"session:{sid}") == before


async def test_extend_adds_minutes_and_keeps_the_ttl_with_expires_at(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    sid = _store(raw, clock, expires_in_s=600, ttl=600)
    extended = await service.extend(sid, MAX_EXTEND_MINUTES)
    stored = json.loads(raw.get(f"session:{sid}") or b"")
    assert stored["expiresAt"] == extended.expires_at == now_ms(clock) + 600_000 + MAX_EXTEND_MINUTES * 60_000
    pttl = raw.pttl(f"session:{sid}")
    assert abs((stored["expiresAt"] - time.time() * 1000) - pttl) < 2000
    default = await service.extend(sid)  # 30 minutes, like the TypeScript route's default
    assert default.expires_at == extended.expires_at + 30 * 60_000


async def test_concurrent_extends_from_two_clients_add_up_exactly(
    settings: Settings, raw: redis.Redis, clock: Clock
) -> None:
    sid = _store(raw, clock, expires_in_s=600, ttl=600)
    start = json.loads(raw.get(f"session:{sid}") or b"")["expiresAt"]
    n = 40
    async with RedisService(settings, client_name="a") as a, RedisService(settings, client_name="b") as b:
        services = [LabSessionService(a), LabSessionService(b)]
        await asyncio.gather(*(services[i % 2].extend(sid, 1) for i in range(n)))
    stored = json.loads(raw.get(f"session:{sid}") or b"")
    assert stored["expiresAt"] == start + n * 60_000
    assert abs((stored["expiresAt"] - time.time() * 1000) - raw.pttl(f"session:{sid}")) < 2000


async def test_extend_refuses_ended_unknown_expired_and_bad_ids(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    ended = _store(raw, clock, status="destroyed", created_ago_s=1)
    with pytest.raises(SessionEnded):
        await service.extend(ended, 5)
    with pytest.raises(SessionNotFound):
        await service.extend(new_id(), 5)
    expired = _store(raw, clock, expires_in_s=-1)
    with pytest.raises(SessionNotActive) as caught:
        await service.extend(expired, 5)
    assert caught.value.status == "expired"
    stale = _store(raw, clock, status="creating", created_ago_s=60)
    with pytest.raises(SessionNotActive) as caught:
        await service.extend(stale, 5)
    assert caught.value.status == "creating"  # not expired: the status it is stuck in
    due = _store(raw, clock, status="creating", created_ago_s=60, expires_in_s=0)
    with pytest.raises(SessionNotActive) as caught:
        await service.extend(due, 5)
    assert caught.value.status == "expired"  # expiresAt == now has expired
    with pytest.raises(InvalidSessionId):
        await service.extend("session:*", 5)


# -- end --------------------------------------------------------------------------------------------


async def test_end_is_idempotent_and_keeps_the_record_60_seconds(
    service: LabSessionService, raw: redis.Redis, clock: Clock, embedded_redis: EmbeddedRedis
) -> None:
    session = await service.create("u", "l", "p", base_url="ws://h")
    key = f"session:{session.session_id}"
    ended = await service.end(session.session_id)
    assert ended.status == "destroyed"
    assert json.loads(raw.get(key) or b"")["status"] == "destroyed"
    assert 55 <= raw.ttl(key) <= ENDED_TTL_SECONDS
    raw.expire(key, 30)  # a second end must not reset the countdown
    with CommandCounter(embedded_redis.url) as seen:
        again = await service.end(session.session_id)
    assert again.status == "destroyed" and "set" not in seen.delta
    assert raw.ttl(key) <= 30
    assert (await service.validate(session.session_id)).reason is ValidationReason.ENDED
    clock.now += 1  # still under the grace period: an ended session stays ended
    assert (await service.validate(session.session_id)).reason is ValidationReason.ENDED


@pytest.mark.parametrize("status", ["active", "expired", "creating", "starting"])
async def test_end_marks_any_status_but_destroyed_ended_for_60_seconds(
    service: LabSessionService, raw: redis.Redis, clock: Clock, status: str
) -> None:
    sid = _store(raw, clock, status=status, created_ago_s=60)
    ended = await service.end(sid)
    assert ended.status == "destroyed"
    assert json.loads(raw.get(f"session:{sid}") or b"")["status"] == "destroyed"
    assert 55 <= raw.ttl(f"session:{sid}") <= 60


async def test_end_unknown_id_is_not_found(service: LabSessionService) -> None:
    with pytest.raises(SessionNotFound) as caught:
        await service.end(new_id())
    assert "not found" in str(caught.value)


# -- ids never reach Redis --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["*", "?", "[a-f]*", "../x", "session:*", "", "x" * 5000, None, 7, "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4*"]
)
async def test_malformed_ids_raise_before_touching_redis(
    service: LabSessionService, embedded_redis: EmbeddedRedis, bad: object
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: service.get(bad),  # type: ignore[arg-type]
        lambda: service.validate(bad),  # type: ignore[arg-type]
        lambda: service.extend(bad, 5),  # type: ignore[arg-type]
        lambda: service.end(bad),  # type: ignore[arg-type]
        lambda: service.inspect(bad),  # type: ignore[arg-type]
    ]
    with CommandCounter(embedded_redis.url) as seen:
        for call in calls:
            with pytest.raises(InvalidSessionId):
                await call()  # type: ignore[misc]
        with pytest.raises(InvalidSessionId):
            service.key(bad)  # type: ignore[arg-type]
    assert seen.total == 0


# -- listing ----------------------------------------------------------------------------------------


async def _populate(service: LabSessionService, raw: redis.Redis, clock: Clock) -> dict[str, set[str]]:
    """25 active sessions (5 of user-a), 3 ended, 2 expired, 1 corrupt, and keys of other apps."""
    groups: dict[str, set[str]] = {"active": set(), "user-a": set(), "ended": set(), "expired": set()}
    for i in range(25):
        s = await service.create("user-a" if i < 5 else f"user-{i}", "l", "p", base_url="ws://h")
        groups["active"].add(s.session_id)
        if i < 5:
            groups["user-a"].add(s.session_id)
    for _ in range(3):
        s = await service.create("user-z", "l", "p", base_url="ws://h")
        await service.end(s.session_id)
        groups["ended"].add(s.session_id)
    for _ in range(2):
        groups["expired"].add(_store(raw, clock, expires_in_s=-5))
    corrupt = new_id()
    raw.set(f"session:{corrupt}", b"{oops", ex=100)
    groups["corrupt"] = {corrupt}
    raw.set("sessionx:not-ours", b"1")
    raw.set("other:session:abc", b"1")
    raw.set("session", b"1")
    return groups


async def test_scan_lists_everything_in_batches_without_keys(
    service: LabSessionService, raw: redis.Redis, clock: Clock, embedded_redis: EmbeddedRedis
) -> None:
    groups = await _populate(service, raw, clock)
    everything = groups["active"] | groups["ended"] | groups["expired"]
    with CommandCounter(embedded_redis.url) as seen:
        scanned = [s.session_id async for s in service.scan(batch_size=4)]
        active = await service.active_ids(batch_size=7)
        mine = await service.sessions_for_user("user-a", batch_size=3)
        count = await service.count(batch_size=5)
    assert sorted(scanned) == sorted(everything)  # corrupt skipped, other apps' keys ignored
    assert set(active) == groups["active"]
    assert {s.session_id for s in mine} == groups["user-a"]
    assert count == len(everything) + 1
    assert "keys" not in seen.delta
    assert seen.delta["scan"] >= 3
    # values are read with one MGET per SCAN batch, never a GET per key
    assert seen.delta["get"] == 0
    assert 0 < seen.delta["mget"] <= seen.delta["scan"]


async def test_scan_records_limit_ttl_and_corrupt(service: LabSessionService, raw: redis.Redis, clock: Clock) -> None:
    groups = await _populate(service, raw, clock)
    limited = [r async for r in service.scan_records(batch_size=4, limit=7)]
    assert len(limited) == 7
    records = [r async for r in service.scan_records(batch_size=6, with_ttl=True)]
    by_id = {r.session_id: r for r in records}
    assert set(by_id) == groups["active"] | groups["ended"] | groups["expired"] | groups["corrupt"]
    for sid in groups["active"]:
        assert 7100 <= (by_id[sid].ttl or 0) <= 7200 and by_id[sid].size > 100
        assert by_id[sid].key == f"session:{sid}"
    for sid in groups["ended"]:
        assert 0 < (by_id[sid].ttl or 0) <= 60
    (corrupt,) = groups["corrupt"]
    assert by_id[corrupt].session is None and by_id[corrupt].error
    without = [r async for r in service.scan_records(batch_size=50)]
    assert all(r.ttl is None for r in without) and len(without) == len(records)


async def test_scan_on_an_empty_store(service: LabSessionService) -> None:
    assert [r async for r in service.scan_records()] == []
    assert await service.active_ids() == [] and await service.count() == 0


async def test_key_prefix_with_glob_characters_matches_only_itself(
    redis_service: RedisService, raw: redis.Redis
) -> None:
    prefix = "lab[1]*?\\:"
    service = LabSessionService(redis_service, redis_service.settings.with_changes(key_prefix=prefix))
    mine = {(await service.create("u", "l", "p", base_url="ws://h")).session_id for _ in range(3)}
    for key in ("lab1x:" + new_id(), "lab[1]zz\\:" + new_id(), "lab[1]*?:" + new_id()):
        raw.set(key, ts_json(ts_session(key.rsplit(":", 1)[-1], 0)))
    assert set(await service.active_ids(batch_size=2)) == mine
    assert await service.count() == 3
    sid = next(iter(mine))
    assert raw.exists(prefix + sid) and service.key(sid) == prefix + sid


async def test_active_ids_fast_path_agrees_with_the_full_rules(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    """Odd but readable records take the slow path; the answer is the same as judging each one."""
    now = now_ms(clock)
    odd: dict[str, bytes] = {}

    def put(value: dict[str, object] | str, text: str | None = None) -> None:
        sid = new_id()
        if isinstance(value, dict):
            value = {**ts_session(sid, now), **value}
            body = ts_json(value)
        else:
            body = value.replace("SID", sid)
        odd[sid] = (text or body).encode()
        raw.set(f"session:{sid}", odd[sid], ex=600)

    put({})  # plain active
    put({"expiresAt": now + 60_000.5})  # float time: still valid
    put({"createdAt": True})  # corrupt
    put({"sessionId": 12345})  # odd id type: full rules decide
    put({"status": "creating", "createdAt": now - 1000, "startedAt": now - 1000})  # grace
    put({"status": "creating", "createdAt": now - 60_000, "startedAt": now - 60_000})
    put({"expiresAt": now - 1})  # expired, key still present
    put({"status": "destroyed"})
    later = now + 60_000
    put('  {"sessionId":"SID","expiresAt":' + str(later) + ',"status":"active"}')  # leading space: valid JSON
    put('{"sessionId":"SID","expiresAt":' + str(later) + ',"status":"active"} trailing')  # not JSON
    put("[1, 2, 3]")
    put({"expiresAt": 2**64 + now})  # beyond 64 bits (orjson: a float): valid
    put({"createdAt": -(2**63) - 1, "startedAt": 0})  # likewise, far in the past: valid
    put({"extraCount": 10**30})  # a big number elsewhere: valid
    put('{"sessionId":"SID","expiresAt":' + str(later) + ',"status":"active","x":NaN}')  # json reads NaN
    put('\ufeff{"sessionId":"SID","expiresAt":' + str(later) + ',"status":"active"}')  # BOM: json reads it
    raw.hset("session:" + new_id(), "not", "a string")  # another type under the prefix
    expected = sorted(
        [
            str(r.session.session_id)
            async for r in service.scan_records()
            if r.session is not None and service.judge(r.session).valid
        ]
    )
    assert sorted(map(str, await service.active_ids(batch_size=3))) == expected
    assert len(expected) == 10


async def test_leaving_a_scan_early_leaves_no_read_behind(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    for _ in range(40):
        _store(raw, clock)
    before = asyncio.all_tasks()
    async with contextlib.aclosing(service.scan_records(batch_size=4)) as records:
        async for _ in records:
            break  # batches are being read ahead at this point
    assert asyncio.all_tasks() == before
    assert len(await service.active_ids(batch_size=4)) == 40  # the pool got every connection back


async def test_a_store_failure_during_a_scan_reaches_the_caller(
    service: LabSessionService, raw: redis.Redis, clock: Clock, embedded_redis: EmbeddedRedis
) -> None:
    for _ in range(40):
        _store(raw, clock)
    before = asyncio.all_tasks()
    seen = 0
    with pytest.raises(RedisUnavailable):
        async with contextlib.aclosing(service.scan_records(batch_size=4)) as records:
            async for _ in records:
                seen += 1
                if seen == 1:
                    await asyncio.to_thread(embedded_redis.stop)
    assert seen < 40
    assert asyncio.all_tasks() == before


async def test_logs_never_carry_a_whole_session_id(
    sessions: LabSessionService, captured_logs: pytest.LogCaptureFixture
) -> None:
    # A whole id opens /terminal/{id}: logs show only its first 8 characters.
    session = await sessions.create("u", "l", "p", base_url="wss://x")
    await sessions.extend(session.session_id, 5)
    await sessions.end(session.session_id)
    assert any(session.session_id[:8] in r.getMessage() for r in captured_logs.records)
    assert not any(session.session_id in r.getMessage() for r in captured_logs.records)


async def test_session_errors_name_the_session_by_8_characters(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    """A whole id opens its terminal; error messages reach logs, notebook outputs and reports, so
    they carry the short form while ``session_id`` keeps the whole id for the caller."""
    unknown, ended, expired, corrupt = new_id(), _store(raw, clock), _store(raw, clock, expires_in_s=-5), new_id()
    await service.end(ended)
    raw.set(f"session:{corrupt}", b"{oops", ex=100)
    cases = [
        (unknown, SessionNotFound, lambda: service.extend(unknown, 5)),
        (ended, SessionEnded, lambda: service.extend(ended, 5)),
        (expired, SessionNotActive, lambda: service.extend(expired, 5)),
        (corrupt, CorruptSession, lambda: service.end(corrupt)),
    ]
    for sid, kind, call in cases:
        with pytest.raises(kind) as caught:
            await call()
        assert caught.value.session_id == sid
        assert sid not in str(caught.value) and sid not in repr(caught.value)
        assert sid[:8] in str(caught.value)


async def test_a_listing_reports_a_key_of_another_type_as_corrupt(
    service: LabSessionService, raw: redis.Redis, clock: Clock
) -> None:
    """MGET answers nil for a hash as for a vanished key: the listing must not hide it."""
    kept = [_store(raw, clock) for _ in range(5)]
    odd = new_id()
    raw.hset(f"session:{odd}", "not", "a string")
    for with_ttl in (False, True):
        records = {r.session_id: r async for r in service.scan_records(batch_size=3, with_ttl=with_ttl)}
        assert set(records) == {*kept, odd}
        assert records[odd].session is None and "another Redis type" in (records[odd].error or "")
        assert all(records[sid].session is not None for sid in kept)
    assert sorted(await service.active_ids(batch_size=3)) == sorted(kept)
