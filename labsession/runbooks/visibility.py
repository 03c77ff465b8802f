"""Cross-connection visibility: how long until a write on one connection is readable on another.

Upstash promises read-your-writes only per connection; a backend instance that creates a
session and another that looks it up use different connections. If the lag is longer than
the WebSocket lookup retry window, a fresh session is "invalid" on the other instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

from ..errors import LabSessionError
from ..masking import get_logger
from ..redis_service import RedisService
from ..settings import Settings

__all__ = ["PROBE_PREFIX", "VisibilityProbe", "measure_visibility"]

log = get_logger(__name__)

#: Probe keys live outside the session prefix, so session scans never see them.
PROBE_PREFIX = "labsession:probe:visibility:"


@dataclass(frozen=True, slots=True)
class VisibilityProbe:
    """Lag samples in milliseconds; ``None`` for a write not seen within the bound."""

    samples_ms: tuple[float | None, ...]
    bound_ms: float

    @property
    def worst_ms(self) -> float | None:
        """The slowest sample, or ``None`` when a write was never seen."""
        if any(s is None for s in self.samples_ms) or not self.samples_ms:
            return None
        return max(s for s in self.samples_ms if s is not None)


async def measure_visibility(
    settings: Settings, *, samples: int = 5, bound_ms: float = 2000.0, poll_ms: float = 2.0
) -> VisibilityProbe:
    """Write a probe key on one connection and poll for it on another, ``samples`` times.

    Each probe key expires by itself within 2 minutes and is deleted at once; a write not
    visible after ``bound_ms`` counts as ``None``. Raises :class:`RedisUnavailable`.
    """
    out: list[float | None] = []
    writer = RedisService(settings, client_name=f"{settings.client_name}-vis-w")
    reader = RedisService(settings, client_name=f"{settings.client_name}-vis-r")
    async with writer, reader:
        for _ in range(samples):
            key = PROBE_PREFIX + uuid.uuid4().hex
            token = uuid.uuid4().hex.encode()
            try:
                async with writer.guard("probe write"):
                    await writer.client.set(key, token, px=120_000)
                # Measured from the write's acknowledgement to the read that saw it (that read's
                # round trip included): what a second instance's lookup would experience.
                started = time.perf_counter()
                seen: float | None = None
                while True:
                    async with reader.guard("probe read"):
                        value = await reader.client.get(key)
                    elapsed = (time.perf_counter() - started) * 1000
                    if value == token:
                        seen = elapsed
                        break
                    if elapsed > bound_ms:
                        break
                    await asyncio.sleep(poll_ms / 1000)
                out.append(seen)
            finally:
                with contextlib.suppress(LabSessionError):
                    async with writer.guard("probe cleanup"):
                        await writer.client.delete(key)
    return VisibilityProbe(tuple(out), bound_ms)
