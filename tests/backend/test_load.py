"""Load: 1,000 sessions and 1,000 concurrent WebSockets across two backend instances.

Two ``labsession serve`` processes share one embedded Redis (once a single redis-server, once a
3-master cluster) behind a round-robin TCP proxy (a few lines of asyncio below). 1,000 sessions
are created through the proxy, one connection each, so they alternate between the instances;
then every session's WebSocket is opened on the instance that did *not* create it, all 1,000
at once, and each is pinged. Nothing may say "Invalid session"; every ping must be answered.

The test measures, and prints, memory per open WebSocket (backend RSS growth / sockets) and per
stored session (Redis ``used_memory`` growth / sessions). It asserts no speed. With
``LABSESSION_LOAD_RESULTS=<file>`` it also writes the figures there as JSON (that is how
``bench/results/load.json`` is produced; see bench/README.md). Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection

from labsession import EmbeddedRedis
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_cluster import EmbeddedRedisCluster
from labsession.embedded.redis_server import redis_server_version

from support import MS, wait_until
from support.backend_procs import GOOD_ORIGIN, connect, recv_json

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SESSIONS = 1000
START = {"userId": "load-user", "labId": "lab-load", "purchaseId": "purchase-load"}


class RoundRobinProxy:
    """A TCP proxy on 127.0.0.1 that sends the n-th accepted connection to ``targets[n % len]``.

    ``routed[n]`` is the target index of the n-th connection.
    """

    def __init__(self, targets: list[tuple[str, int]]) -> None:
        self.targets = targets
        self.routed: list[int] = []
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> RoundRobinProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):  # closing both ends lets every pipe finish by itself
            writer.close()
        await asyncio.wait_for(self._idle.wait(), 10)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.routed) % len(self.targets)
        self.routed.append(index)
        self._idle.clear()
        self._open.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.targets[index])
            self._open.add(up_writer)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                await _close(up_writer)
                self._open.discard(up_writer)
        finally:
            await _close(writer)
            self._open.discard(writer)
            if not self._open:
                self._idle.set()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()


def machine_description(binary: Path) -> str:
    """CPU model and count, OS, Python and redis-server versions: what the figures ran on."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = ".".join(map(str, redis_server_version(binary) or ("?",)))
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, redis-server {version}"
    )


def record(path: Path, kind: str, figures: dict[str, Any]) -> None:
    """Keep ``figures`` under ``kind`` in the JSON file at ``path`` (other kinds stay)."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        recorded = {}
    if "sessions" in recorded:  # an older single-store file
        recorded = {}
    recorded[kind] = figures
    path.write_text(json.dumps(recorded, indent=2) + "\n")


def rss_bytes(pid: int | None) -> int:
    """Resident set size of ``pid`` from /proc, in bytes."""
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture
def open_files_limit() -> Iterator[int]:
    """Raise the soft RLIMIT_NOFILE (inherited by the backends) to cover 1,000 sockets each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * SESSIONS + 512
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.fail(f"the hard open-files limit ({hard}) is below the {want} this test needs")
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield want
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Store:
    """The Redis under the backends, one server or a cluster, read directly by the test."""

    def __init__(self, kind: str, stack: ExitStack) -> None:
        self.kind = kind
        if kind == "cluster":
            cluster = stack.enter_context(EmbeddedRedisCluster())
            self.url, self.binary = cluster.url, cluster.binary
            self.nodes = [stack.enter_context(redis.Redis.from_url(n.url)) for n in cluster.nodes]
        else:
            server = stack.enter_context(EmbeddedRedis())
            self.url, self.binary = server.url, server.binary
            self.nodes = [stack.enter_context(redis.Redis.from_url(server.url))]

    def used_memory(self) -> int:
        """``used_memory`` summed over every node, bytes."""
        return sum(int(node.info("memory")["used_memory"]) for node in self.nodes)

    def dbsize(self) -> int:
        return sum(int(node.dbsize()) for node in self.nodes)

    def value_size(self, key: str) -> int:
        """Bytes of ``key``'s value, read on the node that holds it."""
        for node in self.nodes:
            with contextlib.suppress(redis.exceptions.ResponseError):  # MOVED: another master has it
                if size := int(node.strlen(key)):
                    return size
        raise AssertionError(f"no node holds {key}")


@pytest.mark.parametrize("kind", ["standalone", "cluster"])
async def test_1000_sessions_and_1000_websockets_across_two_instances(open_files_limit: int, kind: str) -> None:
    began = time.monotonic()
    figures: dict[str, Any] = {}
    with ExitStack() as stack:
        store = Store(kind, stack)
        backends = [
            stack.enter_context(
                BackendProcess(
                    store.url,
                    allowed_origins=(GOOD_ORIGIN,),
                    instance_id=f"load-{i}",
                    log_level="warning",
                )
            )
            for i in range(2)
        ]
        async with RoundRobinProxy([(b.host, b.port) for b in backends]) as proxy:
            # 1. 1,000 sessions through the proxy, one connection each: they alternate instances.
            used_before = store.used_memory()
            created_on: list[tuple[str, int]] = []
            no_reuse = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=10, limits=no_reuse) as http:
                for n in range(SESSIONS):
                    response = await http.post(f"{proxy.url}/api/labs/start", json=START)
                    assert response.status_code == 201, response.text
                    created_on.append((response.json()["sessionId"], proxy.routed[n]))
            used_after = store.used_memory()
            assert len(proxy.routed) == SESSIONS
            assert proxy.routed.count(0) == proxy.routed.count(1) == SESSIONS // 2
            assert store.dbsize() == SESSIONS
            if kind == "cluster":
                assert all(node.dbsize() > 0 for node in store.nodes)
            figures["redis_bytes_per_session"] = (used_after - used_before) / SESSIONS
            figures["session_json_bytes"] = store.value_size(f"session:{created_on[0][0]}")

        async def open_websockets(want: list[int]) -> bool:
            async with httpx.AsyncClient(timeout=10) as http:
                diagnostics = [(await http.get(f"{b.url}/api/diagnostics/websocket")).json() for b in backends]
            return [d["instance"]["openWebSockets"] for d in diagnostics] == want

        # 2. Warm each instance's WebSocket path, then take its RSS as the baseline.
        for backend in backends:
            async with connect(f"{backend.ws_url}/terminal/{created_on[0][0]}") as ws:
                assert (await recv_json(ws))["type"] == "connected"
        await wait_until(lambda: open_websockets([0, 0]), "both instances to drop the warm-up socket", every=20 * MS)
        rss_before = [rss_bytes(b.pid) for b in backends]

        # 3. Every session's WebSocket on the *other* instance, all open at the same time.
        sockets: list[tuple[ClientConnection, int]] = []
        handshake = asyncio.Semaphore(64)
        invalid: list[str] = []

        async def open_one(session_id: str, creator: int) -> None:
            other = 1 - creator
            async with handshake:
                ws = await connect(f"{backends[other].ws_url}/terminal/{session_id}", ping_interval=None).__aenter__()
                sockets.append((ws, other))
                hello = await recv_json(ws, 30)
            if hello.get("type") != "connected":
                invalid.append(json.dumps(hello))

        try:
            opened_at = time.monotonic()
            await asyncio.gather(*(open_one(sid, creator) for sid, creator in created_on))
            figures["open_seconds"] = round(time.monotonic() - opened_at, 2)
            assert invalid == []
            assert len(sockets) == SESSIONS
            per_backend = [sum(1 for _, owner in sockets if owner == i) for i in range(2)]
            assert per_backend == [SESSIONS // 2, SESSIONS // 2]
            # Each server holds every socket it answered before its memory is read.
            await wait_until(lambda: open_websockets(per_backend), "each instance to count its sockets", every=20 * MS)
            rss_after = [rss_bytes(b.pid) for b in backends]

            # 4. Every socket pings; every ping is answered.
            async def ping(ws: ClientConnection) -> dict[str, Any]:
                await ws.send(json.dumps({"type": "ping"}))
                return await recv_json(ws, 30)

            pongs = await asyncio.gather(*(ping(ws) for ws, _ in sockets))
            assert [p["type"] for p in pongs] == ["pong"] * SESSIONS
        finally:
            await asyncio.gather(*(ws.close() for ws, _ in sockets), return_exceptions=True)

        deltas = [after - before for before, after in zip(rss_before, rss_after, strict=True)]
        figures["backend_rss_bytes_per_websocket"] = sum(deltas) / SESSIONS
        figures["backend_rss_bytes_per_websocket_each"] = [d / n for d, n in zip(deltas, per_backend, strict=True)]
        figures["backend_rss_mib_with_500_websockets"] = [round(r / 2**20, 1) for r in rss_after]
        for backend in backends:
            output = backend.output()
            assert "Traceback" not in output
            assert "Invalid session" not in output and "SESSION_NOT_FOUND" not in output

    figures.update(
        sessions=SESSIONS,
        websockets=SESSIONS,
        backends=2,
        total_seconds=round(time.monotonic() - began, 1),
        date=time.strftime("%Y-%m-%d"),
        store=kind,
        machine=machine_description(store.binary),
        command="LABSESSION_LOAD_RESULTS=bench/results/load.json .venv/bin/python -m pytest tests/test_load.py",
    )
    print("\nload figures:", json.dumps(figures, indent=2))
    if target := os.environ.get("LABSESSION_LOAD_RESULTS"):
        await asyncio.to_thread(record, Path(target), kind, figures)
    # Sanity, not speed: a socket costs kilobytes, not megabytes; a session a few hundred bytes.
    assert 0 < figures["redis_bytes_per_session"] < 4096
    assert figures["backend_rss_bytes_per_websocket"] < 1024 * 1024


async def test_the_proxy_alternates_and_pipes_both_ways() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: bytes) -> None:
        data = await reader.read(100)
        writer.write(tag + data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    servers = [await asyncio.start_server(functools.partial(echo, tag=tag), "127.0.0.1", 0) for tag in (b"A:", b"B:")]
    targets = [("127.0.0.1", int(s.sockets[0].getsockname()[1])) for s in servers]
    replies = []
    async with RoundRobinProxy(targets) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        for n in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello %d" % n)
            await writer.drain()
            replies.append(await reader.read(100))
            writer.close()
            await writer.wait_closed()
    for server in servers:
        server.close()
        await server.wait_closed()
    assert replies == [b"A:hello 0", b"B:hello 1", b"A:hello 2", b"B:hello 3"]
    assert proxy.routed == [0, 1, 0, 1]
