"""Did a backend instance start while the runbook watched? Judged from the instances' uptime.

Each backend URL's diagnostics route is asked a few times before and after a run (behind a load
balancer each answer may come from another instance). The reference backend reports its
instance id and ``uptimeSeconds``; an instance whose start (the time of the answer minus its
uptime) falls after the run began was started during it: a restart, a crash and restart, a
deploy or a scale-out. A changed instance id alone proves nothing behind a load balancer (another
instance may just have answered), so only the uptime decides. The TypeScript backend reports
neither, so the step is a SKIP that says where else to look.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..checks import CheckResult, Status
from ..probes.backend import BackendClient

__all__ = ["UptimeSample", "judge_restarts", "sample_uptimes"]

#: Seconds an instance's computed start may fall after the run began before it counts as started
#: during the run (rounding of the reported uptime, clock reading order).
START_TOLERANCE_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class UptimeSample:
    """One diagnostics answer: ``at`` (``time.monotonic()`` when the request was sent), the instance id
    and its uptime in seconds (each ``None`` when not reported), or ``error`` when the request failed.

    The uptime was taken after ``at``, so ``at - uptime`` is never later than the real start: a slow
    answer cannot make an old instance look new."""

    url: str
    at: float
    instance: str | None
    uptime_s: float | None
    error: str | None = None

    @property
    def started_at(self) -> float | None:
        """When the instance started, on the ``time.monotonic()`` clock (``None`` without an uptime)."""
        return None if self.uptime_s is None else self.at - self.uptime_s


async def sample_uptimes(
    urls: Sequence[str], *, samples_per_url: int = 2, http_timeout: float = 5.0, retry_for: float = 0.0
) -> list[UptimeSample]:
    """Ask each URL's diagnostics route ``samples_per_url`` times (each on a new connection, bounded
    by ``http_timeout`` s). A URL that does not answer is asked again every 0.25 s for up to
    ``retry_for`` s, so an instance that is restarting is seen once it is back."""

    async def per_url(url: str) -> list[UptimeSample]:
        out: list[UptimeSample] = []
        give_up = time.monotonic() + retry_for
        while len(out) < samples_per_url:
            async with BackendClient(url, timeout=http_timeout) as client:
                sent = time.monotonic()
                answer, diag = await client.diagnostics(count=False)
            if diag is None or answer.status is None:
                if time.monotonic() < give_up:
                    await asyncio.sleep(0.25)
                    continue
                out.append(UptimeSample(url, sent, None, None, answer.error or f"HTTP {answer.status}"))
                continue
            out.append(UptimeSample(url, sent, diag.instance_id, diag.uptime_seconds))
        return out

    batches = await asyncio.gather(*(per_url(u) for u in urls))
    return [sample for batch in batches for sample in batch]


def judge_restarts(before: list[UptimeSample], after: list[UptimeSample], began: float) -> tuple[CheckResult, bool]:
    """The ``instances`` step: whether an instance started after ``began`` (``time.monotonic()`` once
    the ``before`` samples were in: every instance that answered them had started by then); the
    bool says one did."""
    answered = [s for s in (*before, *after) if s.error is None]
    uptimes = {s.instance or "?": round(s.uptime_s, 1) for s in answered if s.uptime_s is not None}
    ids_before = sorted({s.instance or "?" for s in before if s.error is None})
    data: dict[str, Any] = {
        "before": ids_before,
        "after": sorted({s.instance or "?" for s in after if s.error is None}),
        "uptimes": uptimes,
    }
    failed_after = [s for s in after if s.error is not None]
    if not answered:
        errors = [s.error for s in (*before, *after) if s.error]
        what = errors[0] if errors else "no backend URL"
        return CheckResult("instances", Status.WARN, f"no instance answered its diagnostics route: {what}", data), False
    started = sorted(
        {
            (s.instance or "?", round(s.uptime_s or 0.0, 1))
            for s in answered
            if s.started_at is not None and s.started_at > began + START_TOLERANCE_SECONDS
        }
    )
    if started:
        shown = ", ".join(f"{name} (up {uptime:g} s)" for name, uptime in started)
        return CheckResult(
            "instances",
            Status.FAIL,
            f"an instance started during the run: {shown}; instances before: {', '.join(ids_before) or 'none'}",
            data,
        ), True
    if all(s.uptime_s is None for s in answered):
        return CheckResult(
            "instances",
            Status.SKIP,
            "the instances report no uptime (the TypeScript backend does not), so restarts cannot be seen here; "
            "look at the platform's deployment and restart events (App Runner: the service's event log)",
            data,
        ), False
    shown = ", ".join(f"{name} (up {uptime:g} s)" for name, uptime in sorted(uptimes.items()))
    if failed_after:
        return CheckResult(
            "instances",
            Status.WARN,
            f"no restart seen ({shown}), but {len(failed_after)} answer(s) after the run failed: "
            f"{failed_after[0].error}",
            data,
        ), False
    names = ", ".join(sorted(uptimes))
    return CheckResult("instances", Status.PASS, f"no instance started during the run ({names})", data), False
