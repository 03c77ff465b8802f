"""What a connection checkout costs: redis-py's stock pools against the one labsession uses.

    .venv/bin/python bench/bench_pool.py            # about 20 seconds
    .venv/bin/python bench/bench_pool.py --quick    # a smoke run

In one process, against one embedded Redis (connections are opened once, before timing): the
client CPU of ``get_connection()`` followed by ``release()``, in microseconds per cycle, for

- ``ConnectionPool``: redis-py's plain pool (what ``Redis.from_url`` uses; fails when full);
- ``BlockingConnectionPool``: redis-py's waiting pool (timeout set, as labsession sets it);
- ``labsession``: the pool inside :class:`~labsession.RedisService` (``client.connection_pool``).

Each is timed with one task (nothing to wait for) and with 50 tasks that each hold their
connection across one event-loop turn (a pool of 64: no task waits for a connection, but
the loop is as busy as in the core benchmark). The loop's own cost of that turn is measured
alone and subtracted. Median of interleaved trials. Prints a table and writes
``bench/results/pool.json``.
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
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from labsession import EmbeddedRedis, RedisService, Settings

RESULTS = Path(__file__).resolve().parent / "results" / "pool.json"
TASKS = 50
POOL_SIZE = 64


async def cycles(pool: Any, count: int, tasks: int) -> float:
    """Seconds per checkout + release, ``tasks`` tasks sharing ``count`` cycles."""
    each = count // tasks

    async def worker() -> None:
        for _ in range(each):
            connection = await pool.get_connection()
            if tasks > 1:
                await asyncio.sleep(0)  # hold it across one loop turn, as a command does
            await pool.release(connection)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return (time.perf_counter() - started) / (each * tasks)


async def idle_turns(count: int, tasks: int) -> float:
    """Seconds per loop turn of ``tasks`` tasks doing nothing else (subtracted from the above)."""
    each = count // tasks

    async def worker() -> None:
        for _ in range(each):
            if tasks > 1:
                await asyncio.sleep(0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return (time.perf_counter() - started) / (each * tasks)


async def warm(pool: Any, tasks: int) -> None:
    """Open ``tasks`` connections now, so no timed checkout connects."""
    held = [await pool.get_connection() for _ in range(tasks)]
    for connection in held:
        await pool.release(connection)


async def measure(url: str, count: int, trials: int) -> dict[str, Any]:
    plain = aioredis.ConnectionPool.from_url(url, max_connections=POOL_SIZE)
    blocking = aioredis.BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=5.0)
    async with RedisService(Settings.from_url(url, max_connections=POOL_SIZE)) as service:
        pools = {
            "ConnectionPool": plain,
            "BlockingConnectionPool": blocking,
            "labsession": service.client.connection_pool,
        }
        for pool in pools.values():
            await warm(pool, TASKS)
        samples: dict[str, dict[int, list[float]]] = {name: {1: [], TASKS: []} for name in pools}
        idle: dict[int, list[float]] = {1: [], TASKS: []}
        for _ in range(trials):
            for tasks in (1, TASKS):
                idle[tasks].append(await idle_turns(count, tasks))
                for name, pool in pools.items():
                    samples[name][tasks].append(await cycles(pool, count, tasks))
    await plain.aclose()
    await blocking.aclose()
    out: dict[str, Any] = {}
    for name, by_tasks in samples.items():
        out[name] = {}
        for tasks, values in by_tasks.items():
            floor = statistics.median(idle[tasks])
            out[name][f"{tasks} task" + ("s" if tasks > 1 else "")] = {
                "us_per_checkout": round((statistics.median(values) - floor) * 1e6, 2),
                "trials_us": [round((v - floor) * 1e6, 2) for v in values],
            }
    return out


def table(results: dict[str, Any]) -> str:
    lines = [
        f"connection checkout + release, µs of client CPU — Python {results['machine']['python']}, "
        f"redis-py {results['machine']['redis_py']}",
        "",
    ]
    columns = list(next(iter(results["pools"].values())))
    lines.append(f"{'pool':24}" + "".join(f"{c:>12}" for c in columns))
    for name, row in results["pools"].items():
        lines.append(f"{name:24}" + "".join(f"{row[c]['us_per_checkout']:>12.2f}" for c in columns))
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    count, trials = (10_000, 3) if args.quick else (50_000, 5)
    with EmbeddedRedis() as server:
        pools = await measure(server.url, count, trials)
    return {
        "command": "python bench/bench_pool.py" + (" --quick" if args.quick else ""),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "redis_py": redis.__version__,
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cycles_per_trial": count,
        "pools": pools,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer cycles and trials (smoke test)")
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
