"""Small streaming statistics: percentiles of a sample, fixed-bin histograms, bounded top-k counting."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["Histogram", "TopK", "percentile"]


def percentile(samples: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100, nearest rank) of ``samples``; ``None`` when there are none."""
    ordered = sorted(samples)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(slots=True)
class Histogram:
    """Counts of values in fixed bins: ``edges`` are ascending upper bounds; values above the last
    go to an overflow bin. Memory is one integer per bin, whatever the number of values."""

    edges: Sequence[float]
    labels: Sequence[str]
    counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.edges) + 1:
            raise ValueError("a histogram needs one label per edge plus one for the overflow bin")
        self.counts = [0] * (len(self.edges) + 1)

    def add(self, value: float) -> None:
        self.counts[bisect_left(self.edges, value)] += 1

    def rows(self) -> list[dict[str, object]]:
        return [{"bin": label, "count": count} for label, count in zip(self.labels, self.counts, strict=True)]


class TopK:
    """Approximate heaviest hitters with bounded memory (the Misra–Gries algorithm).

    Keeps at most ``capacity`` counters. A reported count is a lower bound: an item seen ``n``
    times is reported with at least ``n - total / capacity``; every item seen more than
    ``total / capacity`` times is kept. Exact (``exact`` stays True) while the distinct items fit.
    Amortized O(1) per item: each sweep of the counters removes ``capacity`` from the total.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.total = 0
        self.exact = True

    def add(self, item: str) -> None:
        self.total += 1
        counts = self.counts
        if item in counts:
            counts[item] += 1
        elif len(counts) < self.capacity:
            counts[item] = 1
        else:
            self.exact = False
            self.counts = {k: v - 1 for k, v in counts.items() if v > 1}

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` items with the highest counts, highest first."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
