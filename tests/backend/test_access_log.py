"""The access log: one line per request, written off the request path, sampled or off on demand."""

from __future__ import annotations

import asyncio
import io
import time
import uuid

import httpx
import pytest

from labsession import EmbeddedRedis
from labsession.backend.accesslog import AccessLog
from labsession.backend.errors import BackendError
from labsession.embedded.backends import BackendProcess
from labsession.masking import register_secret

from support import CANARY, MS
from support.backend_procs import GOOD_ORIGIN, backend_deployment, close_of, connect, recv_json

pytestmark = pytest.mark.timeout(120)

START = {"userId": "u", "labId": "l", "purchaseId": "p"}


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_lines_are_queued_then_written_in_the_event_log_layout() -> None:
    stream = io.StringIO()
    access = AccessLog(stream=stream, interval=3600)  # no timed flush: only close() writes
    sid = str(uuid.uuid4())
    access.record("abc123", "GET", f"/api/labs/session/{sid}/validate", 200, 0.0012, offered=False)
    assert stream.getvalue() == ""  # nothing formatted or written on the request path
    access.close()
    (line,) = lines_of(stream)
    assert " INFO labsession.backend.access: event=http rid=abc123 GET " in line
    assert line.endswith(f"/api/labs/session/{sid[:8]}~/validate 200 1.2ms")
    assert sid not in line  # a session id opens a terminal: cut to 8 characters
    access.record("def456", "POST", "/api/labs/start", 201, 0.002, offered=False)
    assert "rid=def456 POST /api/labs/start 201" in stream.getvalue()  # after close: at once


def test_the_writer_thread_writes_within_its_interval() -> None:
    stream = io.StringIO()
    access = AccessLog(stream=stream, interval=0.02)
    access.start()
    try:
        access.record("r1", "GET", "/health", 200, 0.001, offered=False)
        deadline = time.monotonic() + 5000 * MS
        while "rid=r1" not in stream.getvalue():
            assert time.monotonic() < deadline, "the writer thread never wrote the line"
            time.sleep(0.01)
    finally:
        access.close()


def test_sampling_keeps_one_in_n_successes_and_every_error() -> None:
    stream = io.StringIO()
    access = AccessLog(stream=stream, sample=10, interval=3600)
    for i in range(100):
        access.record(f"ok{i}", "GET", "/health", 200, 0.001, offered=False)
    for i in range(7):
        access.record(f"miss{i}", "GET", "/nope", 404, 0.001, offered=False)
    access.record("boom", "GET", "/x", 503, 0.001, offered=False)
    access.close()
    lines = lines_of(stream)
    assert sum(" 200 " in line for line in lines) == 10
    assert sum(" 404 " in line for line in lines) == 7 and sum(" 503 " in line for line in lines) == 1
    with pytest.raises(ValueError):
        AccessLog(sample=0)


def test_a_full_queue_drops_and_says_how_many() -> None:
    stream = io.StringIO()
    access = AccessLog(stream=stream, interval=3600, limit=5)
    for i in range(12):
        access.record(f"r{i}", "GET", "/health", 200, 0.001, offered=False)
    access.close()
    lines = lines_of(stream)
    assert sum("event=http" in line for line in lines) == 5
    assert lines[-1].endswith("event=access_log_dropped count=7") and " WARNING " in lines[-1]


def test_secrets_in_a_path_or_an_offered_request_id_are_masked() -> None:
    register_secret(CANARY)
    stream = io.StringIO()
    access = AccessLog(stream=stream, interval=3600)
    access.record(CANARY, "GET", f"/x/{CANARY}", 404, 0.001, offered=True)
    access.record("r2", "GET", "/redis://user:hunter2hunter2@host/", 404, 0.001, offered=False)
    access.close()
    text = stream.getvalue()
    assert CANARY not in text and "hunter2hunter2" not in text
    assert text.count("****") >= 3


def test_notes_share_the_writer_and_are_masked_whole() -> None:
    register_secret(CANARY)
    stream = io.StringIO()
    access = AccessLog(stream=stream, interval=3600)
    access.note("labsession.backend.terminal", f"event=ws_closed rid=r1 session=abcdef12~ code=1000 x={CANARY}")
    assert stream.getvalue() == ""
    access.close()
    (line,) = lines_of(stream)
    assert " INFO labsession.backend.terminal: event=ws_closed rid=r1 session=abcdef12~ code=1000 x=****" in line


# -- a real process -------------------------------------------------------------------------------


def wait_for(backend: BackendProcess, text: str, within: float = 5.0) -> str:
    deadline = time.monotonic() + within * 1000 * MS
    while text not in (output := backend.output()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in the server's output"
        time.sleep(0.02)
    return output


async def test_websocket_events_are_written_with_or_without_access_lines() -> None:
    with (
        EmbeddedRedis() as redis,
        BackendProcess(redis.url, allowed_origins=(GOOD_ORIGIN,)) as on,
        BackendProcess(redis.url, allowed_origins=(GOOD_ORIGIN,), args=["--no-access-log"]) as off,
    ):
        async with httpx.AsyncClient(timeout=10) as http:
            sid = (await http.post(on.url + "/api/labs/start", json=START)).json()["sessionId"]
        for backend in (on, off):
            async with connect(f"{backend.ws_url}/terminal/{sid}") as ws:
                assert (await recv_json(ws))["type"] == "connected"
            async with connect(f"{backend.ws_url}/terminal/{uuid.uuid4()}") as ws:
                assert (await close_of(ws))[0] == 4000
            output = await asyncio.to_thread(wait_for, backend, "event=ws_rejected")
            assert "event=ws_connected rid=" in output and f"session={sid[:8]}~" in output
            await asyncio.to_thread(wait_for, backend, "event=ws_closed")
        assert "event=http" not in off.output()


def test_default_server_writes_one_line_per_request() -> None:
    with backend_deployment(1) as deployment, httpx.Client(timeout=10) as http:
        sid = http.post(deployment.a.url + "/api/labs/start", json=START).json()["sessionId"]
        http.get(f"{deployment.a.url}/api/labs/session/{sid}/validate", headers={"x-request-id": "trace-42"})
        output = wait_for(deployment.a, "rid=trace-42")
        assert f"rid=trace-42 GET /api/labs/session/{sid[:8]}~/validate 200 " in output
        assert "event=http" in output and "POST /api/labs/start 201" in output
        assert sid not in output


def test_access_log_off_and_sampled_from_the_command_line_and_the_environment() -> None:
    with EmbeddedRedis() as redis:
        with (
            BackendProcess(redis.url, args=["--no-access-log"]) as off,
            BackendProcess(redis.url, env={"ACCESS_LOG_SAMPLE": "5"}) as sampled,
            httpx.Client(timeout=10) as http,
        ):
            for backend in (off, sampled):
                for _ in range(20):
                    assert http.get(backend.url + "/health").status_code == 200
                assert http.get(backend.url + "/nope", headers={"x-request-id": "last-one"}).status_code == 404
            wait_for(sampled, "rid=last-one")
            off.terminate()
            assert off.wait(15) == 0
            assert "event=http" not in off.output()
            assert "event=stopped" in off.output()  # the event log itself is still there
            # 20 successes in a row hold exactly 4 fifths, whatever the readiness polls before them.
            assert sampled.output().count("GET /health 200") == 4
        bad = BackendProcess(redis.url, env={"ACCESS_LOG_SAMPLE": "0"}, startup_timeout=20)
        with pytest.raises(BackendError, match="ACCESS_LOG_SAMPLE"):
            bad.start()
        bad.close()
