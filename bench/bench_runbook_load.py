"""The load each runbook puts on Redis: commands sent against 100,000 session keys, and wall time.

    .venv/bin/python bench/bench_runbook_load.py              # 100,000 keys
    .venv/bin/python bench/bench_runbook_load.py --keys 10000

Fills an embedded Redis with session keys as the TypeScript backend writes them (``session:<uuid>``,
the session JSON with a sandbox account, a TTL), then runs each runbook's diagnosis read-only, as
``labsession runbook NAME`` does against a real target, and counts the commands the server executed
from ``INFO commandstats`` before and after (the counting's own INFO call is subtracted). The
notebook around a runbook adds its own connection (a PING and the CLIENT calls a connection sets
itself up with). Prints a table and writes ``bench/results/runbook_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis

from labsession import EmbeddedRedis, Settings
from labsession.embedded.backends import BackendProcess
from labsession.runbooks import (
    InvalidSessionInputs,
    LatencyMemoryInputs,
    TerminalDisconnectsInputs,
    diagnose_invalid_session,
    diagnose_redis_connectivity,
    diagnose_redis_latency_memory,
    diagnose_terminal_disconnects,
)
from labsession.runbooks.base import Diagnosis
from labsession.sessions.model import LabSession

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "runbook_load.json"

Run = Callable[[Settings], Awaitable[Diagnosis]]


def fill(client: redis.Redis, keys: int) -> str:
    """``keys`` sessions in the stored format, each with a 2-hour TTL; returns one of their ids."""
    now = int(time.time() * 1000)
    some_id = ""
    for start in range(0, keys, 5000):
        pipe = client.pipeline(transaction=False)
        for _ in range(start, min(keys, start + 5000)):
            some_id = str(uuid.uuid4())
            session = LabSession(
                some_id,
                "user-42",
                "lab-aws-101",
                "pur_9XkQ",
                now,
                now,
                now + 7_200_000,
                terminal_port=7681,
                web_socket_url=f"wss://labs.example.com/terminal/{some_id}",
                sandbox_account={"accountId": "123456789012", "region": "us-east-1", "status": "ACTIVE"},
            )
            pipe.set(f"session:{some_id}", session.to_json(), ex=7200)
        pipe.execute()
    return some_id


def runs(session_id: str, backend_url: str) -> list[tuple[str, Run]]:
    """Each runbook as ``labsession runbook`` runs it read-only against a real target."""
    out: list[tuple[str, Run]] = [
        ("redis_connectivity", lambda s: diagnose_redis_connectivity(s)),
        ("invalid_session (no session id)", lambda s: diagnose_invalid_session(s, InvalidSessionInputs())),
        (
            "invalid_session (a session id)",
            lambda s: diagnose_invalid_session(s, InvalidSessionInputs(session_id=session_id)),
        ),
        ("redis_latency_memory", lambda s: diagnose_redis_latency_memory(s, LatencyMemoryInputs())),
        (
            "redis_latency_memory (read_only=False)",
            lambda s: diagnose_redis_latency_memory(s, LatencyMemoryInputs(admin_commands=True)),
        ),
    ]
    out.extend(backend_runs(session_id, backend_url))
    return out


def backend_runs(session_id: str, backend_url: str) -> list[tuple[str, Run]]:
    """Runbooks that go through a backend: what reaches Redis is theirs plus the backend's own lookups."""
    short = TerminalDisconnectsInputs(
        session_id=session_id, backend_urls=(backend_url,), ping_seconds=5, ping_every_seconds=1, idle_seconds=5
    )
    return [("terminal_disconnects (5 s holds, 1 s pings)", lambda s: diagnose_terminal_disconnects(s, short))]


def calls(client: redis.Redis) -> Counter[str]:
    stats: dict[str, Any] = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()})


async def measure(url: str, run: Run, counter: redis.Redis) -> tuple[Counter[str], float, str]:
    before = calls(counter)
    started = time.perf_counter()
    diagnosis = await run(Settings.from_url(url))
    elapsed = time.perf_counter() - started
    delta = calls(counter) - before
    delta["info"] -= 1  # the "before" INFO itself, counted in the "after" one
    return +delta, elapsed, diagnosis.cause


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="session keys to fill the store with")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with EmbeddedRedis() as server, BackendProcess(server.url, instance_id="bench") as backend:
        counter = redis.Redis.from_url(server.url)
        session_id = fill(counter, args.keys)
        for name, run in runs(session_id, backend.url):
            delta, elapsed, cause = asyncio.run(measure(server.url, run, counter))
            rows.append(
                {
                    "runbook": name,
                    "commands": sum(delta.values()),
                    "by_command": dict(delta.most_common()),
                    "seconds": round(elapsed, 2),
                    "cause": cause,
                }
            )
        counter.close()
    print(f"{args.keys:,} session keys; commands the server executed per read-only run\n")
    print("| runbook | commands | of which | wall time, s | cause |\n|---|---:|---|---:|---|")
    for row in rows:
        top = ", ".join(f"{k} {v}" for k, v in list(row["by_command"].items())[:6])
        print(f"| {row['runbook']} | {row['commands']:,} | {top} | {row['seconds']:.2f} | {row['cause']} |")
    RESULTS.write_text(json.dumps({"keys": args.keys, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
