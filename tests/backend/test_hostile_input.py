"""Hostile input, fuzzed with hypothesis: never a 500, never a stack trace, never a crash.

High-volume HTTP fuzzing drives the app in-process (httpx's ASGI transport, a real Redis,
exceptions raised into the test); WebSocket frames and raw bytes go to a real process.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as sync_connect

from labsession import EmbeddedRedis, RedisService
from labsession.backend import BackendConfig, BackendState, create_app, store_settings

from support import CANARY
from support.backend_procs import GOOD_ORIGIN, Deployment, backend_deployment, process_alive

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class InProcess:
    def __init__(self, runner: asyncio.Runner, client: httpx.AsyncClient, state: BackendState) -> None:
        self.runner = runner
        self.client = client
        self.state = state

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.runner.run(self.client.request(method, path, **kwargs))


@pytest.fixture(scope="module")
def app() -> Iterator[InProcess]:
    with EmbeddedRedis(password=CANARY) as redis:
        runner = asyncio.Runner()
        state = BackendState(
            BackendConfig(allowed_origins=(GOOD_ORIGIN,)), RedisService(store_settings({"REDIS_URL": redis.url}))
        )
        runner.run(state.start())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(state)), base_url="http://fuzz")
        try:
            yield InProcess(runner, client, state)
        finally:
            runner.run(client.aclose())
            runner.run(state.aclose())
            runner.close()


def check(response: httpx.Response) -> None:
    """The invariants of every answer: no 5xx (the store is up), JSON with a code on errors, no trace, no secret."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text and CANARY not in response.text
    if response.status_code >= 400 and response.request.method != "HEAD":
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("code"), str) and body["code"].isupper()


ids = st.one_of(
    st.text(max_size=80),
    st.uuids().map(str),
    st.just("*"),
    st.just("session:*"),
    st.text(alphabet="0123456789abcdef-", min_size=30, max_size=40),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
start_bodies = st.fixed_dictionaries(
    {}, optional={"userId": json_values, "labId": json_values, "purchaseId": json_values, "token": json_values}
)


@FUZZ
@given(session_id=ids, suffix=st.sampled_from(["", "/validate", "/extend", "/end"]))
def test_fuzzed_session_ids(app: InProcess, session_id: str, suffix: str) -> None:
    method = "POST" if suffix in ("/extend", "/end") else "GET"
    response = app.request(method, f"/api/labs/session/{quote(session_id, safe='')}{suffix}")
    check(response)
    if response.status_code == 400:
        assert response.json()["code"] == "INVALID_SESSION_ID"


@FUZZ
@given(body=st.one_of(start_bodies, json_values))
def test_fuzzed_start_bodies(app: InProcess, body: Any) -> None:
    response = app.request("POST", "/api/labs/start", content=json.dumps(body, allow_nan=True).encode())
    check(response)
    if response.status_code == 400 and response.json()["code"] == "INVALID_FIELD":
        assert response.json()["field"] in ("userId", "labId", "purchaseId", "token")


@FUZZ
@given(raw=st.binary(max_size=3000), minutes=json_values)
def test_fuzzed_extend_bodies(app: InProcess, raw: bytes, minutes: Any) -> None:
    sid = str(uuid.uuid4())
    check(app.request("POST", f"/api/labs/session/{sid}/extend", content=raw))
    check(app.request("POST", f"/api/labs/session/{sid}/extend", content=json.dumps({"minutes": minutes}).encode()))


@FUZZ
@given(
    segments=st.lists(st.text(max_size=30), max_size=6),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    origin=st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)),
    request_id=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
)
def test_fuzzed_paths_methods_and_headers(
    app: InProcess, segments: list[str], method: str, origin: str | None, request_id: str
) -> None:
    headers = {"x-request-id": request_id}
    if origin is not None:
        headers["origin"] = origin
    path = "/" + "/".join(quote(s, safe="") or "~" for s in segments)
    response = app.request(method, path, headers=headers)
    check(response)
    echoed = response.headers.get("x-request-id", "")
    assert echoed and all(c.isalnum() or c in "._-" for c in echoed)
    granted = response.headers.get("access-control-allow-origin")
    assert granted in (None, GOOD_ORIGIN)


# -- against a real process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[Deployment]:
    with backend_deployment(1, password=CANARY, env={"WS_MAX_MESSAGE_SIZE": "4096"}) as started:
        yield started


class Terminal:
    """One open socket to the real process, reopened if a frame closed it."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.sid = httpx.post(
            deployment.a.url + "/api/labs/start", json={"userId": "u", "labId": "l", "purchaseId": "p"}
        ).json()["sessionId"]
        self.ws: ClientConnection | None = None

    def socket(self) -> ClientConnection:
        if self.ws is None:
            ws = sync_connect(
                f"{self.deployment.a.ws_url}/terminal/{self.sid}", origin=GOOD_ORIGIN, compression=None, open_timeout=10
            ).__enter__()
            assert json.loads(ws.recv(timeout=5))["type"] == "connected"
            self.ws = ws
        return self.ws


@pytest.fixture(scope="module")
def terminal(served: Deployment) -> Iterator[Terminal]:
    opened = Terminal(served)
    yield opened
    if opened.ws is not None:
        opened.ws.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=st.one_of(
        st.text(max_size=600),
        st.binary(max_size=600),
        json_values.map(json.dumps),
        st.dictionaries(st.just("type"), st.text(max_size=20)).map(json.dumps),
    )
)
def test_fuzzed_websocket_frames_get_one_answer_each(terminal: Terminal, frame: str | bytes) -> None:
    ws = terminal.socket()
    ws.send(frame)
    reply = json.loads(ws.recv(timeout=5))
    assert reply["type"] in ("pong", "error")
    if reply["type"] == "error":
        assert reply["code"] in (
            "INVALID_JSON",
            "INVALID_MESSAGE",
            "UNKNOWN_TYPE",
            "COMMANDS_DISABLED",
            "UNSUPPORTED_FRAME",
        )


@pytest.mark.parametrize("size", [4097, 10_000, 1_000_000, -1])
def test_oversized_frames_close_1009_without_harm(served: Deployment, size: int) -> None:
    """Over the limit: close 1009 (a client still sending may see the connection reset instead, as the
    server drops the unread rest); the process lives and serves the next connection."""
    sid = httpx.post(served.a.url + "/api/labs/start", json={"userId": "u", "labId": "l", "purchaseId": "p"}).json()[
        "sessionId"
    ]
    url = f"{served.a.ws_url}/terminal/{sid}"
    with sync_connect(url, origin=GOOD_ORIGIN, compression=None, max_size=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "connected"
        with pytest.raises((ConnectionClosed, OSError)) as closed:
            if size > 0:
                ws.send("x" * size)
            else:
                # Fragmented, over the limit only in total, and small enough to arrive in one write:
                # more bytes still in flight when the server closes would reset the connection.
                ws.send(["y" * 2050, "y" * 2050])
            while True:
                ws.recv(timeout=10)
    if isinstance(closed.value, ConnectionClosed) and closed.value.rcvd is not None:
        assert closed.value.rcvd.code == 1009
    if size in (4097, -1):  # small enough to be read whole: the close frame always arrives
        assert isinstance(closed.value, ConnectionClosed) and closed.value.rcvd is not None
    assert httpx.get(served.a.url + "/health").status_code == 200 and process_alive(served.a.pid)
    with sync_connect(url, origin=GOOD_ORIGIN, compression=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "connected"


RAW_REQUESTS = [
    b"GARBAGE\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/labs/session/%ZZ/validate HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/labs/session/\xff\xfe/validate HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/labs/start HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{",
    b"POST /api/labs/start HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /terminal/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 100_000 + b"\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(64)),
]


@pytest.mark.parametrize("raw", RAW_REQUESTS, ids=lambda r: repr(r[:24]))
def test_raw_hostile_requests_never_crash_or_trace(served: Deployment, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", served.a.port), timeout=10) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        except (ConnectionResetError, BrokenPipeError):
            reply = b""
    assert b"Traceback" not in reply and CANARY.encode() not in reply
    if reply.startswith(b"HTTP/1.1 "):
        assert not reply.startswith(b"HTTP/1.1 5"), reply[:200]
    assert httpx.get(served.a.url + "/health").status_code == 200 and process_alive(served.a.pid)


def test_server_output_stayed_clean(served: Deployment) -> None:
    output = served.output()
    assert "event=http" in output
    assert CANARY not in output and "Traceback" not in output and "event=error" not in output
