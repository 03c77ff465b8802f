"""What role a Redis endpoint plays (primary, replica, cluster node) and what that means for a
backend that writes sessions there.

Read from ``INFO replication`` and ``INFO cluster`` only: both are open to a read-only ACL user,
where ``ROLE`` or ``CLUSTER INFO`` might not be.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import CheckResult, Status
from ..errors import RedisCause, RedisUnavailable
from ..store.service import RedisService

__all__ = ["Topology", "read_topology"]


@dataclass(frozen=True, slots=True)
class Topology:
    """The endpoint's role. ``None`` fields were not told (``hidden`` says why).

    ``role`` is ``"master"`` or ``"replica"`` (INFO says ``slave``); for a replica, ``master`` is
    the ``host:port`` it follows, ``link`` its replication link (``up``/``down``) and
    ``read_only`` whether it refuses writes; ``replicas`` counts a primary's replicas.
    """

    role: str | None
    master: str | None = None
    link: str | None = None
    read_only: bool | None = None
    replicas: int | None = None
    cluster_enabled: bool | None = None
    hidden: str | None = None

    def cause(self, *, cluster_url: bool) -> RedisCause | None:
        """The fault for a backend that writes sessions through a URL with(out) cluster mode, or ``None``."""
        if self.role == "replica":
            return RedisCause.ENDPOINT_IS_REPLICA
        if self.cluster_enabled and not cluster_url:
            return RedisCause.CLUSTER_REQUIRED
        return None

    def check(self, *, cluster_url: bool) -> CheckResult:
        """The ``topology`` step: FAIL for a replica or an unasked-for cluster node, SKIP when hidden."""
        data = {"role": self.role, "master": self.master, "link": self.link, "clusterEnabled": self.cluster_enabled}
        cause = self.cause(cluster_url=cluster_url)
        if cause is RedisCause.ENDPOINT_IS_REPLICA:
            data["redis_cause"] = cause.value
            if self.read_only is False:
                effect = "it accepts writes, but they never reach the primary and are lost at its next resync"
            else:
                effect = "a backend's session writes fail there with READONLY"
            return CheckResult(
                "topology",
                Status.FAIL,
                f"the endpoint is a replica of {self.master or 'an unnamed primary'} "
                f"(replication link {self.link or 'unknown'}): {effect}",
                data,
            )
        if cause is RedisCause.CLUSTER_REQUIRED:
            data["redis_cause"] = cause.value
            return CheckResult(
                "topology",
                Status.FAIL,
                "the endpoint is a Redis Cluster node (cluster_enabled:1) but REDIS_URL does not ask for "
                "cluster mode: every key another node holds answers MOVED",
                data,
            )
        if self.role is None:
            return CheckResult(
                "topology", Status.SKIP, f"the server does not tell its role ({self.hidden or 'INFO hidden'})", data
            )
        layout = "a Redis Cluster" if self.cluster_enabled else "standalone"
        replicas = "" if self.replicas is None else f", {self.replicas} replica{'s' if self.replicas != 1 else ''}"
        return CheckResult(
            "topology",
            Status.PASS,
            f"role {self.role} ({layout}{replicas}): a backend's session writes land here",
            data,
        )


def _flag(value: object) -> bool | None:
    return None if value is None else str(value) in ("1", "yes", "True")


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


async def read_topology(redis: RedisService) -> Topology:
    """Two INFO sections through ``redis`` (each bounded by its operation timeout). Never raises
    for the target: a refused or failed read is a :class:`Topology` with ``hidden`` set."""
    try:
        replication = await redis.info("replication")
        cluster = await redis.info("cluster")
    except RedisUnavailable as exc:
        return Topology(None, hidden=f"INFO failed: {exc.cause.value}")
    role = replication.get("role")
    if role is None:
        return Topology(None, hidden="INFO replication refused or empty")
    role = "replica" if str(role) in ("slave", "replica") else str(role)
    master = None
    if role == "replica" and replication.get("master_host"):
        master = f"{replication['master_host']}:{replication.get('master_port', '?')}"
    read_only = replication.get("slave_read_only", replication.get("replica_read_only"))
    return Topology(
        role,
        master=master,
        link=str(replication["master_link_status"]) if "master_link_status" in replication else None,
        read_only=_flag(read_only) if role == "replica" else None,
        replicas=_int(replication.get("connected_slaves")) if role == "master" else None,
        cluster_enabled=_flag(cluster.get("cluster_enabled")),
        hidden=None if cluster else "INFO cluster refused or empty",
    )
