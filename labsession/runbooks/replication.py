"""How far behind its master is each replica that a backend instance reads sessions through?

A backend instance on a replica (or in a second region that reads a replicated copy) sees a
new session only once replication has carried it over. The ``replication`` step takes the
master's replication offset, then asks each such instance's diagnostics route for its store's
offset until it has reached that offset: the time that took is the lag a lookup on that
instance suffers, and the bytes it was behind at the start say how much was in flight. A lag
longer than the WebSocket lookup retry window makes fresh sessions look invalid there.

Read-only unless the caller writes a probe key on the master first (``wrote``): without a
write in flight, a replica that is in sync can only be shown in sync, not timed. Load on the
servers is bounded: one diagnostics request per replica every ``poll_ms`` for at most
``bound_ms``. Times are milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..checks import CheckResult, Status
from .instances import InstanceSample, sample_instance

__all__ = ["ReplicaLag", "judge_replication", "measure_replica_lag"]


@dataclass(frozen=True, slots=True)
class ReplicaLag:
    """One replica-reading instance, measured against the master's offset ``master_offset``.

    ``behind_bytes``: how far its first answer was behind; ``lag_ms``: from reading the master's
    offset until the instance reported reaching it (``None`` when it did not within the bound,
    or never answered); ``link``: the replica's ``master_link_status`` as last reported.
    """

    instance: str
    url: str
    master_offset: int
    behind_bytes: int | None
    lag_ms: float | None
    link: str | None
    answers: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "masterOffset": self.master_offset,
            "behindBytes": self.behind_bytes,
            "lagMs": None if self.lag_ms is None else round(self.lag_ms, 1),
            "link": self.link,
            "answers": self.answers,
        }


async def measure_replica_lag(
    replica: InstanceSample,
    master_offset: Callable[[], Awaitable[int | None]],
    *,
    bound_ms: float,
    poll_ms: float = 100.0,
    http_timeout: float = 3.0,
) -> ReplicaLag | None:
    """Poll ``replica``'s URL until the instance it named reports an offset at least the master's
    (read once, by ``master_offset``, at the start) or ``bound_ms`` passed. ``None`` when the
    master's offset cannot be read. Answers from other instances behind the same URL are ignored.
    """
    target = await master_offset()
    if target is None:
        return None
    started = time.perf_counter()
    first: int | None = None
    link: str | None = None
    answers = 0
    while True:
        sample = await sample_instance(replica.url, http_timeout=http_timeout)
        # Counted to the answer, not the question: the time until the instance could see the write.
        elapsed = (time.perf_counter() - started) * 1000
        store = sample.store
        if sample.error is None and sample.label == replica.label and store is not None and store.offset is not None:
            answers += 1
            link = store.link
            if first is None:
                first = store.offset
            if store.offset >= target:
                behind = max(0, target - first)
                return ReplicaLag(replica.label, replica.url, target, behind, elapsed, link, answers)
        if elapsed >= bound_ms:
            gap = None if first is None else max(0, target - first)
            return ReplicaLag(replica.label, replica.url, target, gap, None, link, answers)
        await asyncio.sleep(poll_ms / 1000)


def _lag_or_never(lag: ReplicaLag) -> float:
    """``lag``'s lag in milliseconds, infinite when it did not catch up within the bound."""
    return float("inf") if lag.lag_ms is None else lag.lag_ms


def judge_replication(
    lags: list[ReplicaLag], window_ms: float, bound_ms: float, *, wrote: bool
) -> tuple[CheckResult, bool, str]:
    """The ``replication`` step's check; the bool says the lag explains invalid sessions
    (``VISIBILITY_LAG``), and the text is the short evidence for the cause line."""
    data = {"replicas": [lag.to_dict() for lag in lags], "window_ms": window_ms, "bound_ms": bound_ms}
    late = [lag for lag in lags if lag.link == "down" or lag.lag_ms is None or lag.lag_ms > window_ms]
    # The longest lag is named, one that never caught up longest of all; the first listed on a tie.
    worst = max(late, key=_lag_or_never, default=None)
    if worst is not None:
        behind = "an unknown number of" if worst.behind_bytes is None else str(worst.behind_bytes)
        if worst.link == "down":
            when = "its link to the master is down, so it serves stale data"
        elif worst.lag_ms is None:
            when = f"it had not caught up after {bound_ms:.0f} ms"
        else:
            when = f"it caught up after {worst.lag_ms:.0f} ms"
        short = f"{worst.instance} reads through a replica {behind} bytes behind the master; {when}"
        return (
            CheckResult(
                "replication",
                Status.FAIL,
                f"{short}; the lookup retry window is {window_ms:.0f} ms, so a fresh session is invalid there",
                data,
            ),
            True,
            short,
        )
    parts = []
    for lag in lags:
        if lag.behind_bytes == 0 and not wrote:
            parts.append(f"{lag.instance} in sync at offset {lag.master_offset}")
        else:
            parts.append(f"{lag.instance} caught up {lag.behind_bytes} bytes in {lag.lag_ms or 0.0:.0f} ms")
    note = (
        ""
        if wrote
        else " (read-only run: a replica in sync with no write in flight is shown in sync, not timed; "
        "read_only=False writes a probe key to time it)"
    )
    return (
        CheckResult(
            "replication",
            Status.PASS,
            f"replicas keep up within the {window_ms:.0f} ms lookup window: {'; '.join(parts)}{note}",
            data,
        ),
        False,
        "",
    )
