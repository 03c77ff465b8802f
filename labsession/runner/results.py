"""What a health run found: one :class:`NotebookOutcome` per notebook and the :class:`RunSummary` of the run.

Everything a health run writes (``summary.json``, ``junit.xml``, ``report.html``, the history, the
Prometheus file, a Nagios line, an alert) is made from a :class:`RunSummary`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import Status, exit_code, worst
from ..masking import redact

__all__ = ["NotebookOutcome", "RunSummary", "iso_utc"]


def iso_utc(epoch_seconds: float) -> str:
    """``epoch_seconds`` as an ISO 8601 UTC time to the second (``2026-11-26T06:30:12+00:00``)."""
    return dt.datetime.fromtimestamp(epoch_seconds, dt.UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class NotebookOutcome:
    """One executed notebook: its verdict, its reports (from :data:`REPORT_MIME` outputs), the error if it broke."""

    name: str
    path: str
    status: Status = Status.ERROR
    reports: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    elapsed_seconds: float = 0.0
    output: Path | None = None
    #: Stopped at the end of the budget or by a signal (its kernel killed, or never started).
    stopped: bool = False
    #: ``(check name, status)`` → id of the cell that showed it; filled when the notebook is rendered.
    check_cells: dict[tuple[str, str], str] = field(default_factory=dict)
    #: ``(section heading, base64 PNG)`` of each plot; filled when the notebook is rendered.
    plots: list[tuple[str, str]] = field(default_factory=list)

    def checks(self) -> list[dict[str, Any]]:
        return [dict(c, notebook=self.name) for r in self.reports for c in r.get("checks", [])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "verdict": self.status.value,
            "error": self.error,
            "elapsedSeconds": round(self.elapsed_seconds, 3),
            "stoppedAtBudget": self.stopped,
            "reports": self.reports,
        }


@dataclass(slots=True)
class RunSummary:
    """The whole run: target description, per-notebook outcomes, wall time in seconds.

    ``started`` is the start as ISO 8601 UTC; ``started_at`` and ``finished_at`` are Unix times in
    seconds; ``parameters`` are the run's notebook parameters (never credentials); ``stopped_by``
    names the signal that ended the run early (``"SIGTERM"``), else ``None``.
    """

    target: dict[str, Any]
    outcomes: list[NotebookOutcome]
    started: str
    elapsed_seconds: float = 0.0
    run_id: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)
    stopped_by: str | None = None

    @property
    def verdict(self) -> Status:
        return worst(o.status for o in self.outcomes)

    def checks(self) -> list[dict[str, Any]]:
        """Every check of every notebook, in run order, each with its ``notebook``."""
        return [c for o in self.outcomes for c in o.checks()]

    def counts(self) -> dict[str, int]:
        checks = self.checks()
        return {s.value: sum(1 for c in checks if c.get("status") == s.value) for s in Status}

    def to_dict(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "verdict": self.verdict.value,
            "exitCode": exit_code(self.verdict),
            "startedAt": self.started,
            "finishedAt": iso_utc(self.finished_at) if self.finished_at else None,
            "elapsedSeconds": round(self.elapsed_seconds, 3),
            "target": redact(self.target),
            "parameters": redact(self.parameters),
            "stoppedBy": self.stopped_by,
            "counts": self.counts(),
            "notebooks": [o.to_dict() for o in self.outcomes],
            "checks": self.checks(),
        }
