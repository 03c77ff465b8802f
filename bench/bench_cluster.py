"""Session operations on a 3-master Redis Cluster against a single Redis, same machine, same run.

    .venv/bin/python bench/bench_cluster.py                # prints a table, writes bench/results/cluster.json
    .venv/bin/python bench/bench_cluster.py --ops 2000     # a quicker run

Two targets run side by side: an embedded standalone redis-server and an embedded 3-master
cluster of the same binary. In interleaved rounds (noise hits both alike; the best round of
each is kept) it times ``get``, ``validate`` of an unknown id, ``create``, ``extend`` (distinct
sessions) and ``end`` at a fixed concurrency, raw redis-py ``GET`` as the floor, and
``active_ids()`` over 10,000 stored sessions. Throughput is operations per second;
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
from labsession.embedded.redis_cluster import EmbeddedRedisCluster
from labsession.embedded.redis_server import redis_server_version

RESULTS = Path(__file__).resolve().parent / "results" / "cluster.json"


async def measure(operation: Callable[[int], Awaitable[object]], count: int, concurrency: int) -> dict[str, float]:
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


class Target:
    """One store under test: its service, sessions, and the operations to time."""

    def __init__(self, name: str, service: RedisService) -> None:
        self.name = name
        self.service = service
        self.sessions = LabSessionService(service)
        self.ids: list[str] = []

    async def create_many(self, count: int, concurrency: int) -> list[str]:
        made: list[str] = []

        async def create_one(i: int) -> None:
            made.append((await self.sessions.create("bench", "lab", f"p{i}", base_url=BASE)).session_id)

        await measure(create_one, count, concurrency)
        return made

    async def warm(self, i: int) -> None:
        await self.sessions.get(self.ids[i % len(self.ids)])

    async def operations(self, ops: int, concurrency: int) -> dict[str, Callable[[int], Awaitable[object]]]:
        """Fresh inputs for one round of every timed operation."""
        if not self.ids:
            self.ids = await self.create_many(ops, concurrency)
        ids, sessions, client = self.ids, self.sessions, self.service.client
        keys = [sessions.key(sid) for sid in ids]
        missing = [str(uuid.uuid4()) for _ in range(ops)]
        to_end = await self.create_many(ops, concurrency)
        return {
            "raw GET": lambda i: client.get(keys[random.randrange(len(keys))]),
            "get": lambda i: sessions.get(ids[random.randrange(len(ids))]),
            "validate unknown id": lambda i: sessions.validate(missing[i]),
            "create": lambda i: sessions.create("bench", "lab", "p", base_url=BASE),
            "extend": lambda i: sessions.extend(ids[i], 1),
            "end": lambda i: sessions.end(to_end[i]),
        }

    async def list_active(self) -> dict[str, float]:
        started = time.perf_counter()
        await self.sessions.active_ids()
        seconds = time.perf_counter() - started
        return {
            "ops_per_s": round(1 / seconds, 2),
            "p50_ms": round(1000 * seconds, 1),
            "p99_ms": round(1000 * seconds, 1),
        }


BASE = "wss://labs.example"


async def bench(
    urls: dict[str, str], ops: int, concurrency: int, listed: int, rounds: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Interleave the targets round by round (noise hits both alike); keep each one's best round."""
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in urls}
    async with contextlib.AsyncExitStack() as stack:
        targets = []
        for name, url in urls.items():
            service = await stack.enter_async_context(
                RedisService(Settings.from_url(url, max_connections=concurrency * 2))
            )
            targets.append(Target(name, service))
        for target in targets:  # warm-up: connections, cluster slot map, script cache
            target.ids = await target.create_many(ops, concurrency)
            await measure(target.warm, ops, concurrency)
        for _ in range(rounds):
            plans = {t.name: await t.operations(ops, concurrency) for t in targets}
            for operation in plans[targets[0].name]:
                for target in targets:
                    figure = await measure(plans[target.name][operation], ops, concurrency)
                    best = results[target.name].get(operation)
                    if best is None or figure["ops_per_s"] > best["ops_per_s"]:
                        results[target.name][operation] = figure
        for target in targets:
            count = await target.sessions.count()
            await target.create_many(max(1, listed - count), concurrency)
        for _ in range(rounds):
            for target in targets:
                figure = await target.list_active()
                name = f"active_ids ({listed // 1000}k stored)"
                best = results[target.name].get(name)
                if best is None or figure["ops_per_s"] > best["ops_per_s"]:
                    results[target.name][name] = figure
    return results


def machine(binary: Path) -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = ".".join(map(str, redis_server_version(binary) or ("?",)))
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, redis-server {version}"
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=5000, help="operations per measurement (default 5000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent callers (default 32)")
    parser.add_argument("--listed", type=int, default=10_000, help="sessions stored for active_ids (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best is kept (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)

    with EmbeddedRedis() as single, EmbeddedRedisCluster() as cluster:
        both = await bench(
            {"standalone": single.url, "cluster": cluster.url}, args.ops, args.concurrency, args.listed, args.rounds
        )
        binary = single.binary
    standalone, clustered = both["standalone"], both["cluster"]

    rows = []
    print(f"{'operation':<28}{'standalone ops/s':>18}{'cluster ops/s':>15}{'ratio':>8}{'cluster p99 ms':>16}")
    for name, alone in standalone.items():
        spread = clustered[name]
        ratio = round(spread["ops_per_s"] / alone["ops_per_s"], 2)
        rows.append({"operation": name, "standalone": alone, "cluster": spread, "ratio": ratio})
        print(
            f"{name:<28}{alone['ops_per_s']:>18,.1f}{spread['ops_per_s']:>15,.1f}{ratio:>8.2f}{spread['p99_ms']:>16.2f}"
        )
    report: dict[str, Any] = {
        "benchmark": "cluster vs standalone",
        "ratio": "cluster ops/s / standalone ops/s",
        "ops": args.ops,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
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
