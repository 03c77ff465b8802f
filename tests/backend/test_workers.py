"""``labsession serve --workers N``: N worker processes on one port (SO_REUSEPORT), each a whole backend.

Readiness per worker, a graceful stop of every worker on SIGTERM (exit 0), a dead worker
replaced, workers that outlive a killed supervisor stopping by themselves, and a port in use
refused at once. The contract tests run against a multi-worker server in test_multi_instance.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from labsession import EmbeddedRedis
from labsession.backend.errors import BackendError
from labsession.embedded.backends import BackendProcess

from support import MS
from support.backend_procs import GOOD_ORIGIN, close_of, connect, process_alive, recv_json

pytestmark = pytest.mark.timeout(120)

START = {"userId": "u", "labId": "l", "purchaseId": "p"}
WORKERS = 3


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with EmbeddedRedis() as redis:
        yield redis.url


def start_server(redis_url: str, workers: int = WORKERS, **kwargs: object) -> BackendProcess:
    return BackendProcess(
        redis_url, allowed_origins=(GOOD_ORIGIN,), instance_id="multi", workers=workers, **kwargs
    ).start()  # type: ignore[arg-type]


def worker_pids(backend: BackendProcess) -> dict[int, int]:
    """worker index -> pid of its latest start, from the supervisor's log."""
    pids: dict[int, int] = {}
    for index, pid in re.findall(r"event=worker_started worker=(\d+) pid=(\d+)", backend.output()):
        pids[int(index)] = int(pid)
    return pids


def wait_until(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within * 1000 * MS
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_every_worker_is_ready_and_serves_with_its_own_name(redis_url: str) -> None:
    backend = start_server(redis_url)
    try:
        seen: dict[str, set[str]] = {}
        with httpx.Client(timeout=10) as http:
            sid = http.post(backend.url + "/api/labs/start", json=START).json()["sessionId"]
            for _ in range(60):  # new connections each: spread over the workers
                response = httpx.get(backend.url + "/health/ready", timeout=10)
                assert response.status_code == 200
                rid = response.headers["x-request-id"]
                seen.setdefault(response.json()["instanceId"], set()).add(rid[:6])
                valid = httpx.get(f"{backend.url}/api/labs/session/{sid}/validate", timeout=10)
                assert valid.status_code == 200 and valid.json()["valid"] is True
        assert set(seen) == {f"multi-w{k}" for k in range(1, WORKERS + 1)}
        with redis.Redis.from_url(redis_url) as client:
            names = {c["name"] for c in client.client_list() if c["name"].startswith("labsession-")}
        # each worker's connections are its own in CLIENT LIST, not all under the supervisor's pid
        assert {name.rpartition("-")[2] for name in names} == {f"w{k}" for k in range(1, WORKERS + 1)}, names
        prefixes = [prefix for prefixes in seen.values() for prefix in prefixes]
        assert len(prefixes) == len(set(prefixes)) == WORKERS  # request ids never collide across workers
        output = backend.output()
        assert output.count("event=worker_ready") == WORKERS and f"event=ready workers={WORKERS}" in output
    finally:
        backend.close()


async def test_sigterm_stops_every_worker_gracefully(redis_url: str) -> None:
    backend = start_server(redis_url)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            sid = (await http.post(backend.url + "/api/labs/start", json=START)).json()["sessionId"]
        sockets, holders = [], set()
        for _ in range(40):  # until sockets are open on at least two workers
            ws = await connect(f"{backend.ws_url}/terminal/{sid}").__aenter__()
            holders.add((await recv_json(ws))["instanceId"])
            sockets.append(ws)
            if len(holders) >= 2 and len(sockets) >= 6:
                break
        assert len(holders) >= 2
        backend.terminate()
        codes = await asyncio.gather(*(close_of(ws) for ws in sockets))
        assert set(codes) == {(1001, "Server shutting down")}
        assert await asyncio.to_thread(backend.wait, 30) == 0
        output = backend.output()
        assert output.count("event=stopped instance=multi-w") == WORKERS
        assert f"event=stopped workers={WORKERS} code=0" in output and "Traceback" not in output
        assert not any(process_alive(pid) for pid in worker_pids(backend).values())
    finally:
        backend.close()


def test_a_killed_worker_is_replaced_and_the_port_keeps_serving(redis_url: str) -> None:
    backend = start_server(redis_url, workers=2)
    try:
        victim = worker_pids(backend)[1]
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: (
                worker_pids(backend)[1] != victim
                and f"event=worker_ready worker=1 pid={worker_pids(backend)[1]}" in backend.output()
            ),
            20,
            "worker 1 was not replaced",
        )
        assert "event=worker_exited worker=1" in backend.output()
        names = {httpx.get(backend.url + "/health", timeout=10).json()["instanceId"] for _ in range(40)}
        assert names == {"multi-w1", "multi-w2"}
        backend.terminate()
        assert backend.wait(30) == 0
    finally:
        backend.close()


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(redis_url: str) -> None:
    backend = start_server(redis_url, workers=2)
    try:
        pids = list(worker_pids(backend).values())
        assert all(process_alive(pid) for pid in pids)
        backend.kill()
        wait_until(lambda: not any(process_alive(pid) for pid in pids), 20, "orphaned workers kept running")
        assert "event=supervisor_gone" in backend.output()
    finally:
        backend.close()


def test_a_port_in_use_is_refused_at_once(redis_url: str) -> None:
    first = start_server(redis_url, workers=2)
    try:
        script = Path(sys.executable).parent / "labsession"
        result = subprocess.run(
            [str(script), "serve", "--port", str(first.port), "--workers", "2"],
            env=dict(os.environ, REDIS_URL=redis_url),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 1
        assert "cannot listen" in result.stderr and "Traceback" not in result.stderr
        assert "event=worker_started" not in result.stderr  # refused before any worker was made
        assert httpx.get(first.url + "/health", timeout=10).status_code == 200
    finally:
        first.close()


def test_bad_worker_counts_are_refused(redis_url: str) -> None:
    for value in ("0", "lots"):
        bad = BackendProcess(redis_url, env={"WORKERS": value}, startup_timeout=20)
        with pytest.raises(BackendError, match=r"WORKERS|--workers"):
            bad.start()
        bad.close()
