"""Redis going away under load, a frozen Redis, SIGTERM, and refusing to start without REDIS_URL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support import CANARY, wait_until
from support.backend_procs import backend_deployment, close_of, connect, process_alive, recv_json

pytestmark = pytest.mark.timeout(120)

START = {"userId": "u", "labId": "l", "purchaseId": "p"}


async def _load(http: httpx.AsyncClient, urls: list[str], stop: asyncio.Event, seen: list[tuple[int, float]]) -> None:
    i = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            response = await http.get(urls[i % len(urls)])
            seen.append((response.status_code, time.monotonic() - started))
            if response.status_code >= 500:
                assert response.status_code == 503 and response.json()["code"] == "STORE_UNAVAILABLE", response.text
        except httpx.TransportError:
            seen.append((0, time.monotonic() - started))
        i += 1


async def test_redis_stopped_under_load_fails_fast_and_recovers() -> None:
    with backend_deployment(2, password=CANARY) as deployment:
        async with httpx.AsyncClient(timeout=10) as http:
            sids = [
                (await http.post(deployment.a.url + "/api/labs/start", json=START)).json()["sessionId"]
                for _ in range(4)
            ]
            sockets = [
                await connect(f"{b.ws_url}/terminal/{sid}").__aenter__()
                for b in deployment.backends
                for sid in sids[:2]
            ]
            for ws in sockets:
                assert (await recv_json(ws))["type"] == "connected"
            stop = asyncio.Event()
            seen: list[tuple[int, float]] = []
            urls = [f"{b.url}/api/labs/session/{sid}/validate" for b in deployment.backends for sid in sids]
            loaders = [asyncio.create_task(_load(http, urls, stop, seen)) for _ in range(8)]
            await wait_until(lambda: sum(code == 200 for code, _ in seen) >= 20, "20 answers from a healthy store")

            await asyncio.to_thread(deployment.redis.stop)
            down_at = time.monotonic()
            # Every open socket: an error naming the store, then a clean 1011/1013 close.
            for ws in sockets:
                message = await recv_json(ws, within=10)
                assert message["type"] == "error" and message["code"] == "STORE_UNAVAILABLE"
                code, _ = await close_of(ws)
                assert code in (1011, 1013)
            assert time.monotonic() - down_at < 8.0
            seen.clear()
            # A second of outage, and at least 40 answers in it (each bounded, so this cannot hang).
            await asyncio.sleep(1.0)
            await wait_until(lambda: len(seen) >= 40, "40 answers during the outage")
            outage = list(seen)
            assert {code for code, _ in outage} == {503}
            assert max(elapsed for _, elapsed in outage) < 3.0  # bounded, never a hang

            for backend in deployment.backends:
                health = await http.get(backend.url + "/health")
                assert health.status_code == 200 and health.json()["store"]["state"] == "down"
                ready = await http.get(backend.url + "/health/ready")
                assert ready.status_code == 503 and ready.json()["code"] == "STORE_UNAVAILABLE"
                diag = await http.get(backend.url + "/api/diagnostics/websocket")
                assert diag.status_code == 503 and diag.json()["instance"]["id"] == backend.instance_id
                start = await http.post(backend.url + "/api/labs/start", json=START)
                assert start.status_code == 503 and start.headers["retry-after"] == "1"
                async with connect(f"{backend.ws_url}/terminal/{sids[0]}") as ws:
                    assert (await recv_json(ws))["code"] == "STORE_UNAVAILABLE"
                    assert (await close_of(ws))[0] == 1013
                assert backend.running and process_alive(backend.pid)

            await asyncio.to_thread(deployment.redis.start)
            back_at = time.monotonic()
            recovered: list[float] = []
            for backend in deployment.backends:
                while True:
                    response = await http.post(backend.url + "/api/labs/start", json=START)
                    if response.status_code == 201:
                        recovered.append(time.monotonic() - back_at)
                        break
                    assert response.status_code == 503
                    assert time.monotonic() - back_at < 10, "no recovery"
                    await asyncio.sleep(0.02)
            stop.set()
            await asyncio.gather(*loaders)
            assert max(recovered) < 2.5  # "within about a second" of Redis returning; generous for a busy box
        output = deployment.output()
        assert CANARY not in output and "Traceback" not in output
        assert "event=store_down" in output and "event=store_up" in output


async def test_frozen_redis_answers_503_within_the_operation_bound() -> None:
    with backend_deployment(1) as deployment:
        async with httpx.AsyncClient(timeout=15) as http:
            sid = (await http.post(deployment.a.url + "/api/labs/start", json=START)).json()["sessionId"]
            deployment.redis.freeze()
            try:
                started = time.monotonic()
                response = await http.get(f"{deployment.a.url}/api/labs/session/{sid}/validate")
                assert response.status_code == 503 and response.json()["code"] == "STORE_UNAVAILABLE"
                assert response.json()["valid"] is False
                assert time.monotonic() - started < 5.0  # operation_timeout 1 s, plus a busy machine
            finally:
                deployment.redis.thaw()
            deadline = time.monotonic() + 10
            while (await http.get(f"{deployment.a.url}/api/labs/session/{sid}/validate")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)


async def test_sigterm_closes_sockets_with_1001_and_exits_0() -> None:
    with backend_deployment(2) as deployment:
        async with httpx.AsyncClient() as http:
            sid = (await http.post(deployment.a.url + "/api/labs/start", json=START)).json()["sessionId"]
        victim, survivor = deployment.backends
        sockets = [await connect(f"{victim.ws_url}/terminal/{sid}").__aenter__() for _ in range(3)]
        other = await connect(f"{survivor.ws_url}/terminal/{sid}").__aenter__()
        for ws in [*sockets, other]:
            assert (await recv_json(ws))["type"] == "connected"
        victim.terminate()
        started = time.monotonic()
        codes = await asyncio.gather(*(close_of(ws) for ws in sockets))
        assert codes == [(1001, "Server shutting down")] * 3
        assert await asyncio.to_thread(victim.wait, 15) == 0
        assert time.monotonic() - started < 10
        assert "event=stopped" in victim.output() and "Traceback" not in victim.output()
        # The other instance and its socket are unaffected; the session is still valid there.
        await other.send('{"type":"ping"}')
        assert (await recv_json(other))["type"] == "pong"
        await other.close()
        with pytest.raises(httpx.TransportError):
            await asyncio.to_thread(httpx.get, victim.url + "/health", timeout=2)


def test_serve_refuses_to_start_without_redis_url() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    script = Path(sys.executable).parent / "labsession"
    result = subprocess.run(
        [str(script), "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "REDIS_URL is not set" in lines[0] and "--embedded-redis" in lines[0]


def test_serve_rejects_a_malformed_configuration() -> None:
    env = dict(os.environ, REDIS_URL="redis://127.0.0.1:1/0", ALLOWED_ORIGINS="not an origin")
    script = Path(sys.executable).parent / "labsession"
    result = subprocess.run([str(script), "serve"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "ALLOWED_ORIGINS" in result.stderr and "Traceback" not in result.stderr


def test_embedded_redis_flag_serves_a_demo_and_stops_cleanly() -> None:
    from labsession.embedded.backends import BackendProcess

    # REDIS_URL points nowhere on purpose: --embedded-redis must use its own server instead.
    with BackendProcess("redis://127.0.0.1:1/0", args=["--embedded-redis"]) as backend:
        created = httpx.post(backend.url + "/api/labs/start", json=START)
        assert created.status_code == 201
        assert httpx.get(backend.url + "/api/diagnostics/websocket").json()["sessionCount"] == 1
        backend.terminate()
        assert backend.wait(15) == 0
