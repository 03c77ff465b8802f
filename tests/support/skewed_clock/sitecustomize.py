"""A process whose wall clock is off: put this folder on ``PYTHONPATH`` and set
``LABSESSION_TEST_CLOCK_SKEW_SECONDS`` (seconds, may be negative) in a child's environment.

Staging, not mocking: a host without NTP has exactly this, a wall clock (``time.time``, which
HTTP ``Date`` headers and session expiry judgements read) that differs from everyone else's,
while its monotonic clock (timeouts) runs true. The whole real backend process runs on it.
"""

from __future__ import annotations

import os
import time

_SKEW = float(os.environ.get("LABSESSION_TEST_CLOCK_SKEW_SECONDS") or 0.0)

if _SKEW:
    _true_time = time.time
    _true_time_ns = time.time_ns

    def _skewed_time() -> float:
        return _true_time() + _SKEW

    def _skewed_time_ns() -> int:
        return _true_time_ns() + int(_SKEW * 1e9)

    time.time = _skewed_time
    time.time_ns = _skewed_time_ns
