"""The reference backend (``labsession serve``) against its floors and its alternatives, same load client, same run.

    .venv/bin/python bench/bench_backend.py              # prints a table, writes bench/results/backend.json
    .venv/bin/python bench/bench_backend.py --seconds 1 --rounds 3  # a quicker run

Granian and uvloop are measured, not dependencies: ``.venv/bin/pip install granian uvloop`` first.

Every server runs side by side on one embedded Redis, and one load client (raw keep-alive
HTTP/1.1 over asyncio streams, the ``websockets`` client) drives each in turn at concurrency 50,
in interleaved rounds (noise hits all alike). Each comparison gives the ratio of the best rounds,
of the median rounds, and the median of the rounds' own ratios ("paired": each pair measured
seconds apart, the steadiest figure when other work on the machine comes and goes).
Throughput is requests (or cycles) per second; latencies
are milliseconds; **CPU** is the server's processes' CPU seconds (user + system, all its
processes and threads) per 10,000 requests or cycles: the figure that holds on a 2-core machine
where the load client competes for the same cores.

Targets (ratio = that ÷ its baseline, same run):

- ``serve``: ``labsession serve`` with its default settings (access log on, level info), the
  server and loop it ships with;
- ``no_access_log``: the same with ``--no-access-log`` (the access log's cost: target ≥ 0.9);
- ``floor``: a bare Starlette app served the same way as ``serve`` (same server, parser and loop,
  no access log) whose validate route does one Redis ``GET`` and whose ``/terminal`` accepts,
  does one ``GET`` and sends one message (targets: validate ≥ 0.9, WebSocket cycle ≥ 0.8);
- ``other_loop``: ``serve`` on the other event loop (asyncio ↔ uvloop), access log on;
- ``granian``: our app under Granian (a Rust HTTP server; its ASGI interface, one worker, the
  same loop as ``serve``), our access log on, Granian's off;
- ``workers2``: ``serve --workers 2``.

Figures: validate of a valid id; validate of an unknown id with 2,000 sessions stored (``serve``
and ``floor``); WebSocket connect + first message + close cycles; invalid-session time until close
4000 (median of rounds), next to its floor: the contract's lookup window (0 + 100 + 200 + 400 ms)
plus the bare app's time to open 50 sockets at once and send the first message; and ``/health``
latency with 1,000 connections that sent one byte of a head, against the same server without
them, with its open file descriptors before, during and after (``HEADER_TIMEOUT``, 5 s, closes them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import websockets

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.backend.config import LOOKUP_DELAYS, BackendConfig
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_server import free_port, redis_server_version

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "backend.json"
CONCURRENCY = 50
#: The TypeScript backend's figures from docs/contract.md (this 2-core machine, concurrency 50).
TYPESCRIPT = {
    "validate_rps": "2,700–4,100",
    "validate_p99_ms": "23–46",
    "unknown_validate_rps": "~600",
    "ws_cycles_per_s": "570–1,170",
    "invalid_to_4000_ms": "~710",
}


# -- the floor: a bare Starlette app, served the same way ------------------------------------------


def serve_baseline(port: int, loop: str) -> None:
    """Run the floor app on ``loop`` until SIGTERM (called in a child process)."""
    import redis.asyncio as aioredis
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    client = aioredis.Redis.from_url(os.environ["REDIS_URL"], max_connections=64)

    async def validate(request: Request) -> JSONResponse:
        raw = await client.get("session:" + request.path_params["sid"])
        return JSONResponse({"valid": raw is not None}, status_code=200 if raw is not None else 404)

    async def terminal(websocket: WebSocket) -> None:
        await websocket.accept()
        raw = await client.get("session:" + websocket.path_params["sid"])
        try:
            await websocket.send_text(json.dumps({"type": "connected" if raw else "error"}))
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass

    app = Starlette(
        routes=[Route("/api/labs/session/{sid}/validate", validate), WebSocketRoute("/terminal/{sid}", terminal)]
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        server_header=False,
        http="httptools",
        lifespan="on",
        loop=loop,
    )
    uvicorn.Server(config).run()


def granian_app() -> Any:
    """Our app for Granian (``--factory``): built from the environment as ``labsession serve`` does."""
    import logging

    from labsession.backend.app import create_app
    from labsession.backend.config import BackendConfig, store_settings
    from labsession.backend.state import BackendState
    from labsession.masking import MaskingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger("labsession").setLevel(logging.INFO)
    return create_app(BackendState(BackendConfig.from_env(), RedisService(store_settings())))


class Baseline:
    """A server process of this benchmark's own: the floor app, or our app under Granian."""

    def __init__(self, redis_url: str, kind: str = "floor", loop: str = "asyncio") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        env = dict(os.environ, REDIS_URL=redis_url, INSTANCE_ID="bench-granian", PYTHONPATH=str(HERE))
        if kind == "floor":
            command = [sys.executable, __file__, "--serve-baseline", str(self.port), loop]
        else:
            command = [
                str(Path(sys.executable).parent / "granian"),
                "--interface",
                "asgi",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--loop",
                loop,
                "--workers",
                "1",
                "--no-access-log",
                "--log-level",
                "warning",
                "bench_backend:granian_app",
            ]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server, closed in stop()
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    async def wait_ready(self) -> None:
        for _ in range(400):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.025)
        raise RuntimeError("baseline did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` and every process below it (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        used[child] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += used.get(current or -1, 0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total / tick


# -- the load client ---------------------------------------------------------------------------


async def http_load(port: int, paths: Callable[[int], str], seconds: float, expect: int) -> dict[str, float]:
    """``CONCURRENCY`` keep-alive connections sending GETs back to back for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = index
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(f"GET {paths(n)} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if status != expect:
                    raise RuntimeError(f"expected {expect}, got {status}")
                latencies.append(time.perf_counter() - started)
                n += CONCURRENCY
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return _figures(latencies, time.perf_counter() - began)


async def ws_cycles(ws_url: str, sid: str, seconds: float) -> dict[str, float]:
    """Connect, read the first message, close; ``CONCURRENCY`` workers for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with websockets.connect(f"{ws_url}/terminal/{sid}", compression=None) as ws:
                first = json.loads(await ws.recv())
                if first["type"] != "connected":
                    raise RuntimeError(first)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return _figures(latencies, time.perf_counter() - began)


async def health_p50(port: int, count: int = 200) -> float:
    """Median milliseconds of ``count`` ``GET /health``, one new connection each, one at a time."""
    times: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        writer.write(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        await asyncio.wait_for(reader.read(), 10)
        times.append(time.perf_counter() - started)
        writer.close()
    return round(1000 * statistics.median(times), 2)


def open_fds(pid: int | None) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def slow_heads(backend: BackendProcess, count: int = 1000) -> dict[str, Any]:
    """``/health`` latency with ``count`` connections that sent one byte of a head and stopped,
    against the same server's without them; and whether its file descriptors come back."""
    quiet = await health_p50(backend.port)
    fds = open_fds(backend.pid)
    held = [await asyncio.wait_for(asyncio.open_connection("127.0.0.1", backend.port), 10) for _ in range(count)]
    for _, writer in held:
        writer.write(b"G")
    loaded = await health_p50(backend.port)
    fds_held = open_fds(backend.pid)
    started = time.monotonic()
    closed = await asyncio.gather(*(asyncio.wait_for(reader.read(), 30) for reader, _ in held), return_exceptions=True)
    waited = time.monotonic() - started
    by_server = sum(1 for c in closed if isinstance(c, bytes) and c[:12] in (b"", b"HTTP/1.1 408"))
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.5)
    return {
        "connections": count,
        "health_p50_ms": loaded,
        "baseline_health_p50_ms": quiet,
        "ratio": round(loaded / quiet, 3),
        "closed_by_server": by_server,
        "seconds_until_closed": round(waited, 2),
        "fds_before": fds,
        "fds_held": fds_held,
        "fds_after": open_fds(backend.pid),
    }


async def first_message_burst(ws_url: str, sid: str) -> float:
    """``CONCURRENCY`` sockets opened at once: median time from connect to the first message, ms."""
    times: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        async with websockets.connect(f"{ws_url}/terminal/{sid}", compression=None) as ws:
            await ws.recv()
            times.append(time.perf_counter() - started)

    await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
    return 1000 * statistics.median(times)


async def invalid_to_4000(ws_url: str) -> dict[str, float]:
    """``CONCURRENCY`` sockets to unknown sessions at once: time from connect to close 4000."""
    times: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        async with websockets.connect(f"{ws_url}/terminal/{uuid.uuid4()}", compression=None) as ws:
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as closed:
                if closed.rcvd is None or closed.rcvd.code != 4000:
                    raise RuntimeError(f"closed with {closed.rcvd}") from None
        times.append(time.perf_counter() - started)

    await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
    times.sort()
    return {"p50_ms": round(1000 * statistics.median(times), 1), "max_ms": round(1000 * times[-1], 1)}


def _figures(latencies: list[float], elapsed: float) -> dict[str, float]:
    latencies.sort()
    return {
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "count": len(latencies),
    }


Run = Callable[[], Awaitable[dict[str, float]]]


async def best_of(rounds: int, runs: dict[str, tuple[int | None, Run]]) -> dict[str, Any]:
    """Interleave the targets ``rounds`` times; keep each one's best round (highest ``per_s``),
    its rounds' throughputs and its CPU seconds per 10,000 (median of rounds). ``runs``: name ->
    (pid of the server's top process, one round)."""
    best: dict[str, dict[str, float]] = {}
    trials: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (pid, run) in runs.items():
            before = cpu_seconds(pid)
            figures = await run()
            cpu[name].append(round((cpu_seconds(pid) - before) / max(1, figures["count"]) * 10_000, 3))
            trials[name].append(figures["per_s"])
            if name not in best or figures["per_s"] > best[name]["per_s"]:
                best[name] = figures
    return {
        name: {
            **best[name],
            "median_per_s": statistics.median(trials[name]),
            "trials": trials[name],
            "cpu_s_per_10k": statistics.median(cpu[name]),
            "cpu_trials": cpu[name],
        }
        for name in runs
    }


def compare(block: dict[str, Any], ours: str, base: str) -> dict[str, float]:
    """``ours`` against ``base`` in one block: best-round and median-round throughput ratios, the
    median of the rounds' own ratios (each pair measured seconds apart: the steadiest on a machine
    whose load drifts), and the same for CPU seconds per 10,000 (lower is better)."""
    a, b = block[ours], block[base]
    return {
        "ratio": round(a["per_s"] / b["per_s"], 3),
        "median_ratio": round(statistics.median(a["trials"]) / statistics.median(b["trials"]), 3),
        "paired_ratio": round(statistics.median(x / y for x, y in zip(a["trials"], b["trials"], strict=True)), 3),
        "cpu_ratio": round(a["cpu_s_per_10k"] / b["cpu_s_per_10k"], 3),
        "paired_cpu_ratio": round(
            statistics.median(x / y for x, y in zip(a["cpu_trials"], b["cpu_trials"], strict=True)), 3
        ),
    }


# -- main --------------------------------------------------------------------------------------


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round, seconds")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/backend.json alone")
    args = parser.parse_args(argv)

    missing = [name for name in ("granian", "uvloop") if importlib.util.find_spec(name) is None]
    if missing:  # measured against, not dependencies of labsession
        print(f"bench_backend compares servers: .venv/bin/pip install {' '.join(missing)}", file=sys.stderr)
        return 2
    loop = BackendConfig().loop  # what labsession serve runs on by default; the floor runs on it too
    other = "asyncio" if loop == "uvloop" else "uvloop"
    with EmbeddedRedis() as redis, contextlib.ExitStack() as stack:
        floor = Baseline(redis.url, "floor", loop)
        stack.callback(floor.stop)
        granian = Baseline(redis.url, "granian", loop)
        stack.callback(granian.stop)
        servers = {
            "serve": BackendProcess(redis.url, instance_id="bench"),
            "no_access_log": BackendProcess(redis.url, instance_id="bench-quiet", args=["--no-access-log"]),
            "other_loop": BackendProcess(redis.url, instance_id="bench-other", args=["--loop", other]),
            "workers2": BackendProcess(redis.url, instance_id="bench-w", workers=2),
        }
        for server in servers.values():
            stack.callback(server.close)
            await asyncio.to_thread(server.start)
        await floor.wait_ready()
        await granian.wait_ready()
        async with RedisService(Settings.from_url(redis.url)) as store:
            sessions = LabSessionService(store)
            valid = [
                (await sessions.create("u", "l", "p", base_url="ws://bench")).session_id for _ in range(CONCURRENCY)
            ]
            for _ in range(2000 - CONCURRENCY):
                await sessions.create("u", "l", "p", base_url="ws://bench")
            stored = await sessions.count()
        unknown = [str(uuid.uuid4()) for _ in range(1000)]

        def valid_path(n: int) -> str:
            return f"/api/labs/session/{valid[n % len(valid)]}/validate"

        def unknown_path(n: int) -> str:
            return f"/api/labs/session/{unknown[n % len(unknown)]}/validate"

        targets: dict[str, tuple[int | None, int, str]] = {  # name -> (pid, port, ws url)
            **{name: (p.pid, p.port, p.ws_url) for name, p in servers.items()},
            "floor": (floor.pid, floor.port, floor.ws_url),
            "granian": (granian.pid, granian.port, granian.ws_url),
        }

        def http_runs(names: list[str], path: Callable[[int], str], expect: int) -> dict[str, tuple[int | None, Run]]:
            return {
                name: (targets[name][0], functools.partial(http_load, targets[name][1], path, s, expect))
                for name in names
            }

        s, r = args.seconds, args.rounds
        everyone = ["serve", "floor", "no_access_log", "other_loop", "granian", "workers2"]
        validate = await best_of(r, http_runs(everyone, valid_path, 200))
        unknown_validate = await best_of(r, http_runs(["serve", "floor"], unknown_path, 404))
        ws = await best_of(
            r,
            {
                name: (targets[name][0], functools.partial(ws_cycles, targets[name][2], valid[0], s))
                for name in everyone
            },
        )
        # Time to 4000 = the contract's lookup window + getting 50 sockets open at once. The
        # floor for it: the bare app's connect-to-first-message burst plus that window.
        window_ms = round(1000 * sum(LOOKUP_DELAYS), 1)
        rounds = [await invalid_to_4000(servers["serve"].ws_url) for _ in range(r)]
        floor_burst = [await first_message_burst(floor.ws_url, valid[0]) for _ in range(r)]
        invalid = {
            "p50_ms": round(statistics.median(x["p50_ms"] for x in rounds), 1),
            "max_ms": max(x["max_ms"] for x in rounds),
            "trials_p50_ms": [x["p50_ms"] for x in rounds],
            "window_ms": window_ms,
            "floor_p50_ms": round(window_ms + statistics.median(floor_burst), 1),
            "floor_burst_trials_ms": [round(x, 1) for x in floor_burst],
        }
        slow = await slow_heads(servers["no_access_log"])
        access_lines = servers["serve"].output().count("event=http")
        granian_lines = granian.output().count("event=http")

    def block(figures: dict[str, Any]) -> dict[str, Any]:
        """The summary's shape (``labsession`` and ``floor`` with their ratios) plus every other target."""
        out = {"labsession": figures["serve"], **{k: v for k, v in figures.items() if k != "serve"}}
        return {**out, **compare(figures, "serve", "floor")}

    result = {
        "command": "python bench/bench_backend.py"
        + (f" --seconds {args.seconds}" if args.seconds != 2.0 else "")
        + (f" --rounds {args.rounds}" if args.rounds != 9 else ""),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "redis": ".".join(map(str, redis_server_version(redis.binary) or ())),
            "platform": platform.platform(),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "concurrency": CONCURRENCY,
        "sessions_stored": stored,
        "serve_loop": loop,
        "validate": block(validate),
        "validate_unknown_2000_stored": block(unknown_validate),
        "websocket_cycle": block(ws),
        "invalid_session_to_4000": invalid,
        "slow_heads": slow,
        "access_log": {
            "validate": compare(validate, "serve", "no_access_log"),
            "websocket_cycle": compare(ws, "serve", "no_access_log"),
            "lines_written_by_serve": access_lines,
            "lines_written_under_granian": granian_lines,
        },
        "servers": {  # each against labsession serve as shipped, all with our access log on
            f"uvicorn_httptools_{other}": {
                "validate": compare(validate, "other_loop", "serve"),
                "websocket_cycle": compare(ws, "other_loop", "serve"),
            },
            f"granian_{loop}": {
                "validate": compare(validate, "granian", "serve"),
                "websocket_cycle": compare(ws, "granian", "serve"),
            },
        },
        "workers2": {
            "validate": compare(validate, "workers2", "serve"),
            "websocket_cycle": compare(ws, "workers2", "serve"),
        },
        "typescript": TYPESCRIPT,
    }
    print(json.dumps(result, indent=1))
    print(table(result), file=sys.stderr)
    if not args.no_write:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def table(result: dict[str, Any]) -> str:
    """The figures as a plain table: throughput, CPU per 10k and ratios against ``serve``."""
    lines = [
        f"{'target':<15}{'validate/s':>12}{'median':>9}{'cpu/10k':>9}{'p99 ms':>8}"
        f"{'ws cycles/s':>13}{'median':>9}{'cpu/10k':>9}"
    ]
    for name in ("labsession", "no_access_log", "floor", "other_loop", "granian", "workers2"):
        v, w = result["validate"][name], result["websocket_cycle"][name]
        lines.append(
            f"{name:<15}{v['per_s']:>12,.0f}{v['median_per_s']:>9,.0f}{v['cpu_s_per_10k']:>9.3f}"
            f"{v['p99_ms']:>8.1f}{w['per_s']:>13,.0f}{w['median_per_s']:>9,.0f}{w['cpu_s_per_10k']:>9.3f}"
        )
    for key in ("validate", "validate_unknown_2000_stored", "websocket_cycle"):
        b = result[key]
        lines.append(
            f"{key} vs floor: best {b['ratio']}, median {b['median_ratio']}, paired {b['paired_ratio']}, "
            f"cpu {b['cpu_ratio']} (paired {b['paired_cpu_ratio']})"
        )
    for key, value in result["access_log"].items():
        lines.append(f"access log on vs off, {key}: {value}")
    lines.append(f"slow heads: {result['slow_heads']}")
    for name, value in {**result["servers"], "workers2": result["workers2"]}.items():
        lines.append(f"{name} vs serve: {value}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-baseline":
        serve_baseline(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    sys.exit(asyncio.run(main()))
