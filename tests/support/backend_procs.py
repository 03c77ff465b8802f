"""Real ``labsession serve`` processes for tests: an embedded Redis and N backends sharing it.

Other test modules (deployment, fault, load) may import these too; fixtures stay in the test
modules so that no second ``conftest.py`` is needed.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from labsession import EmbeddedRedis
from labsession.embedded.backends import BackendProcess

#: The browser origin our test frontends use; anything else is refused.
GOOD_ORIGIN = "http://app.example.test"
EVIL_ORIGIN = "http://app.example.test.evil.example"


@dataclass
class Deployment:
    """One Redis and the backend instances that share it (a deployment; "cluster" is kept for Redis Cluster)."""

    redis: EmbeddedRedis
    backends: list[BackendProcess] = field(default_factory=list)

    def output(self) -> str:
        return "\n".join(b.output() for b in self.backends)

    @property
    def a(self) -> BackendProcess:
        return self.backends[0]

    @property
    def b(self) -> BackendProcess:
        return self.backends[1]


@contextmanager
def backend_deployment(
    count: int = 2,
    *,
    password: str | None = None,
    env: Mapping[str, str] | None = None,
    origins: Sequence[str] = (GOOD_ORIGIN,),
) -> Iterator[Deployment]:
    """Start an embedded Redis (with ``password``) and ``count`` backends on free ports; always stop all."""
    with ExitStack() as stack:
        redis = stack.enter_context(EmbeddedRedis(password=password))
        deployment = Deployment(redis)
        for index in range(count):
            backend = BackendProcess(redis.url, env=env, allowed_origins=origins, instance_id=f"test-{index}")
            deployment.backends.append(stack.enter_context(backend))
        yield deployment


async def recv_json(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    """The next message, parsed; fails the test if none arrives within ``within`` seconds."""
    raw = await asyncio.wait_for(ws.recv(), within)
    data = json.loads(raw)
    assert isinstance(data, dict), raw
    return data


async def close_of(ws: ClientConnection, within: float = 10.0) -> tuple[int | None, str]:
    """Read until the server closes; the close code and reason it sent (``None`` if it sent none)."""

    async def drain() -> tuple[int | None, str]:
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            rcvd = closed.rcvd
            return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")

    return await asyncio.wait_for(drain(), within)


def connect(url: str, **kwargs: Any) -> Any:
    """``websockets.connect`` with the test origin and no compression (the server offers none)."""
    kwargs.setdefault("origin", GOOD_ORIGIN)
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", 10)
    return websockets.connect(url, **kwargs)


def process_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
