"""What a health run writes for people and for CI: ``report.html``, each notebook as a page, ``junit.xml``
and ``summary.json``.

``report.html`` is read by an on-call engineer in a few seconds: the verdict as a coloured banner,
one root cause stated once when many checks fail for the same reason (:func:`find_root_cause`),
failures first with a link to the cell that showed each one, the time each notebook took, and the
notebooks' plots. It needs no network: every page is one file with its styles and images inside,
and the notebook pages are rendered here, small and self-contained, without code inputs and without
the require.js, MathJax and widget scripts nbconvert's templates fetch from a CDN (:func:`notebook_page`).

A failing check is a finding, not a crash: a notebook whose only error is the
:class:`~labsession.checks.CheckFailed` its verdict cell raises (so that papermill exits non-zero)
is rendered without papermill's red "An Exception was encountered" banner and without the
traceback. Any other exception is a real error and keeps both.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from ..checks import CHECKS_META, Status, exit_code
from ..errors import RedisCause
from ..masking import get_logger, mask_text, redact
from ..store.classify import remedy as redis_remedy
from .results import NotebookOutcome, RunSummary

__all__ = [
    "RootCause",
    "find_root_cause",
    "human_duration",
    "human_time",
    "notebook_page",
    "render_html",
    "write_html",
    "write_junit",
    "write_outputs",
    "write_summary",
]

log = get_logger(__name__)

#: The tag papermill gives the cells it inserts around a failing cell (the red banner and its anchor).
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"
#: Cause codes that say nothing is wrong (a runbook's healthy answers) or nothing specific.
_NOT_A_CAUSE = {"OK", "NO_FAULT_FOUND", "UNKNOWN"}
_REDIS_CODES = tuple(c.value for c in RedisCause if c.value not in _NOT_A_CAUSE)
_FAILING = ("FAIL", "ERROR")

# -- human-readable times ----------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """``0.4 s``, ``12.3 s``, ``4 min 5 s``, ``2 h 3 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def human_time(epoch_seconds: float) -> str:
    """A Unix time as ``2026-11-26 06:30:12 UTC``."""
    return dt.datetime.fromtimestamp(epoch_seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- one root cause ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RootCause:
    """A cause code that many failing checks share: the ``code``, what to do (``remedy``), one
    ``evidence`` sentence, and the ``(notebook, check)`` pairs it explains."""

    code: str
    remedy: str
    evidence: str
    checks: tuple[tuple[str, str], ...]

    def explains(self, check: Mapping[str, Any]) -> bool:
        return (str(check.get("notebook")), str(check.get("name"))) in self.checks

    @property
    def notebooks(self) -> list[str]:
        return list(dict.fromkeys(notebook for notebook, _ in self.checks))

    def sentence(self) -> str:
        return (
            f"{self.code}: {self.remedy} ({len(self.checks)} failing checks in "
            f"{len(self.notebooks)} notebook{'s' if len(self.notebooks) != 1 else ''})"
        )


def _codes(check: Mapping[str, Any]) -> set[str]:
    """The cause codes a failing check names: its ``cause``/``redis_cause`` data, and Redis cause
    codes in its evidence (a runbook's ``STORE_UNREACHABLE (CONNECTION_REFUSED: …)`` names both)."""
    data = check.get("data") or {}
    found = {str(data[k]) for k in ("cause", "redis_cause") if isinstance(data.get(k), str)}
    evidence = str(check.get("evidence", ""))
    found.update(code for code in _REDIS_CODES if re.search(rf"\b{code}\b", evidence))
    return found - _NOT_A_CAUSE


def find_root_cause(summary: RunSummary) -> RootCause | None:
    """The cause code most failing checks name, when at least two do; ``None`` otherwise.

    On a tie a Redis cause (the lower layer) wins over a runbook's conclusion drawn from it. The
    remedy is the library's for a Redis cause, else the one the runbook that named it gave.
    """
    failing = [c for c in summary.checks() if c.get("status") in _FAILING]
    named: dict[str, list[Mapping[str, Any]]] = {}
    for check in failing:
        for code in _codes(check):
            named.setdefault(code, []).append(check)
    if not named:
        return None
    code, checks = max(named.items(), key=lambda item: (len(item[1]), item[0] in _REDIS_CODES))
    if len(checks) < 2:
        return None
    if code in _REDIS_CODES:
        remedy = redis_remedy(RedisCause(code))
    else:
        remedy = next(
            (
                str(r["facts"]["remedy"])
                for o in summary.outcomes
                for r in o.reports
                if (r.get("facts") or {}).get("cause") == code and (r.get("facts") or {}).get("remedy")
            ),
            "see the checks below",
        )
    own = [
        c
        for c in checks
        if (c.get("data") or {}).get("cause") == code or (c.get("data") or {}).get("redis_cause") == code
    ]
    evidence = str((own or checks)[0].get("evidence", ""))
    return RootCause(
        code, mask_text(remedy), mask_text(evidence), tuple((str(c["notebook"]), str(c["name"])) for c in checks)
    )


# -- junit.xml and summary.json ----------------------------------------------------------------


def write_junit(summary: RunSummary, path: Path) -> None:
    """One ``testsuite`` per notebook, one ``testcase`` per check (FAIL → failure, ERROR → error, SKIP → skipped)."""
    suites = ET.Element("testsuites", name="labsession health", time=f"{summary.elapsed_seconds:.3f}")
    for outcome in summary.outcomes:
        checks = outcome.checks()
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=outcome.name,
            time=f"{outcome.elapsed_seconds:.3f}",
            tests=str(max(1, len(checks))),
            failures=str(sum(c["status"] == "FAIL" for c in checks)),
            errors=str(sum(c["status"] == "ERROR" for c in checks) + (0 if checks else 1)),
            skipped=str(sum(c["status"] == "SKIP" for c in checks)),
        )
        if not checks:
            case = ET.SubElement(suite, "testcase", classname=outcome.name, name="run")
            ET.SubElement(case, "error", message=outcome.error or "no report").text = outcome.error or ""
        for check in checks:
            case = ET.SubElement(suite, "testcase", classname=outcome.name, name=str(check["name"]))
            status, evidence = check["status"], str(check["evidence"])
            if status == "FAIL":
                ET.SubElement(case, "failure", message=evidence).text = evidence
            elif status == "ERROR":
                ET.SubElement(case, "error", message=evidence).text = evidence
            elif status == "SKIP":
                ET.SubElement(case, "skipped", message=evidence)
            else:
                ET.SubElement(case, "system-out").text = f"{status}: {evidence}"
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def write_summary(summary: RunSummary, path: Path) -> None:
    """``summary.json``: the verdict, every notebook and every check with its status, evidence and data."""
    # Each string masked (redact), never the JSON text: a masking rule must not eat a quote or a comma.
    path.write_text(json.dumps(redact(summary.to_dict()), indent=2, default=str), encoding="utf-8")


# -- each notebook as a page -------------------------------------------------------------------

#: A notebook page's own styles: the page needs nothing from the network (no require.js, MathJax or
#: widget scripts, no fonts) and stays small (nbconvert's JupyterLab template inlines ~270 kB of CSS).
_PAGE_CSS = """
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
max-width:1100px;margin:0 auto;padding:.5em 1.5em 2em}
h1{font-size:1.7em}h2{font-size:1.3em;margin-top:1.4em}h3{font-size:1.1em}
.cell{margin:.5em 0}
pre{background:#f6f8fa;padding:.5em .8em;overflow-x:auto;white-space:pre-wrap;
font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre.stderr{background:#fff8e6}pre.error{background:#ffebe9;color:#82071e}
code{background:#f6f8fa;padding:0 .2em}
table{border-collapse:collapse;margin:.4em 0}
th,td{padding:.2em .6em;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top}
th{background:#f6f8fa}caption{text-align:left;padding:.2em 0}
img{max-width:100%}
"""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _without_check_failed(book: Any) -> bool:
    """Drop papermill's banner cells and the ``CheckFailed`` traceback when that is the notebook's
    only error (a finding, not a crash); True when it did. Any other error is left as it is."""
    errors = [
        (cell, output)
        for cell in book.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    if not errors or any(output.get("ename") != "CheckFailed" for _, output in errors):
        return False
    for cell, output in errors:
        cell.outputs.remove(output)
    book.cells = [c for c in book.cells if PAPERMILL_ERROR_TAG not in c.get("metadata", {}).get("tags", [])]
    return True


def _check_cells(book: Any) -> dict[tuple[str, str], str]:
    """``(check name, status)`` → the id of the first cell that showed it (from :data:`CHECKS_META`)."""
    found: dict[tuple[str, str], str] = {}
    for cell in book.cells:
        if cell.cell_type != "code" or not cell.get("id"):
            continue
        for output in cell.get("outputs", []):
            for item in (output.get("metadata") or {}).get(CHECKS_META) or []:
                if isinstance(item, Mapping):
                    found.setdefault((str(item.get("name")), str(item.get("status"))), str(cell.id))
    return found


def _plots(book: Any) -> list[tuple[str, str]]:
    """``(caption, base64 PNG)`` for every plot the notebook drew, captioned by its section heading."""
    found: list[tuple[str, str]] = []
    heading = ""
    for cell in book.cells:
        if cell.cell_type == "markdown":
            first = str(cell.source).lstrip().split("\n", 1)[0]
            if first.startswith("#"):
                heading = first.lstrip("#").strip()
            continue
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            png = (output.get("data") or {}).get("image/png")
            if isinstance(png, str) and len(png) < 2_000_000:
                found.append((heading, png.replace("\n", "")))
    return found


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _output(output: Mapping[str, Any]) -> str:
    """One output as HTML: the richest form a report page can show without scripts."""
    kind = output.get("output_type")
    if kind == "stream":
        return f"<pre class='{_esc(output.get('name', 'stdout'))}'>{_esc(_text(output.get('text', '')))}</pre>"
    if kind == "error":
        lines = output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"]
        return f"<pre class='error'>{_esc(_ANSI.sub('', chr(10).join(lines)))}</pre>"
    data = output.get("data") or {}
    plain = _text(data.get("text/plain", ""))
    if "text/html" in data and plain and mask_text(plain) == plain:
        # Masking works on text, and would break markup ("AUTH x</td>"): the HTML twin is shown as it is
        # only when its plain-text twin, made from the same values, holds nothing to mask.
        return f"<div>{_text(data['text/html'])}</div>"
    if "image/png" in data:
        alt = _esc(plain or "plot")
        return f"<img alt='{alt}' src='data:image/png;base64,{_text(data['image/png']).replace(chr(10), '')}'>"
    if "text/markdown" in data:
        import mistune

        return str(mistune.html(_text(data["text/markdown"])))
    if plain:
        return f"<pre>{_esc(plain)}</pre>"
    return ""


def notebook_page(book: Any, title: str = "") -> str:
    """The executed notebook ``book`` as one HTML page without code inputs that opens offline, each code
    cell's outputs under ``id="cell-id=<cell id>"`` (links from report.html land there); a FAIL's
    ``CheckFailed`` banner and traceback are left out (:func:`_without_check_failed`)."""
    import mistune

    _without_check_failed(book)
    parts = []
    for cell in book.cells:
        anchor = f" id='cell-id={_esc(cell.get('id'))}'" if cell.get("id") else ""
        if cell.cell_type == "markdown":
            parts.append(f"<div class='cell'{anchor}>{mistune.html(_text(cell.source))}</div>")
        elif cell.cell_type == "code" and cell.get("outputs"):
            parts.append(f"<div class='cell'{anchor}>{''.join(_output(o) for o in cell.outputs)}</div>")
    heading = next(
        (
            str(c.source).lstrip("# ").split("\n", 1)[0]
            for c in book.cells
            if c.cell_type == "markdown" and str(c.source).startswith("# ")
        ),
        title,
    )
    # Masked piece by piece (_esc, _output): masking the finished page could eat into its markup. The
    # markdown cells are the notebook's own text, not anything a run produced.
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_esc(heading)}</title>"
        f"<style>{_PAGE_CSS}</style></head><body>{''.join(parts)}</body></html>"
    )


def render_html(outcome: NotebookOutcome, out_dir: Path) -> Path | None:
    """Render the executed notebook to ``out_dir/html/NAME.html`` (:func:`notebook_page`) and note on
    ``outcome`` which cell showed each check and what it plotted; ``None`` on failure."""
    import nbformat

    if outcome.output is None or not outcome.output.exists():
        return None
    target = out_dir / "html" / f"{outcome.name}.html"
    try:
        book = nbformat.read(str(outcome.output), as_version=4)  # type: ignore[no-untyped-call,unused-ignore]
        outcome.check_cells = _check_cells(book)
        outcome.plots = _plots(book)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(notebook_page(book, outcome.name), encoding="utf-8")
    except Exception as exc:  # a rendering problem must not lose the summary
        log.warning("could not render %s as HTML: %s", outcome.name, type(exc).__name__)
        return None
    return target


# -- report.html -------------------------------------------------------------------------------

_COLOURS = {"PASS": "#1a7f37", "SKIP": "#6e7781", "WARN": "#9a6700", "FAIL": "#cf222e", "ERROR": "#8250df"}
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1f2328}
main{max-width:1150px;margin:0 auto;padding:.2em 1.2em 2em}
h2{font-size:1.15em;margin:1.4em 0 .4em}
.banner{padding:.8em 1.2em;color:#fff;font-size:1.7em;font-weight:600}
.banner small{display:block;font-size:.5em;font-weight:400}
.chip{display:inline-block;min-width:3.8em;text-align:center;border-radius:3px;color:#fff;font-weight:600;
font-size:.85em;padding:0 .4em}
.cause{border-left:6px solid #cf222e;background:#fff5f5;padding:.5em 1em;margin:1em 0}
.cause p{margin:.3em 0}
table{border-collapse:collapse;width:100%;margin:.3em 0 1em}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;white-space:nowrap}
figure{display:inline-block;margin:.4em 1.2em .4em 0;vertical-align:top}
figure img{max-width:540px;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:.9em}
.muted{color:#57606a}
details{margin:.8em 0}
summary{cursor:pointer;font-weight:600}
""" + "".join(f".s-{s}{{background:{c}}}" for s, c in _COLOURS.items())


def _esc(value: Any) -> str:
    """``value`` masked and escaped: every piece of text goes on a page through here (the finished page
    is not masked as a whole: a rule like ``AUTH <word>`` would eat into its markup)."""
    return html.escape(mask_text(str(value)), quote=True)


def _chip(status: str) -> str:
    return f"<span class='chip s-{_esc(status)}'>{_esc(status)}</span>"


def _page_href(outcome: NotebookOutcome, out_dir: Path, cell: str | None = None) -> str | None:
    if (out_dir / "html" / f"{outcome.name}.html").exists():
        return f"html/{outcome.name}.html" + (f"#cell-id={cell}" if cell else "")
    if outcome.output is not None and outcome.output.exists():
        return f"notebooks/{outcome.output.name}"  # stopped notebooks are kept, not rendered
    return None


def _link(text: str, href: str | None) -> str:
    return f"<a href='{_esc(href)}'>{_esc(text)}</a>" if href else _esc(text)


def _checks_or_run(outcome: NotebookOutcome) -> list[dict[str, Any]]:
    """The notebook's checks, or one pseudo-check for a notebook that showed none (it broke)."""
    return outcome.checks() or [
        {
            "notebook": outcome.name,
            "name": "run",
            "status": outcome.status.value,
            "evidence": outcome.error or "the notebook recorded no report",
            "data": {},
        }
    ]


def _banner(summary: RunSummary) -> str:
    verdict = summary.verdict.value
    counts = summary.counts()
    failing, warnings = counts["FAIL"] + counts["ERROR"], counts["WARN"]
    total = sum(counts.values())
    if summary.stopped_by:
        headline = f"stopped by {summary.stopped_by}: partial report"
    elif verdict in _FAILING:
        broke = [o.name for o in summary.outcomes if o.status is Status.ERROR and not o.checks()]
        headline = f"{failing} of {total} checks failed" if failing else ""
        if broke:
            headline += ("; " if headline else "") + f"{len(broke)} notebook(s) could not run"
    elif verdict == "WARN":
        headline = f"{warnings} warning{'s' if warnings != 1 else ''}, nothing failed"
    else:
        headline = f"all {total} checks passed" + (f" ({counts['SKIP']} skipped)" if counts["SKIP"] else "")
    return (
        f"<div class='banner s-{verdict}'>{verdict} — {_esc(headline)}"
        f"<small>exit {exit_code(summary.verdict)} · {_esc(mask_text(str(summary.target.get('description', ''))))}"
        f"</small></div>"
    )


def _check_rows(rows: Iterable[tuple[NotebookOutcome, Mapping[str, Any]]], out_dir: Path) -> str:
    out = []
    for outcome, check in rows:
        status = str(check["status"])
        cell = outcome.check_cells.get((str(check["name"]), status))
        note = " <span class='muted'>(timing only: does not change the verdict)</span>" if check.get("timing") else ""
        out.append(
            f"<tr><td>{_chip(status)}</td><td>{_link(outcome.name, _page_href(outcome, out_dir))}</td>"
            f"<td>{_link(str(check['name']), _page_href(outcome, out_dir, cell))}</td>"
            f"<td>{_esc(check['evidence'])}{note}</td></tr>"
        )
    return "<table><tr><th>status</th><th>notebook</th><th>check</th><th>evidence</th></tr>" + "".join(out) + "</table>"


def write_html(summary: RunSummary, out_dir: Path) -> None:
    """``report.html`` (see the module docstring), linking to each notebook rendered without code inputs."""
    for outcome in summary.outcomes:
        rendered = out_dir / "html" / f"{outcome.name}.html"
        if outcome.stopped:  # not rendered (the budget is spent); a page of an earlier run must not stand in
            rendered.unlink(missing_ok=True)
        elif not rendered.exists():
            render_html(outcome, out_dir)
    cause = find_root_cause(summary)
    ordered = sorted(summary.outcomes, key=lambda o: -o.status.rank)  # failures first, run order kept
    failing = [(o, c) for o in ordered for c in _checks_or_run(o) if c["status"] in _FAILING]
    warnings = [(o, c) for o in ordered for c in _checks_or_run(o) if c["status"] == "WARN"]
    parts = [_banner(summary), "<main>"]
    started = human_time(summary.started_at) if summary.started_at else summary.started
    parts.append(
        f"<p class='muted'>Started {_esc(started)}, took {_esc(human_duration(summary.elapsed_seconds))}"
        + (f"; run <code>{_esc(summary.run_id)}</code>" if summary.run_id else "")
        + "</p>"
    )
    if summary.parameters.get("show_session_ids"):
        parts.append(
            "<p><b>This report names whole session ids</b> (<code>--show-session-ids</code>): each "
            "opens that session's terminal, so share it with care.</p>"
        )
    if cause is not None:
        explained = [(o, c) for o, c in failing if cause.explains(c)]
        links = ", ".join(
            _link(
                f"{o.name}: {c['name']}", _page_href(o, out_dir, o.check_cells.get((str(c["name"]), str(c["status"]))))
            )
            for o, c in explained
        )
        parts.append(
            f"<div class='cause'><p><b>Root cause: <code>{_esc(cause.code)}</code></b> — "
            f"{_esc(cause.remedy)}</p><p class='muted'>{_esc(cause.evidence)}</p>"
            f"<p>{len(cause.checks)} failing checks in {len(cause.notebooks)} notebook(s) come from it: "
            f"{links}</p></div>"
        )
        failing = [(o, c) for o, c in failing if not cause.explains(c)]
        if failing:
            parts.append("<h2>Other failures</h2>" + _check_rows(failing, out_dir))
    elif failing:
        parts.append("<h2>Failures</h2>" + _check_rows(failing, out_dir))
    if warnings:
        parts.append("<h2>Warnings</h2>" + _check_rows(warnings, out_dir))
    rows = []
    for outcome in ordered:
        counts = {s.value: 0 for s in Status}
        for check in outcome.checks():
            counts[str(check["status"])] = counts.get(str(check["status"]), 0) + 1
        shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or _esc(outcome.error or "no checks")
        rows.append(
            f"<tr><td>{_chip(outcome.status.value)}</td>"
            f"<td>{_link(outcome.name, _page_href(outcome, out_dir))}</td><td>{_esc(shown)}</td>"
            f"<td class='num'>{_esc(human_duration(outcome.elapsed_seconds))}</td></tr>"
        )
    parts.append(
        "<h2>Notebooks</h2><table><tr><th>verdict</th><th>notebook</th><th>checks</th>"
        "<th>time</th></tr>" + "".join(rows) + "</table>"
    )
    plots = [(o, caption, png) for o in summary.outcomes for caption, png in o.plots]
    if plots:
        parts.append(
            "<h2>Plots</h2>"
            + "".join(
                f"<figure><img alt='{_esc(o.name)}: {_esc(caption)}' src='data:image/png;base64,{png}'>"
                f"<figcaption>{_link(o.name, _page_href(o, out_dir))}: {_esc(caption)}</figcaption></figure>"
                for o, caption, png in plots
            )
        )
    everything = [(o, c) for o in summary.outcomes for c in _checks_or_run(o)]
    parts.append(
        f"<details><summary>All {len(everything)} checks</summary>{_check_rows(everything, out_dir)}</details></main>"
    )
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>labsession health: {summary.verdict.value}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )
    (out_dir / "report.html").write_text(page, encoding="utf-8")


def write_outputs(summary: RunSummary, out_dir: Path) -> None:
    """summary.json, junit.xml and report.html (+ html/ pages) into ``out_dir``."""
    write_summary(summary, out_dir / "summary.json")
    write_junit(summary, out_dir / "junit.xml")
    write_html(summary, out_dir)
