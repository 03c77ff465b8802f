"""``WS /terminal/{sessionId}`` against real ``labsession serve`` processes and real websockets clients."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
import websockets
from websockets.frames import Opcode
from websockets.protocol import State

from support import MS
from support.backend_procs import EVIL_ORIGIN, Deployment, backend_deployment, close_of, connect, recv_json
from support.redisstats import CommandCounter

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    env = {"WS_IDLE_TIMEOUT": "2", "WS_PING_INTERVAL": "0.3", "WS_PING_TIMEOUT": "5", "WS_MAX_MESSAGE_SIZE": "4096"}
    with backend_deployment(2, env=env) as started:
        yield started


def new_session(base: str) -> str:
    response = httpx.post(base + "/api/labs/start", json={"userId": "u", "labId": "l", "purchaseId": "p"})
    assert response.status_code == 201
    return str(response.json()["sessionId"])


async def test_connected_then_ping_pong(deployment: Deployment) -> None:
    sid = new_session(deployment.a.url)
    async with connect(f"{deployment.b.ws_url}/terminal/{sid}") as ws:
        hello = await recv_json(ws)
        assert hello["type"] == "connected" and hello["sessionId"] == sid and hello["instanceId"] == "test-1"
        await ws.send(json.dumps({"type": "ping"}))
        pong = await recv_json(ws)
        assert pong["type"] == "pong" and pong["timestamp"].endswith("Z")


async def test_bad_messages_get_errors_and_the_socket_stays_open(deployment: Deployment) -> None:
    sid = new_session(deployment.a.url)
    async with connect(f"{deployment.a.ws_url}/terminal/{sid}") as ws:
        assert (await recv_json(ws))["type"] == "connected"
        cases = {
            "{not json": "INVALID_JSON",
            "[1, 2]": "INVALID_MESSAGE",
            '{"type": 5}': "INVALID_MESSAGE",
            '{"type": "dance"}': "UNKNOWN_TYPE",
            '{"type": "command", "command": "env"}': "COMMANDS_DISABLED",
            '{"type": "input", "data": "cat /proc/self/environ\\n"}': "COMMANDS_DISABLED",
        }
        for text, code in cases.items():
            await ws.send(text)
            reply = await recv_json(ws)
            assert reply["type"] == "error" and reply["code"] == code, (text, reply)
            assert "REDIS" not in json.dumps(reply)
        await ws.send(b"\x00\x01binary")
        assert (await recv_json(ws))["code"] == "UNSUPPORTED_FRAME"
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"
        assert ws.state is State.OPEN


async def test_unknown_session_gets_the_typescript_error_then_4000(deployment: Deployment) -> None:
    sid = str(uuid.uuid4())
    started = time.monotonic()
    async with connect(f"{deployment.a.ws_url}/terminal/{sid}") as ws:
        error = await recv_json(ws)
        assert error == {
            **error,
            "type": "error",
            "code": "SESSION_NOT_FOUND",
            "message": "Session not found or expired",
            "sessionId": sid,
        }
        assert "timestamp" in error
        assert await close_of(ws) == (4000, "Invalid session")
    # Four lookups, after 0, 100, 200 and 400 ms: at least 0.7 s before the verdict.
    assert time.monotonic() - started >= 700 * MS * 0.95


async def test_only_a_missing_session_is_looked_up_again(deployment: Deployment) -> None:
    """The retry schedule covers another instance's write still on its way; an ended session is
    final, so it is refused after one read, and an unknown one after all four."""
    ended = new_session(deployment.a.url)
    assert (await asyncio.to_thread(httpx.post, f"{deployment.a.url}/api/labs/session/{ended}/end")).status_code == 200
    for sid, reads, code in ((ended, 1, "SESSION_ENDED"), (str(uuid.uuid4()), 4, "SESSION_NOT_FOUND")):
        with CommandCounter(deployment.redis.url) as seen:
            async with connect(f"{deployment.b.ws_url}/terminal/{sid}") as ws:
                assert (await recv_json(ws))["code"] == code
                assert (await close_of(ws))[0] == 4000
        assert seen.delta["get"] == reads, seen.delta


@pytest.mark.parametrize("bad", ["abc", "0" * 36, "%2E%2E", "%00", "session:*"])
async def test_malformed_ids_close_4000(deployment: Deployment, bad: str) -> None:
    async with connect(f"{deployment.a.ws_url}/terminal/{bad}") as ws:
        assert (await recv_json(ws))["code"] == "SESSION_NOT_FOUND"
        assert (await close_of(ws))[0] == 4000


async def test_lookup_retries_and_keeps_messages_sent_meanwhile(deployment: Deployment) -> None:
    """The session appears only after the backend's first lookup missed it (another instance's
    write landing late); pings sent during the lookup are answered afterwards, in order."""
    sid = str(uuid.uuid4())
    store = redis.asyncio.Redis.from_url(deployment.redis.url)
    now = int(time.time() * 1000)
    record = {
        "sessionId": sid,
        "userId": "u",
        "labId": "late",
        "purchaseId": "p",
        "createdAt": now,
        "startedAt": now,
        "expiresAt": now + 600_000,
        "status": "active",
    }
    try:
        # MONITOR shows the backend's GETs: the write waits for the first one (a miss), so the
        # session is found by a retry, however fast or slow the backend got to its lookup.
        async with store.monitor() as monitor, connect(f"{deployment.a.ws_url}/terminal/{sid}") as ws:
            for _ in range(3):
                await ws.send('{"type":"ping"}')

            async def first_lookup() -> None:
                while True:
                    command = (await monitor.next_command())["command"]
                    if command == f"GET session:{sid}":
                        return

            await asyncio.wait_for(first_lookup(), 5000 * MS)
            await store.set(f"session:{sid}", json.dumps(record), ex=600)
            hello = await recv_json(ws)
            assert hello["type"] == "connected" and hello["labId"] == "late"
            assert [(await recv_json(ws))["type"] for _ in range(3)] == ["pong", "pong", "pong"]
    finally:
        await store.aclose()


async def test_session_ended_on_another_instance_closes_4000(deployment: Deployment) -> None:
    sid = new_session(deployment.a.url)
    async with connect(f"{deployment.a.ws_url}/terminal/{sid}") as ws:
        assert (await recv_json(ws))["type"] == "connected"
        ended_by_b = await asyncio.to_thread(httpx.post, f"{deployment.b.url}/api/labs/session/{sid}/end")
        assert ended_by_b.status_code == 200
        ended = time.monotonic()
        error = await recv_json(ws, within=10)
        assert error["type"] == "error" and error["code"] == "SESSION_ENDED"
        assert await close_of(ws) == (4000, "Invalid session")
        assert time.monotonic() - ended < 5.0  # "within a few seconds"; the poll is every 1 s


async def test_idle_socket_is_closed(deployment: Deployment) -> None:
    sid = new_session(deployment.a.url)
    async with connect(f"{deployment.a.ws_url}/terminal/{sid}") as ws:
        assert (await recv_json(ws))["type"] == "connected"
        opened = time.monotonic()
        assert await close_of(ws, within=15) == (1000, "Idle timeout")
        assert time.monotonic() - opened >= 1.5  # WS_IDLE_TIMEOUT=2 s, pings do not count as activity


async def test_oversized_message_closes_1009_and_the_server_lives(deployment: Deployment) -> None:
    sid = new_session(deployment.a.url)
    async with connect(f"{deployment.a.ws_url}/terminal/{sid}") as ws:
        assert (await recv_json(ws))["type"] == "connected"
        await ws.send("x" * 5000)
        assert (await close_of(ws))[0] == 1009
    assert (await asyncio.to_thread(httpx.get, deployment.a.url + "/health")).status_code == 200


async def test_refused_origin_and_unknown_path_fail_the_handshake(deployment: Deployment) -> None:
    sid = new_session(deployment.a.url)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(f"{deployment.a.ws_url}/terminal/{sid}", origin=EVIL_ORIGIN):
            pass
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["code"] == "ORIGIN_REFUSED"
    with pytest.raises(websockets.InvalidStatus) as missing:
        async with connect(f"{deployment.a.ws_url}/shell/{sid}"):
            pass
    assert missing.value.response.status_code == 404


async def test_server_sends_protocol_pings(deployment: Deployment) -> None:
    """With WS_PING_INTERVAL=0.3 s the server pings; read raw frames with the Sans-I/O client to see them."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame
    from websockets.uri import parse_uri

    sid = new_session(deployment.a.url)
    protocol = ClientProtocol(parse_uri(f"{deployment.a.ws_url}/terminal/{sid}"))
    reader, writer = await asyncio.open_connection("127.0.0.1", deployment.a.port)
    try:
        protocol.send_request(protocol.connect())
        writer.write(b"".join(protocol.data_to_send()))
        pings = 0
        deadline = time.monotonic() + 10
        while pings < 2 and time.monotonic() < deadline:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "server closed the connection"
            protocol.receive_data(data)
            pings += sum(1 for e in protocol.events_received() if isinstance(e, Frame) and e.opcode is Opcode.PING)
            writer.write(b"".join(protocol.data_to_send()))  # the protocol answers pings with pongs
        assert pings >= 2
    finally:
        writer.close()


async def test_open_socket_count_in_diagnostics(deployment: Deployment) -> None:
    sid = new_session(deployment.b.url)
    url = f"{deployment.b.ws_url}/terminal/{sid}"
    async with connect(url) as ws1, connect(url) as ws2:
        assert (await recv_json(ws1))["type"] == (await recv_json(ws2))["type"] == "connected"
        body = (await asyncio.to_thread(httpx.get, deployment.b.url + "/api/diagnostics/websocket")).json()
        assert body["instance"]["openWebSockets"] == 2
