"""Session operations on a 3-master Redis Cluster against a single Redis, same machine, same run.

    .venv/bin/python bench/bench_cluster.py                # prints a table, writes bench/results/cluster.json
    .venv/bin/python bench/bench_cluster.py --ops 2000     # a quicker run

For each target (an embedded standalone redis-server, then an embedded 3-master cluster of
the same binary) it measures ``get``, ``validate`` of an unknown id, ``create``, ``extend``
(distinct sessions) and ``end`` at a fixed concurrency, plus raw redis-py ``GET`` as the
floor, and ``active_ids()`` over 10,000 stored sessions. Throughput is operations per second;
latencies are milliseconds. The ratio is cluster / standalone (1.0 = as fast as one Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.embedded import redis_server_version
from labsession.embedded_cluster import EmbeddedRedisCluster

RESULTS = Path(__file__).resolve().parent / "results" / "cluster.json"


async def measure(
    operation: Callable[[int], Awaitable[object]], count: int, concurrency: int
) -> dict[str, float]:
    """Run ``operation(i)`` for i in 0..count-1 with ``concurrency`` workers: ops/s, p50, p99 (ms)."""
    latencies: list[float] = []
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            started = time.perf_counter()
            await operation(i)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "ops_per_s": round(count / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 3),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
    }


async def bench_target(url: str, ops: int, concurrency: int, listed: int) -> dict[str, dict[str, float]]:
    settings = Settings.from_url(url, max_connections=concurrency * 2)
    results: dict[str, dict[str, float]] = {}
    async with RedisService(settings) as service:
        sessions = LabSessionService(service)
        base = "wss://labs.example"
        ids: list[str] = []

        async def create_one(i: int) -> None:
            ids.append((await sessions.create("bench", "lab", f"p{i}", base_url=base)).session_id)

        await measure(create_one, ops, concurrency)
        keys = [sessions.key(sid) for sid in ids]
        client = service.client
        await measure(lambda i: sessions.get(ids[i % len(ids)]), min(ops, 500), concurrency)  # warm-up
        results["raw GET"] = await measure(lambda i: client.get(keys[random.randrange(len(keys))]), ops, concurrency)
        results["get"] = await measure(lambda i: sessions.get(ids[random.randrange(len(ids))]), ops, concurrency)
        missing = [str(uuid.uuid4()) for _ in range(ops)]
        results["validate unknown id"] = await measure(lambda i: sessions.validate(missing[i]), ops, concurrency)
        results["create"] = await measure(
            lambda i: sessions.create("bench", "lab", "p", base_url=base), ops, concurrency
        )
        results["extend"] = await measure(lambda i: sessions.extend(ids[i], 1), ops, concurrency)
        results["end"] = await measure(lambda i: sessions.end(ids[i]), ops, concurrency)
        await measure(lambda i: sessions.create("bench", "lab", "p", base_url=base), max(1, listed - 2 * ops),
                      concurrency)
        stored = await sessions.count()
        started = time.perf_counter()
        active = await sessions.active_ids()
        seconds = time.perf_counter() - started
        results[f"active_ids ({stored} stored)"] = {
            "ops_per_s": round(1 / seconds, 2), "p50_ms": round(1000 * seconds, 1), "p99_ms": round(1000 * seconds, 1),
        }
        assert len(active) == stored - ops  # the ended ones are not active
    return results


def machine(binary: Path) -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = ".".join(map(str, redis_server_version(binary) or ("?",)))
    return (f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, redis-server {version}")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=5000, help="operations per measurement (default 5000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent callers (default 32)")
    parser.add_argument("--listed", type=int, default=10_000, help="sessions stored for active_ids (default 10000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)

    with EmbeddedRedis() as single:
        standalone = await bench_target(single.url, args.ops, args.concurrency, args.listed)
        binary = single.binary
    with EmbeddedRedisCluster() as cluster:
        clustered = await bench_target(cluster.url, args.ops, args.concurrency, args.listed)

    rows = []
    print(f"{'operation':<28}{'standalone ops/s':>18}{'cluster ops/s':>15}{'ratio':>8}{'cluster p99 ms':>16}")
    for name, alone in standalone.items():
        spread = clustered[name]
        ratio = round(spread["ops_per_s"] / alone["ops_per_s"], 2)
        rows.append({"operation": name, "standalone": alone, "cluster": spread, "ratio": ratio})
        print(f"{name:<28}{alone['ops_per_s']:>18,.1f}{spread['ops_per_s']:>15,.1f}{ratio:>8.2f}"
              f"{spread['p99_ms']:>16.2f}")
    report: dict[str, Any] = {
        "benchmark": "cluster vs standalone",
        "ratio": "cluster ops/s / standalone ops/s",
        "ops": args.ops,
        "concurrency": args.concurrency,
        "masters": 3,
        "rows": rows,
        "command": "python bench/bench_cluster.py" + (f" --ops {args.ops}" if args.ops != 5000 else ""),
        "machine": machine(binary),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
