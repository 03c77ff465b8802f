"""Count the commands a real redis-server executed, from ``INFO commandstats`` deltas.

The counter reads through its own plain connection; its own INFO calls are left out of
the delta, so a test sees exactly what the code under test sent.
"""

from __future__ import annotations

from collections import Counter
from types import TracebackType

import redis


def command_calls(client: redis.Redis) -> Counter[str]:
    """Calls per command name (``get``, ``client|setname`` …) since the server started."""
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()})


class CommandCounter:
    """``with CommandCounter(url) as seen: …`` then ``seen.delta`` holds what ran inside."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.delta: Counter[str] = Counter()
        self._before: Counter[str] = Counter()

    def __enter__(self) -> CommandCounter:
        self._before = command_calls(self.client)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        after = command_calls(self.client)
        self.delta = Counter({k: after[k] - self._before[k] for k in after if after[k] != self._before[k]})
        self.delta.pop("info", None)
        self.client.close()

    @property
    def total(self) -> int:
        return sum(self.delta.values())
