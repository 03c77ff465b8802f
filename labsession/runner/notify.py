"""Alerts on change: a JSON event POSTed to ``--notify-url`` when the verdict changes.

The verdict is compared with the one last announced, kept in the run history
(:meth:`~labsession.runner.history.History.alert_state`; before any, the previous run's verdict, or
PASS): a run that turns FAIL sends ``"state": "firing"``, the first good run after it
``"resolved"``, a WARN ``"warning"``. A verdict that has not changed sends nothing. Delivery is
retried a bounded number of times (:data:`ATTEMPTS`, each bounded by :data:`TIMEOUT_SECONDS`,
retrying network errors, 429 and 5xx only); an alert that could not be delivered is not marked
announced, so the next run tries again.

Nothing secret goes into the body: the target as shown (masked), check names, statuses and their
evidence, masked again, with any whole session id shortened to 8 characters (even when the run
was asked to show them). The URL itself may carry a token in its path, so only its scheme and
host are ever printed.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..checks import Status
from ..masking import log_id, mask_text
from .report import find_root_cause
from .results import RunSummary

__all__ = ["ATTEMPTS", "TIMEOUT_SECONDS", "Delivery", "deliver", "shown_url", "state_of", "verdict_event"]

#: Tries per alert, and the wait in seconds before each retry.
ATTEMPTS = 3
BACKOFF_SECONDS = (1.0, 2.0)
#: Longest wait for one attempt (connect and answer), seconds.
TIMEOUT_SECONDS = 5.0
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_BAD = (Status.FAIL, Status.ERROR)


def shown_url(url: str) -> str:
    """``scheme://host[:port]/…``: what may be printed of a webhook URL (its path may be a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def _clean(text: str) -> str:
    return _UUID.sub(lambda m: log_id(m.group(0)), mask_text(text))


def state_of(verdict: Status, before: Status) -> str:
    if verdict in _BAD:
        return "firing"
    if verdict is Status.WARN:
        return "warning"
    return "resolved" if before is not verdict else "ok"


def verdict_event(summary: RunSummary, before: Status, *, report: str | None = None) -> dict[str, Any]:
    """The JSON body announcing that the verdict went from ``before`` to ``summary.verdict``."""
    verdict = summary.verdict
    cause = find_root_cause(summary)
    failing = [
        c
        for c in summary.checks()
        if c.get("status") in ("FAIL", "ERROR") or (c.get("status") == "WARN" and not c.get("timing"))
    ]
    counts = summary.counts()
    return {
        "source": "labsession health",
        "event": "verdict_changed",
        "state": state_of(verdict, before),
        "verdict": verdict.value,
        "previousVerdict": before.value,
        "runId": summary.run_id,
        "startedAt": summary.started,
        "elapsedSeconds": round(summary.elapsed_seconds, 3),
        "target": _clean(str(summary.target.get("description", ""))),
        "endpoint": _clean(str(summary.target.get("endpoint", ""))),
        "counts": counts,
        "rootCause": None
        if cause is None
        else {"code": cause.code, "remedy": _clean(cause.remedy), "checks": len(cause.checks)},
        "checks": [
            {
                "notebook": str(c.get("notebook")),
                "check": _clean(str(c.get("name"))),
                "status": str(c.get("status")),
                "evidence": _clean(str(c.get("evidence", "")))[:300],
            }
            for c in failing[:20]
        ],
        "report": report,
    }


class Delivery:
    """How one alert went: ``ok``, ``attempts`` made and the last ``problem`` (``None`` when delivered)."""

    def __init__(self) -> None:
        self.ok = False
        self.attempts = 0
        self.problem: str | None = None


def deliver(
    url: str,
    body: dict[str, Any],
    *,
    attempts: int = ATTEMPTS,
    timeout: float = TIMEOUT_SECONDS,
    backoff: tuple[float, ...] = BACKOFF_SECONDS,
) -> Delivery:
    """POST ``body`` as JSON to ``url``: up to ``attempts`` tries, each bounded by ``timeout`` seconds,
    retrying network errors, 429 and 5xx answers after ``backoff`` seconds. Never raises."""
    result = Delivery()
    data = json.dumps(body).encode("utf-8")
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff[min(attempt - 1, len(backoff) - 1)] if backoff else 0)
        result.attempts += 1
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "labsession-health"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read(65536)
            result.ok, result.problem = True, None
            return result
        except urllib.error.HTTPError as exc:
            result.problem = f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                return result  # the receiver refuses this alert: trying again cannot help
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            result.problem = type(reason).__name__ if not isinstance(reason, str) else reason
    return result
