"""What every runbook ends with: one cause code, one plain remediation, and the report behind it.

A runbook is a list of steps, each a :class:`~labsession.checks.CheckResult` with its evidence,
followed by a final ``cause`` check. The cause code and remedy are recorded in
``Report.facts["cause"]`` and ``Report.facts["remedy"]`` so ``labsession health``,
``labsession runbook`` and ``summary.json`` can read them back without parsing text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..checks import Report, Status

__all__ = ["Diagnosis", "conclude"]


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A finished runbook: ``cause`` (a stable code), ``remedy`` (one plain sentence or two)
    and the ``report`` holding every step's evidence. ``healthy`` is True when the cause is
    one of the runbook's "nothing wrong" codes."""

    runbook: str
    cause: str
    remedy: str
    report: Report
    healthy: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook,
            "cause": self.cause,
            "remedy": self.remedy,
            "healthy": self.healthy,
            "report": self.report.to_dict(),
        }


def conclude(runbook: str, report: Report, cause: str, remedy: str, *, healthy: bool, evidence: str = "") -> Diagnosis:
    """Add the final ``cause`` check to ``report`` and record the cause in its facts.

    The check is PASS when ``healthy`` and FAIL otherwise, so a runbook that names a fault
    makes its notebook (and a health run) fail, with the cause in the failure message.
    """
    status = Status.PASS if healthy else Status.FAIL
    text = f"{cause}: {remedy}"
    if evidence:
        text = f"{cause} ({evidence}): {remedy}"
    code = str(cause)
    report.check("cause", status, text, cause=code)
    report.facts.update({"runbook": runbook, "cause": code, "remedy": remedy})
    return Diagnosis(runbook, code, remedy, report, healthy)
