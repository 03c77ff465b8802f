"""CPU per validate request in one process: our app against the floor app, same Redis, same driver.

    .venv/bin/python bench/bench_validate_cpu.py                      # 7 interleaved rounds of 10,000
    .venv/bin/python bench/bench_validate_cpu.py --requests 5000 --rounds 5

The steady figure on a shared 2-core machine, where bench_backend.py's throughput swings with
other work: no HTTP server and no load client, only the ASGI apps, driven by 50 tasks with
uvicorn's scope for ``GET /api/labs/session/{id}/validate`` (valid ids) against one embedded
Redis. Both sides pay the same redis-py client work and socket calls; what differs is the app:
ours as ``labsession serve`` builds it (access log on, written to memory) against
bench_backend.py's floor (bare Starlette, one ``GET``). Figures: process CPU µs per request
(all threads; median of rounds) and floor ÷ ours (≥ 0.9 is the target's share of the floor),
also as the median of the rounds' own ratios (paired). Nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import logging
import statistics
import sys
import time
from typing import Any

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.backend.app import create_app
from labsession.backend.config import BackendConfig, store_settings
from labsession.backend.state import BackendState

CONCURRENCY = 50


def floor_app(url: str) -> Any:
    """bench_backend.py's floor: bare Starlette whose validate route does one ``GET``."""
    import redis.asyncio as aioredis
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    client = aioredis.Redis.from_url(url, max_connections=64)

    async def validate(request: Request) -> JSONResponse:
        raw = await client.get("session:" + request.path_params["sid"])
        return JSONResponse({"valid": raw is not None}, status_code=200 if raw is not None else 404)

    return Starlette(routes=[Route("/api/labs/session/{sid}/validate", validate)])


def _scope(path: str) -> dict[str, Any]:
    """What uvicorn hands the app for ``GET path`` from the load client (one ``Host`` header)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "state": {},
    }


async def drive(app: Any, paths: list[str], requests: int) -> float:
    """Process CPU seconds for ``requests`` validates by :data:`CONCURRENCY` tasks; every answer must be 200."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def worker(index: int) -> None:
        for k in range(requests // CONCURRENCY):
            await app(_scope(paths[(index + k * CONCURRENCY) % len(paths)]), receive, send)

    started = time.process_time()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    used = time.process_time() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"expected only 200, got {sorted(set(statuses))}")
    return used


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=10_000, help="validates per round and app")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    logging.getLogger("labsession").setLevel(logging.INFO)  # the access log on, as labsession serve has it
    null = io.StringIO()  # the access lines are formatted and written, to memory
    with EmbeddedRedis() as redis:
        async with RedisService(Settings.from_url(redis.url)) as store:
            sessions = LabSessionService(store)
            ids = [(await sessions.create("u", "l", "p", base_url="ws://b")).session_id for _ in range(CONCURRENCY)]
        paths = [f"/api/labs/session/{sid}/validate" for sid in ids]
        state = BackendState(BackendConfig(), RedisService(store_settings({"REDIS_URL": redis.url})))
        if state.log_writer is not None:  # its lines cost what they cost, written nowhere
            state.log_writer = state.access_log = type(state.log_writer)(stream=null)
        apps = {"ours": create_app(state), "floor": floor_app(redis.url)}
        async with state:
            for app in apps.values():
                await drive(app, paths, 2000)  # warm: connections, caches
            gc.freeze()  # as labsession serve does after start-up
            micros: dict[str, list[float]] = {name: [] for name in apps}
            for _ in range(args.rounds):
                for name, app in apps.items():
                    micros[name].append(await drive(app, paths, args.requests) / args.requests * 1e6)
    ours, floor = micros["ours"], micros["floor"]
    for name, values in micros.items():
        rounds = [round(v, 1) for v in values]
        print(f"{name:6} CPU µs per validate: median {statistics.median(values):6.1f}, rounds {rounds}")
    paired = statistics.median(f / o for f, o in zip(floor, ours, strict=True))
    print(f"floor ÷ ours: {statistics.median(floor) / statistics.median(ours):.3f} (paired {paired:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
