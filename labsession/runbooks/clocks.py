"""Do the backend instances agree on the time? A clock ahead makes live sessions look expired.

Each instance judges ``expiresAt`` (and the grace period of a session still being created)
by its own clock, so an instance whose clock runs ahead by more than a session's remaining
life calls that live session expired, and one ahead by more than the grace period calls a
session still being created stale. The instances' clocks are visible in their HTTP ``Date``
headers (both backends send one); Redis' clock comes from ``INFO server`` (``server_time_usec``,
no ``TIME`` command, which a read-only user may not run). Times are seconds.
"""

from __future__ import annotations

import statistics

from ..checks import CheckResult, Status
from .instances import InstanceSample

__all__ = ["DATE_UNCERTAINTY_S", "judge_clocks"]

#: How far a clock read from a ``Date`` header can be off: it has whole seconds and servers
#: (uvicorn, Node's http) refresh it once a second, so it trails their clock by 0 to 2 s; read
#: against the middle of that (±1 s), plus the round trip.
DATE_UNCERTAINTY_S = 1.5


def judge_clocks(
    samples: list[InstanceSample],
    redis_offset_s: float | None,
    *,
    max_skew_s: float,
    session_expires_in_s: float | None = None,
) -> tuple[CheckResult, bool, str]:
    """The ``clocks`` step: each instance's clock against the reference (Redis' clock when it tells,
    else this machine's). ``samples`` carry each instance's offset from this machine's clock;
    ``redis_offset_s`` is Redis' offset from it; ``session_expires_in_s`` is the session's remaining
    life by this machine's clock, when a session is looked at.

    Returns ``(check, skewed, short evidence)``: ``skewed`` when an instance is off the reference by
    more than ``max_skew_s``, or ahead of this machine past the session's ``expiresAt``.
    """
    per_instance: dict[str, list[float]] = {}
    for sample in samples:
        if sample.clock_offset_s is not None:
            per_instance.setdefault(sample.label, []).append(sample.clock_offset_s)
    offsets = {label: statistics.median(values) for label, values in sorted(per_instance.items())}
    reference = "Redis" if redis_offset_s is not None else "this machine"
    ref = redis_offset_s or 0.0
    data = {
        "offsets_s": {label: round(value, 2) for label, value in offsets.items()},
        "redis_offset_s": None if redis_offset_s is None else round(redis_offset_s, 3),
        "reference": reference,
        "max_skew_s": max_skew_s,
        "uncertainty_s": DATE_UNCERTAINTY_S,
    }
    if not offsets:
        return CheckResult("clocks", Status.SKIP, "no instance sent a readable HTTP Date header", data), False, ""
    worst_label, worst = max(offsets.items(), key=lambda item: abs(item[1] - ref))
    deviation = worst - ref
    shown = ", ".join(f"{label} {value - ref:+.1f} s" for label, value in offsets.items())
    if abs(deviation) > max_skew_s + DATE_UNCERTAINTY_S:
        direction = "ahead of" if deviation > 0 else "behind"
        short = f"{worst_label}'s clock is {abs(deviation):.0f} s {direction} {reference}'s"
        effect = (
            "it judges live sessions expired up to that long before their expiresAt"
            if deviation > 0
            else "it judges sessions alive past their expiresAt"
        )
        return (
            CheckResult(
                "clocks",
                Status.FAIL,
                f"{short} (instances against {reference}: {shown}; limit {max_skew_s:g} s): {effect}",
                data,
            ),
            True,
            short,
        )
    if session_expires_in_s is not None and session_expires_in_s > 0:
        ahead = {label: value for label, value in offsets.items() if value - DATE_UNCERTAINTY_S > session_expires_in_s}
        if ahead:
            label, value = max(ahead.items(), key=lambda item: item[1])
            short = (
                f"{label}'s clock is {value:.0f} s ahead, past this session's expiresAt "
                f"({session_expires_in_s:.0f} s away)"
            )
            return (
                CheckResult("clocks", Status.FAIL, f"{short}: it judges this live session expired", data),
                True,
                short,
            )
    own = ""
    status = Status.PASS
    if redis_offset_s is not None and abs(redis_offset_s) > max_skew_s:
        status = Status.WARN
        own = (
            f"; this machine's clock is {abs(redis_offset_s):.0f} s off Redis', so the session key step's "
            "times are judged by a wrong clock"
        )
    return (
        CheckResult(
            "clocks",
            status,
            f"{len(offsets)} instance clock(s) agree with {reference}'s within {max_skew_s:g} s "
            f"(by their HTTP Date headers, ±{DATE_UNCERTAINTY_S:g} s){own}",
            data,
        ),
        False,
        "",
    )
