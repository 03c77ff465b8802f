"""What an endpoint's role means for a backend that writes sessions there, on roles already read
(tests/runbooks/test_diagnosis.py reads them from real primaries, replicas and cluster nodes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labsession import Settings
from labsession.checks import Status
from labsession.embedded import EmbeddedRedis
from labsession.errors import RedisCause
from labsession.probes.topology import Topology, _flag, _int, read_topology
from labsession.store.service import RedisService


@pytest.mark.parametrize(
    ("topology", "cluster_url", "cause"),
    [
        (Topology("master"), False, None),
        (Topology("master", cluster_enabled=False), False, None),
        (Topology("master", cluster_enabled=True), False, RedisCause.CLUSTER_REQUIRED),
        (Topology("master", cluster_enabled=True), True, None),
        (Topology("replica", master="10.0.0.1:6379"), False, RedisCause.ENDPOINT_IS_REPLICA),
        (Topology("replica", cluster_enabled=True), True, RedisCause.ENDPOINT_IS_REPLICA),
        (Topology("replica", cluster_enabled=True), False, RedisCause.ENDPOINT_IS_REPLICA),
        (Topology(None, hidden="INFO replication refused or empty"), False, None),
    ],
)
def test_a_replica_or_an_unasked_for_cluster_node_is_no_place_for_session_writes(
    topology: Topology, cluster_url: bool, cause: RedisCause | None
) -> None:
    assert topology.cause(cluster_url=cluster_url) is cause
    check = topology.check(cluster_url=cluster_url)
    expected = Status.FAIL if cause else (Status.SKIP if topology.role is None else Status.PASS)
    assert check.status is expected, check


@pytest.mark.parametrize(
    ("raw", "flag"), [(None, None), ("1", True), ("yes", True), ("True", True), (1, True), ("0", False), ("no", False)]
)
def test_info_flags(raw: object, flag: bool | None) -> None:
    assert _flag(raw) is flag


@pytest.mark.parametrize(("raw", "number"), [(None, None), ("3", 3), (0, 0), ("x", None)])
def test_info_counts(raw: object, number: int | None) -> None:
    assert _int(raw) == number


async def test_a_server_gone_before_the_read_is_a_hidden_role_not_an_exception(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    settings = Settings.from_url(server.url).with_changes(
        retry_attempts=1, connect_timeout=1.0, socket_timeout=1.0, operation_timeout=2.0
    )
    async with RedisService(settings) as redis:
        server.stop()
        facts = await read_topology(redis)
    assert facts.role is None and (facts.hidden or "").startswith("INFO failed: "), facts
    assert facts.check(cluster_url=False).status is Status.SKIP
