"""Cross-connection visibility: how long until a write on one connection is readable on another.

Upstash promises read-your-writes only per connection; a backend instance that creates a
session and another that looks it up use different connections. If the lag is longer than
the WebSocket lookup retry window, a fresh session is "invalid" on the other instance.
Used by the session lifecycle notebook and the ``invalid_session`` runbook. Times are
milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

from ..checks import CheckResult, Status
from ..settings import Settings
from ..store.service import RedisService
from .stats import percentile

__all__ = ["LOOKUP_RETRY_WINDOW_MS", "VISIBILITY_PREFIX", "VisibilityResult", "measure_visibility"]

#: The WebSocket handler's lookup retries (after 0, 100, 200 and 400 ms): a session must be
#: visible on another connection within this many ms or a fresh one is called invalid.
LOOKUP_RETRY_WINDOW_MS = 700.0
#: Visibility probe keys live outside the session prefix, so session scans never count them.
VISIBILITY_PREFIX = "labsession:probe:visibility:"


@dataclass(frozen=True, slots=True)
class VisibilityResult:
    """Lag samples (ms) from a write on one connection to its first read on another; ``None`` for a
    write not seen within ``bound_ms``. ``window_ms`` is the lookup retry window they are judged by.
    """

    samples_ms: tuple[float | None, ...]
    window_ms: float
    bound_ms: float

    @property
    def worst_ms(self) -> float | None:
        """The slowest sample, or ``None`` when a write was never seen (or none was taken)."""
        seen = [s for s in self.samples_ms if s is not None]
        return max(seen) if seen and len(seen) == len(self.samples_ms) else None

    def check(self) -> CheckResult:
        data = {
            "samplesMs": [round(s, 3) if s is not None else None for s in self.samples_ms],
            "windowMs": self.window_ms,
        }
        if not self.samples_ms:
            return CheckResult("visibility lag", Status.SKIP, "no sample taken", data)
        missing = sum(1 for s in self.samples_ms if s is None)
        if missing:
            return CheckResult(
                "visibility lag",
                Status.FAIL,
                f"{missing} of {len(self.samples_ms)} writes were not visible on another connection "
                f"within {self.bound_ms:.0f} ms",
                data,
            )
        worst = self.worst_ms or 0.0
        p50 = percentile([s for s in self.samples_ms if s is not None], 50) or 0.0
        text = (
            f"{len(self.samples_ms)} writes visible on another connection after p50 {p50:.2f} ms, "
            f"worst {worst:.2f} ms (lookup retry window {self.window_ms:.0f} ms)"
        )
        if worst > self.window_ms:
            return CheckResult("visibility lag", Status.FAIL, text + ": longer than the window", data)
        if worst > self.window_ms / 2:
            return CheckResult("visibility lag", Status.WARN, text, data, timing="worst above half the window")
        return CheckResult("visibility lag", Status.PASS, text, data)


async def measure_visibility(
    settings: Settings,
    *,
    samples: int = 5,
    window_ms: float = LOOKUP_RETRY_WINDOW_MS,
    bound_ms: float | None = None,
    poll_ms: float = 1.0,
) -> VisibilityResult:
    """``samples`` times: SET a probe key (EX 120) on one connection, poll GET on another until it is
    seen or ``bound_ms`` (default ``2 × window_ms``) passed; the key is deleted right after. Needs
    write access.

    Raises :class:`~labsession.errors.RedisUnavailable`.
    """
    bound = 2 * window_ms if bound_ms is None else bound_ms
    out: list[float | None] = []
    writer = RedisService(settings, client_name=f"{settings.client_name}-probe-w")
    reader = RedisService(settings, client_name=f"{settings.client_name}-probe-r")
    async with writer, reader:
        for _ in range(samples):
            key = VISIBILITY_PREFIX + uuid.uuid4().hex
            token = uuid.uuid4().hex.encode()
            try:
                async with writer.guard("visibility write"):
                    await writer.client.set(key, token, ex=120)
                # Measured from the write's acknowledgement to the read that saw it (that read's
                # round trip included): what a second instance's lookup would experience.
                written = time.perf_counter()
                lag: float | None = None
                while True:
                    async with reader.guard("visibility read"):
                        value = await reader.client.get(key)
                    elapsed = (time.perf_counter() - written) * 1000
                    if value == token:
                        lag = elapsed
                        break
                    if elapsed > bound:
                        break
                    await asyncio.sleep(poll_ms / 1000)
                out.append(lag)
            finally:
                with contextlib.suppress(Exception):  # the key expires by itself anyway
                    async with writer.guard("visibility cleanup"):
                        await writer.client.delete(key)
    return VisibilityResult(tuple(out), window_ms, bound)
