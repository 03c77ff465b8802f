"""RespStub: a tiny RESP server on 127.0.0.1 that answers commands with one chosen error text.

Plain Redis cannot say what a hosted Redis says when a plan limit is hit (Upstash's
``ERR max daily request limit exceeded`` and the like). The stub speaks just enough RESP for
redis-py to connect and for the runbook to read it: a RESP3 map to ``HELLO``, ``+OK`` to
``AUTH``/``SELECT``/``CLIENT``, ``+PONG`` to ``PING``, a short ``INFO``, and the chosen
``error`` to every command named in ``fail`` (every command when ``fail`` is ``None``).
``seen`` lists the commands it received, upper-case, with their first argument
(``CLIENT SETNAME``, ``HELLO 3``), never an argument of ``AUTH``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from types import TracebackType

__all__ = ["RespStub"]

_INFO = (
    "# Server\r\nredis_version:7.0.0\r\nrun_id:{run_id}\r\n# Clients\r\nconnected_clients:1\r\n"
    "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n# Cluster\r\ncluster_enabled:0\r\n"
)


class RespStub:
    """``async with RespStub("ERR max daily request limit exceeded") as stub:`` then connect to ``stub.url``."""

    def __init__(self, error: str, *, fail: Collection[str] | None = None, password: str | None = None) -> None:
        self.error = error.replace("\r", " ").replace("\n", " ")
        self.fail = {name.upper() for name in fail} if fail is not None else None
        self.password = password
        self.seen: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``redis://`` URL of the stub (with ``password`` when one was given)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> RespStub:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (command := await _read_command(reader)) is not None:
                writer.write(self._answer(command))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    def _answer(self, command: list[bytes]) -> bytes:
        name = command[0].decode(errors="replace").upper() if command else ""
        shown = name if name == "AUTH" or len(command) < 2 else f"{name} {command[1].decode(errors='replace').upper()}"
        self.seen.append(shown)
        if self.fail is None or name in self.fail:
            return f"-{self.error}\r\n".encode()
        if name == "HELLO":
            return b"%3\r\n+server\r\n+redis\r\n+version\r\n+7.0.0\r\n+proto\r\n:3\r\n"
        if name == "PING":
            return b"+PONG\r\n"
        if name == "INFO":
            body = _INFO.format(run_id="0" * 40).encode()
            return b"$%d\r\n%s\r\n" % (len(body), body)
        return b"+OK\r\n"


async def _read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    """One RESP array of bulk strings (what clients send), or ``None`` at the end of the stream."""
    header = await reader.readline()
    if not header:
        return None
    if not header.startswith(b"*"):
        return header.split()  # an inline command
    parts: list[bytes] = []
    for _ in range(int(header[1:])):
        size = await reader.readline()
        if not size.startswith(b"$"):
            raise ValueError("expected a bulk string")
        parts.append((await reader.readexactly(int(size[1:]) + 2))[:-2])
    return parts
