"""``labsession runbook NAME -p key value …``: run an incident runbook headless and print its cause.

The runbook's notebook (``runbooks/NAME.ipynb``) is executed through papermill with the
parameters given; its machine-readable report (:data:`~labsession.checks.REPORT_MIME`) is read
back from the executed notebook, and the cause code, the remedy and every step are printed.

Parameters are the notebook's (``papermill --help-notebook runbooks/NAME.ipynb`` lists them);
a value is read as JSON when it parses (``true``, ``5``, ``'["http://a:1"]'``), else as text.
Unlike the notebook opened by hand, ``embedded`` is False unless ``--embedded`` is given: an
on-call run never diagnoses a throwaway Redis by accident.

Exit codes, as for ``labsession health``: 0 nothing wrong (the runbook's "healthy" cause),
1 a cause was named (a FAIL), 2 the runbook could not run (bad parameter, unset variable, ERROR).
"""

from __future__ import annotations

import ast
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checks import EXIT_COULD_NOT_RUN, Status, exit_code
from ..errors import ConfigError
from ..masking import get_logger, redact
from . import executor
from .executor import check_parameters, reports_in
from .registry import RUNBOOKS, RunbookSpec

__all__ = ["RunbookOptions", "execute", "parse_value", "read_report", "runbook"]

log = get_logger(__name__)


def parse_value(raw: str) -> Any:
    """A parameter value from the command line: JSON when it parses, a Python literal, else text."""
    try:
        return json.loads(raw)
    except ValueError:
        pass
    if raw in ("True", "False", "None"):
        return ast.literal_eval(raw)
    return raw


def read_report(notebook: Any) -> dict[str, Any] | None:
    """The last :data:`REPORT_MIME` report displayed in an executed notebook (a NotebookNode or dict)."""
    reports = reports_in(notebook)
    return reports[-1] if reports else None


def execute(
    spec: RunbookSpec, parameters: dict[str, Any], out_dir: Path, *, cell_timeout: float = 300.0
) -> dict[str, Any]:
    """Run ``spec``'s notebook with ``parameters`` into ``out_dir``; return the summary.

    The summary holds ``runbook``, ``cause``, ``remedy``, ``verdict``, ``exit_code``, ``error``
    (why it could not run, or ``None``), ``checks`` and ``notebook`` (the executed file).
    Never raises for a failing notebook: that is in the summary. Raises
    :class:`~labsession.errors.ConfigError` for a parameter the runbook does not declare.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / spec.notebook
    check_parameters(spec.path, parameters)
    executed = executor.execute(spec.path, output, parameters, cell_timeout=cell_timeout)
    report = executed.reports[-1] if executed.reports else None
    error = executed.error
    summary: dict[str, Any] = {"runbook": spec.name, "notebook": str(output)}
    if report is None or "cause" not in report.get("facts", {}):
        summary.update(
            cause=None,
            remedy=None,
            verdict=Status.ERROR.value,
            checks=report["checks"] if report else [],
            error=error or "the runbook produced no report",
            exit_code=EXIT_COULD_NOT_RUN,
        )
        return redact(summary)  # type: ignore[no-any-return]
    verdict = Status(report["verdict"])
    facts = report["facts"]
    code = exit_code(verdict)
    summary.update(
        cause=facts["cause"],
        remedy=facts.get("remedy"),
        verdict=verdict.value,
        checks=report["checks"],
        error=None if code < 2 else error,
        exit_code=code,
        healthy=facts["cause"] in spec.healthy,
    )
    return redact(summary)  # type: ignore[no-any-return]


def _print_text(summary: dict[str, Any]) -> None:
    checks = summary.get("checks") or []
    width = max((len(c["name"]) for c in checks), default=4)
    for c in checks:
        print(f"{c['status']:<5}  {c['name']:<{width}}  {c['evidence']}")
    if summary.get("cause"):
        print(f"\ncause:  {summary['cause']}")
        print(f"remedy: {summary['remedy']}")
    if summary.get("error") and summary["exit_code"] == 2:
        print(f"\nthe runbook could not run: {summary['error']}")
    print(f"verdict: {summary['verdict']} (exit {summary['exit_code']})")


@dataclass(frozen=True, slots=True)
class RunbookOptions:
    """One ``labsession runbook`` call: the runbook ``name`` (``None`` lists them), raw ``-p``
    pairs, ``embedded``, where to keep the output, the cell timeout in seconds, JSON output."""

    name: str | None
    parameters: tuple[tuple[str, str], ...] = ()
    embedded: bool = False
    out: Path | None = None
    cell_timeout: float = 300.0
    json: bool = False
    list: bool = False


def runbook(options: RunbookOptions) -> int:
    """Run (or list) runbooks as ``options`` say, print the result; return the exit code."""
    args = options
    if args.list or not args.name:
        for name, spec in RUNBOOKS.items():
            print(f"{name:<20} {spec.title}\n{'':<20} causes: {', '.join(spec.causes)}")
        return 0 if args.list else 2
    if args.name not in RUNBOOKS:
        raise ConfigError("runbook name", f"is unknown: {args.name!r}; known: {', '.join(RUNBOOKS)}")
    spec = RUNBOOKS[args.name]
    parameters: dict[str, Any] = {"embedded": bool(args.embedded)}
    for key, raw in args.parameters:
        parameters[key] = parse_value(raw)
    if args.out is not None:
        summary = execute(spec, parameters, args.out, cell_timeout=args.cell_timeout)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    else:
        with tempfile.TemporaryDirectory(prefix="labsession-runbook-") as tmp:
            summary = execute(spec, parameters, Path(tmp), cell_timeout=args.cell_timeout)
        summary.pop("notebook", None)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_text(summary)
    sys.stdout.flush()
    return int(summary["exit_code"])
