"""What an endpoint's role means for a backend that writes sessions there, on roles already read
(tests/runbooks/test_diagnosis.py reads them from real primaries, replicas and cluster nodes)."""

from __future__ import annotations

import pytest

from labsession.checks import Status
from labsession.errors import RedisCause
from labsession.probes.topology import Topology, _flag, _int


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
