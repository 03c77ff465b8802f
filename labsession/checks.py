"""Check results: what every probe, notebook and runbook reports, and the verdict they add up to.

A check is PASS, WARN, FAIL, SKIP or ERROR with one sentence of evidence. A :class:`Report`
collects them; notebooks display it and record it machine-readably (the MIME type
:data:`REPORT_MIME`), which ``labsession health`` reads back into ``summary.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from .errors import LabSessionError
from .masking import mask_text, redact

__all__ = [
    "CHECKS_META",
    "EXIT_COULD_NOT_RUN",
    "EXIT_FAILED",
    "EXIT_OK",
    "REPORT_MIME",
    "TIMING_MARK",
    "CheckFailed",
    "CheckResult",
    "Report",
    "Status",
    "exit_code",
    "worst",
]

#: MIME type of the machine-readable report a notebook displays in its verdict cell.
REPORT_MIME = "application/vnd.labsession.report+json"
#: Output metadata key under which a notebook cell that shows checks lists them (``[{"name", "status"}]``),
#: so a report can link a failing check to the cell that showed it.
CHECKS_META = "application/vnd.labsession.checks+json"
#: How a timing-only WARN ends its evidence: ``... [timing: p99 above 50 ms]`` (see
#: :attr:`CheckResult.timing`). nbval_sanitize.cfg recognizes such a check line by it.
TIMING_MARK = "[timing: "


class Status(StrEnum):
    """Outcome of one check, from best to worst."""

    PASS = "PASS"
    SKIP = "SKIP"
    WARN = "WARN"
    FAIL = "FAIL"
    ERROR = "ERROR"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.PASS: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2, Status.ERROR: 3}


#: Exit codes of every labsession command that checks something (health, runbook, check): a
#: scheduler tells "healthy" from "a check failed" from "could not even check" by these alone.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_COULD_NOT_RUN = 2


def exit_code(verdict: Status) -> int:
    """The process exit code for ``verdict``: 0 for PASS, WARN and SKIP; 1 for FAIL; 2 for ERROR
    (a check could not run), the same code as for bad input or an unreachable setup."""
    if verdict is Status.ERROR:
        return EXIT_COULD_NOT_RUN
    if verdict is Status.FAIL:
        return EXIT_FAILED
    return EXIT_OK


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of ``statuses``: PASS when there are none or all passed or were skipped."""
    out = Status.PASS
    for status in statuses:
        if status.rank > out.rank:
            out = status
    return out


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its ``name``, ``status``, one sentence of ``evidence`` and optional ``data``.

    ``evidence`` and ``data`` are masked on creation, so a result is always safe to show.
    """

    name: str
    status: Status
    evidence: str
    data: dict[str, Any] = field(default_factory=dict)
    #: Set, to the threshold crossed, when this WARN comes only from a timing threshold (a PING
    #: slower than its limit, a close 4000 later than expected, a write seen late): the machine or
    #: network was slow at that moment, the setup is not wrong. The evidence then ends with
    #: ``[timing: <threshold>]``; the check is shown and counted as the WARN it is, but it does not
    #: lower :attr:`Report.verdict`, so a notebook's verdict never depends on one slow moment.
    timing: str = ""

    def __post_init__(self) -> None:
        status = Status(self.status)
        evidence = self.evidence
        if self.timing:
            if status is not Status.WARN:
                raise ValueError(f"only a WARN can be timing-only, not a {status.value} (timing={self.timing!r})")
            mark = f"{TIMING_MARK}{self.timing}]"
            evidence = evidence if evidence.endswith(mark) else f"{evidence} {mark}"
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "evidence", mask_text(evidence))
        object.__setattr__(self, "data", redact(self.data))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        return out


class CheckFailed(LabSessionError):
    """Raised at the end of a notebook whose report holds a FAIL or ERROR (papermill exits 1)."""

    def __init__(self, report: Report) -> None:
        self.report = report
        bad = [c for c in report if c.status in (Status.FAIL, Status.ERROR)]
        lines = "; ".join(f"{c.name}: {c.status.value} - {c.evidence}" for c in bad)
        super().__init__(f"{report.title}: {report.verdict.value} ({lines})")


@dataclass(slots=True)
class Report:
    """An ordered collection of check results with a verdict (the worst status)."""

    title: str
    checks: list[CheckResult] = field(default_factory=list)
    #: Extra machine-readable facts (a runbook's cause code, a notebook's target).
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, result: CheckResult) -> CheckResult:
        self.checks.append(result)
        return result

    def extend(self, results: Iterable[CheckResult]) -> None:
        self.checks.extend(results)

    def check(self, name: str, status: Status | str, evidence: str, **data: Any) -> CheckResult:
        """Record one result and return it."""
        return self.add(CheckResult(name, Status(status), evidence, data))

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    @property
    def verdict(self) -> Status:
        """PASS when every check passed or was skipped; else the worst status seen.

        A timing-only WARN (:attr:`CheckResult.timing`) is left out: it is shown on its line and
        counted in :meth:`counts`, but one slow moment does not decide the verdict.
        """
        return worst(c.status for c in self.checks if not c.timing)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for check in self.checks:
            out[check.status.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "verdict": self.verdict.value,
            "counts": self.counts(),
            "facts": redact(self.facts),
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)

    def table(self) -> str:
        """A plain-text table: one line per check (for terminals and logs)."""
        width = max((len(c.name) for c in self.checks), default=4)
        rows = [f"{c.status.value:<5}  {c.name:<{width}}  {c.evidence}" for c in self.checks]
        return "\n".join([*rows, f"verdict: {self.verdict.value}"])

    def raise_for_failures(self) -> None:
        """Raise :class:`CheckFailed` if any check is FAIL or ERROR."""
        if self.verdict in (Status.FAIL, Status.ERROR):
            raise CheckFailed(self)
