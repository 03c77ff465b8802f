"""Benchmarks of the notebooks and ``labsession health``, each against its floor in the same run.

    .venv/bin/python bench/bench_health.py            # full run (about three minutes)
    .venv/bin/python bench/bench_health.py --quick    # 100k keys only, one health trial

1. ``labsession health --embedded`` wall time (a child process, start to exit, as a scheduler
   sees it) against the floor a naive cron job pays: the same number of trivial notebooks
   (one cell, ``x = 1``) run one after another through the ``papermill`` CLI. Interleaved
   trials, median kept: this 2-core machine is shared and noisy. Target: ratio <= 1.0, < 15 s.
2. ``03_ttl_inspection``'s probe (:func:`labsession.probes.inspect_ttls`, GET + TTL of every
   key, JSON parsed and aggregated) on 100k and 1M session keys: wall time and peak RSS of a
   child process, against ``redis-cli --scan --pattern 'session:*' | wc -l`` on the same
   data (which only lists the keys). Targets: within 3 times of it; memory flat in key count.

Prints a table and writes ``bench/results/health.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nbformat
import redis

from labsession import EmbeddedRedis
from labsession.runner.registry import registry

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "health.json"
BIN = Path(sys.executable).parent

_PROBE = """
import asyncio, json, resource, sys, time
from labsession import RedisService, Settings
from labsession.probes import inspect_ttls

async def main():
    async with RedisService(Settings.from_url(sys.argv[1], operation_timeout=60.0)) as redis:
        started = time.perf_counter()
        result = await inspect_ttls(redis, batch_size=1000, limit=None)
        elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "scanned": result.scanned,
                      "maxRssKb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))

asyncio.run(main())
"""


_STATE = tempfile.mkdtemp(prefix="bench-health-state-")


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_STATE_HOME"] = _STATE  # health runs record their history here, never in the user's own
    return env


def time_health() -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "labsession"), "health", "--embedded"], capture_output=True, text=True, env=_child_env(), check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"labsession health failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def time_naive(count: int, workdir: Path) -> float:
    trivial = workdir / "trivial.ipynb"
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, str(trivial))
    started = time.perf_counter()
    for index in range(count):
        subprocess.run(
            [
                str(BIN / "papermill"),
                "-k",
                "python3",
                "--no-progress-bar",
                str(trivial),
                str(workdir / f"out-{index}.ipynb"),
            ],
            capture_output=True,
            check=True,
            env=_child_env(),
        )
    return time.perf_counter() - started


def bench_health(trials: int) -> dict[str, Any]:
    count = len(registry())
    health_times: list[float] = []
    naive_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-health-") as scratch:
        time_health()  # warm the file cache and the kernels' imports once
        for _ in range(trials):
            health_times.append(time_health())
            naive_times.append(time_naive(count, Path(scratch)))
    health = statistics.median(health_times)
    naive = statistics.median(naive_times)
    return {
        "notebooks": count,
        "trials": trials,
        "healthSeconds": round(health, 3),
        "naiveSeconds": round(naive, 3),
        "ratio": round(health / naive, 3),
        "healthAll": [round(t, 3) for t in health_times],
        "naiveAll": [round(t, 3) for t in naive_times],
        "targetRatio": 1.0,
        "targetSeconds": 15.0,
    }


def fill(url: str, keys: int) -> None:
    """``keys`` session records (about 330 bytes of JSON each) with TTLs, via pipelined SETs."""
    client = redis.Redis.from_url(url)
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for index in range(keys):
        sid = str(uuid.UUID(int=index + 1, version=4))
        ttl = 60 + index % 7200
        record = {
            "sessionId": sid,
            "userId": f"user-{index % 5000}",
            "labId": f"lab-{index % 40}",
            "purchaseId": f"p-{index}",
            "startedAt": now,
            "createdAt": now,
            "expiresAt": now + ttl * 1000,
            "status": "active" if index % 10 else "destroyed",
            "terminalPort": 7681,
            "webSocketUrl": f"wss://labs.example.com/terminal/{sid}",
            "sandboxAccount": None,
        }
        pipe.set(f"session:{sid}", json.dumps(record, separators=(",", ":")), ex=ttl if index % 10 else 60)
        if index % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    client.close()


def bench_ttl(server: EmbeddedRedis, keys: int) -> dict[str, Any]:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.close()
    fill(server.url, keys)
    cli = shutil.which("redis-cli")
    floor: dict[str, Any] = {}
    if cli:
        started = time.perf_counter()
        listed = subprocess.run(
            f"{cli} -p {server.port} --scan --pattern 'session:*' | wc -l",
            shell=True,
            capture_output=True,
            text=True,
            check=True,
        )
        floor = {"seconds": round(time.perf_counter() - started, 3), "listed": int(listed.stdout.strip())}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, server.url], capture_output=True, text=True, check=True, env=_child_env()
    )
    probe = json.loads(done.stdout)
    del before
    out: dict[str, Any] = {
        "keys": keys,
        "probeSeconds": round(probe["seconds"], 3),
        "scanned": probe["scanned"],
        "probePeakRssMb": round(probe["maxRssKb"] / 1024, 1),
    }
    if floor:
        out.update(
            redisCliScanSeconds=floor["seconds"],
            redisCliListed=floor["listed"],
            ratio=round(probe["seconds"] / floor["seconds"], 3),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100k keys only and one health trial")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    results["health"] = bench_health(1 if args.quick else 3)
    h = results["health"]
    print(
        f"health --embedded: {h['healthSeconds']:.1f} s for {h['notebooks']} notebooks; naive papermill CLI floor "
        f"{h['naiveSeconds']:.1f} s; ratio {h['ratio']:.2f} (target <= 1.0, < 15 s)",
        flush=True,
    )
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    results["ttlInspection"] = []
    with EmbeddedRedis(startup_timeout=30) as server:
        for keys in sizes:
            row = bench_ttl(server, keys)
            results["ttlInspection"].append(row)
            print(
                f"ttl inspection {keys:>9,} keys: {row['probeSeconds']:.2f} s, peak RSS {row['probePeakRssMb']} MB; "
                f"redis-cli --scan | wc -l {row.get('redisCliScanSeconds', float('nan')):.2f} s; "
                f"ratio {row.get('ratio', float('nan')):.2f} (target <= 3)",
                flush=True,
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
