"""How a notebook shows things: MIME bundles with a plain-text twin, tables, checks and the
verdict (also as machine-readable JSON, :data:`~labsession.checks.REPORT_MIME`)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..checks import CHECKS_META, REPORT_MIME, CheckResult, Report, Status
from ..masking import mask_text, redact

__all__ = ["display_bundle", "show_checks", "show_report", "show_table", "show_text"]

_STATUS_COLOURS = {
    Status.PASS: "#1a7f37",
    Status.SKIP: "#6e7781",
    Status.WARN: "#9a6700",
    Status.FAIL: "#cf222e",
    Status.ERROR: "#8250df",
}


def display_bundle(bundle: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
    """Display a MIME bundle (with output ``metadata``) in the notebook, or print its text/plain outside a kernel."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency
        print(bundle.get("text/plain", ""))
        return
    if get_ipython() is None:
        print(bundle.get("text/plain", ""))
        return
    display(dict(bundle), raw=True, metadata=dict(metadata) if metadata else None)  # type: ignore[no-untyped-call,unused-ignore]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
    if value is None:
        return ""
    return mask_text(str(value))


def show_text(text: str) -> None:
    """Show a line of masked text."""
    display_bundle({"text/plain": mask_text(text)})


def show_table(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None, title: str | None = None
) -> None:
    """An HTML table (with a plain-text fallback) of ``rows``; every value is redacted and masked."""
    materialized = [redact(dict(r)) for r in rows]
    if columns is None:
        columns = list(dict.fromkeys(k for r in materialized for k in r))
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in materialized
    )
    caption = f"<caption style='text-align:left'><b>{html.escape(title)}</b></caption>" if title else ""
    widths = [max([len(c)] + [len(_cell(r.get(c))) for r in materialized]) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(_cell(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)) for r in materialized]
    if title:
        lines.insert(0, title)
    if not materialized:
        lines.append("(none)")
    display_bundle({"text/html": f"<table>{caption}<tr>{head}</tr>{body}</table>", "text/plain": "\n".join(lines)})


def _checks_html(checks: Sequence[CheckResult]) -> str:
    rows = []
    for c in checks:
        colour = _STATUS_COLOURS[c.status]
        rows.append(
            f"<tr><td style='text-align:left;color:{colour};font-weight:bold'>{c.status.value}</td>"
            f"<td style='text-align:left'>{html.escape(c.name)}</td>"
            f"<td style='text-align:left'>{html.escape(c.evidence)}</td></tr>"
        )
    return (
        "<table><tr><th style='text-align:left'>status</th><th style='text-align:left'>check</th>"
        "<th style='text-align:left'>evidence</th></tr>" + "".join(rows) + "</table>"
    )


def show_checks(checks: Iterable[CheckResult]) -> None:
    """Show some check results as a coloured HTML table with a text fallback."""
    items = list(checks)
    width = max((len(c.name) for c in items), default=4)
    text = "\n".join(f"{c.status.value:<5}  {c.name:<{width}}  {c.evidence}" for c in items) or "(no checks)"
    # The metadata names the checks this cell shows: a health report links a failing check to this cell.
    display_bundle(
        {"text/html": _checks_html(items), "text/plain": text},
        {CHECKS_META: [{"name": c.name, "status": c.status.value} for c in items]},
    )


def show_report(report: Report) -> None:
    """The verdict: an HTML table, a text fallback, and the machine-readable :data:`REPORT_MIME` JSON."""
    colour = _STATUS_COLOURS[report.verdict]
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    head = (
        f"<h3>{html.escape(report.title)}: <span style='color:{colour}'>{report.verdict.value}</span></h3>"
        f"<p>{html.escape(counts)}</p>"
    )
    display_bundle(
        {
            "text/html": head + _checks_html(report.checks),
            "text/plain": f"{report.title}\n{report.table()}",
            REPORT_MIME: report.to_dict(),
        }
    )
