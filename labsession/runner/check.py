"""``labsession check``: the library's connection and session-lifecycle checks, no notebooks.

Against ``REDIS_URL`` it is read-only unless ``--write`` is given; with ``--embedded`` it
starts its own Redis and exercises a whole session life on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

from ..checks import Report, Status, exit_code
from ..embedded.redis_server import EmbeddedRedis
from ..errors import LabSessionError, RedisUnavailable
from ..sessions.eviction import judge_eviction
from ..sessions.service import LabSessionService, ValidationReason
from ..settings import Settings
from ..store.service import RedisService

__all__ = ["check", "connection_checks", "lifecycle_checks", "run_checks"]


async def connection_checks(redis: RedisService, report: Report) -> None:
    """PING and server facts, as PASS/WARN checks on ``report``."""
    health = await redis.health()
    report.check("ping", Status.PASS, f"PING answered in {health.ping_ms:.1f} ms", ping_ms=round(health.ping_ms, 3))
    version, mode = health.version or "unknown version", health.mode or "mode unknown"
    report.check("server", Status.PASS, f"Redis {version} ({mode})")
    judged = judge_eviction(health.maxmemory_policy, health.evicted_keys, health.maxmemory)
    report.check("eviction policy", judged.policy_status, judged.policy_evidence)
    report.check("evictions", judged.evictions_status, judged.evictions_evidence)


async def lifecycle_checks(sessions: LabSessionService, report: Report) -> None:
    """Create, validate, extend, end and re-validate one probe session; always cleaned up."""
    created = await sessions.create(
        "labsession-probe", "probe", "probe", base_url="ws://probe.invalid", extra={"probe": True}
    )
    sid = created.session_id
    try:
        ttl = await sessions.redis.client.ttl(sessions.key(sid))
        want = sessions.settings.session_ttl_seconds
        ok = want - 2 <= int(ttl) <= want
        report.check(
            "create", Status.PASS if ok else Status.FAIL, f"created a probe session with TTL {ttl} s (want {want})"
        )
        result = await sessions.validate(sid)
        report.check("validate", Status.PASS if result.valid else Status.FAIL, f"validate says {result.reason.value}")
        extended = await sessions.extend(sid, 5)
        grew = extended.expires_at - created.expires_at == 5 * 60_000
        report.check(
            "extend",
            Status.PASS if grew else Status.FAIL,
            "extend added exactly 5 minutes"
            if grew
            else f"extend moved expiresAt by {extended.expires_at - created.expires_at} ms",
        )
        await sessions.end(sid)
        after = await sessions.validate(sid)
        ended = after.reason is ValidationReason.ENDED
        report.check("end", Status.PASS if ended else Status.FAIL, f"after end, validate says {after.reason.value}")
    finally:
        with contextlib.suppress(LabSessionError):
            await sessions.redis.client.delete(sessions.key(sid))


async def run_checks(settings: Settings, *, write: bool) -> Report:
    report = Report("labsession check", facts={"endpoint": settings.endpoint, "tls": settings.tls})
    try:
        async with RedisService(settings) as redis:
            await connection_checks(redis, report)
            if write:
                await lifecycle_checks(LabSessionService(redis, settings), report)
            else:
                report.check("lifecycle", Status.SKIP, "read-only run: no probe session written (use --write)")
    except RedisUnavailable as exc:
        report.check("connect", Status.FAIL, str(exc), cause=exc.cause.value)
    return report


@contextlib.asynccontextmanager
async def _target(embedded: bool, redis_url_env: str, write: bool) -> AsyncIterator[tuple[Settings, bool]]:
    if embedded:
        async with EmbeddedRedis() as server:
            yield Settings.from_url(server.url), True
    else:
        env = dict(os.environ)
        if redis_url_env != "REDIS_URL":
            env["REDIS_URL"] = os.environ.get(redis_url_env, "")
        yield Settings.from_env(env), write


def check(*, embedded: bool, redis_url_env: str = "REDIS_URL", write: bool = False) -> int:
    """Run the checks against an embedded Redis or the one ``$redis_url_env`` names, print them;
    return the exit code. Read-only unless ``write`` (always writes on an embedded Redis)."""

    async def main() -> Report:
        async with _target(embedded, redis_url_env, write) as (settings, writes):
            return await run_checks(settings, write=writes)

    report = asyncio.run(main())
    print(report.table())
    sys.stdout.flush()
    return exit_code(report.verdict)
