"""Request heads are bounded in size and in time (issue 14, items 3 and 4), against a real process.

A head (request line and headers) larger than 64 KiB in total or with a line over 16 KiB gets
431 (a request line over 8 KiB: 414) and the connection is closed before the rest is read, so a
client cannot make the server hold megabytes. A connection that has not finished its head within
``HEADER_TIMEOUT`` seconds is closed, so slow or silent clients cannot hold sockets for ever.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from labsession.embedded.backends import BackendProcess

from support import MS, wait_until
from support.backend_procs import GOOD_ORIGIN, Deployment, backend_deployment, process_alive

pytestmark = pytest.mark.timeout(180)

#: Seconds a head may take in these tests (the default is 5).
HEADER_TIMEOUT = 1000 * MS


@pytest.fixture(scope="module")
def served() -> Iterator[Deployment]:
    with backend_deployment(1, env={"HEADER_TIMEOUT": f"{HEADER_TIMEOUT:g}"}) as started:
        yield started


def rss_kib(pid: int | None) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int | None) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def exchange(port: int, head: bytes, *, chunk: int = 65536, within: float = 10.0) -> bytes:
    """Send ``head`` in chunks (stopping when the server closes) and return all it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=within) as sock:
        try:
            for start in range(0, len(head), chunk):
                sock.sendall(head[start : start + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we were done: what we want; read what it said
        reply = b""
        try:
            while part := sock.recv(65536):
                reply += part
        except ConnectionResetError:
            pass
        return reply


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    return int(reply[9:12])


def test_a_huge_header_gets_431_before_it_is_read_whole(served: Deployment) -> None:
    before = rss_kib(served.a.pid)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * (16 * 1024 * 1024) + b"\r\n\r\n"
    reply = exchange(served.a.port, head)
    assert status_of(reply) == 431
    assert b'"code":"HEADERS_TOO_LARGE"' in reply and b"connection: close" in reply.lower()
    assert rss_kib(served.a.pid) - before < 8 * 1024  # the 16 MiB never sat in the server
    assert httpx.get(served.a.url + "/health").status_code == 200 and process_alive(served.a.pid)


def test_many_headers_over_64_kib_in_total_get_431(served: Deployment) -> None:
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 4000) for i in range(20))  # each line fine, 80 KB in all
    reply = exchange(served.a.port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert status_of(reply) == 431


def test_a_long_request_line_gets_414_also_for_a_websocket_upgrade(served: Deployment) -> None:
    path = "/terminal/" + "a" * 8200
    upgrade = (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {GOOD_ORIGIN}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    reply = exchange(served.a.port, upgrade)
    assert status_of(reply) == 414 and b'"code":"URI_TOO_LONG"' in reply
    assert time.monotonic() - started < 5.0  # at once, not after a timeout
    plain = exchange(served.a.port, f"GET /api/labs/session/{'b' * 9000}/validate HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status_of(plain) == 414


def test_heads_within_the_limits_are_served(served: Deployment) -> None:
    big_line = {"X-Big": "v" * (15 * 1024)}
    many = {f"X-H{i}": "v" * 3000 for i in range(15)}  # 45 KB in all
    for headers in (big_line, many):
        assert httpx.get(served.a.url + "/health", headers=headers).status_code == 200
    long_path = f"/api/labs/session/{'c' * 7000}/validate"  # a long but allowed request line: 400, not 414
    assert httpx.get(served.a.url + long_path).status_code == 400
    # Keep-alive: every request on one connection gets the whole budget again.
    with httpx.Client() as http:
        for _ in range(30):
            assert http.get(served.a.url + "/health", headers=many).status_code == 200


def test_a_body_is_not_counted_as_head_wherever_the_head_ends(served: Deployment) -> None:
    """A body arriving in the same read as its head, or a head's end split across reads, is never a 431."""
    body = b'{"userId":"' + b"u" * 70_000 + b'"}'  # one 70 KB line, over every head limit
    post = b"POST /api/labs/start HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert status_of(exchange(served.a.port, post + body, chunk=1 << 20)) == 413
    with socket.create_connection(("127.0.0.1", served.a.port), timeout=10) as sock:
        for part in (post[:-3], post[-3:-1], post[-1:] + body[:30_000], body[30_000:]):
            sock.sendall(part)
            time.sleep(0.05)  # separate reads
        assert status_of(sock.recv(65536)) == 413


async def _hold(port: int, first: bytes) -> asyncio.StreamReader:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if first:
        writer.write(first)
        await writer.drain()
    reader.writer = writer  # type: ignore[attr-defined]  # keep the writer alive with the reader
    return reader


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        await asyncio.wait_for(reader.read(), within)
        return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def test_slow_and_silent_heads_are_closed_and_others_keep_being_served() -> None:
    # A server of its own, so that no other test's connections count in its file descriptors.
    with backend_deployment(1, env={"HEADER_TIMEOUT": f"{HEADER_TIMEOUT:g}"}) as deployment:
        backend: BackendProcess = deployment.a
        fds_before = open_fds(backend.pid)
        long_upgrade = (
            b"GET /terminal/" + b"a" * 8200 + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        )  # never finished: refused for its line at once
        unfinished = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1"
        kinds = [b"G"] * 150 + [b""] * 100 + [unfinished] * 100 + [long_upgrade] * 50
        readers = await asyncio.gather(*(_hold(backend.port, first) for first in kinds))
        try:
            # The kernel completes a connection before the server accepts it: wait for the server to hold them.
            await wait_until(lambda: open_fds(backend.pid) >= fds_before + 300, "the server to accept the heads")
            latencies: list[float] = []
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(40):
                    started = time.monotonic()
                    assert (await http.get(backend.url + "/health")).status_code == 200
                    latencies.append(time.monotonic() - started)
            closed = await asyncio.gather(*(_closed_by_server(r, HEADER_TIMEOUT + 5000 * MS) for r in readers))
            assert sum(closed) == len(readers), f"{len(readers) - sum(closed)} of {len(readers)} heads still open"
        finally:
            for reader in readers:
                reader.writer.close()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 5000 * MS
        while open_fds(backend.pid) > fds_before + 5:
            assert time.monotonic() < deadline, (open_fds(backend.pid), fds_before)
            await asyncio.sleep(0.05)
        assert statistics.median(latencies) < 1.0  # bounded (catches a server stuck on the held sockets)
        assert "Traceback" not in backend.output()
