"""How a runbook notebook shows its steps and its conclusion (HTML with a text fallback)."""

from __future__ import annotations

import html

from ..checks import CHECKS_META, Report, Status
from ..runbooks.base import Diagnosis
from .display import display_bundle, show_checks, show_table

__all__ = ["plot_step_samples", "show_cause", "show_samples", "show_step", "show_step_rows"]


def show_step(report: Report, *names: str) -> None:
    """Show the checks called ``names`` (in report order), or say the step did not run."""
    picked = [c for c in report if c.name in names]
    if picked:
        show_checks(picked)
    else:
        display_bundle({"text/plain": f"(step {', '.join(names)} did not run)"})


def show_samples(report: Report) -> None:
    """The ``shared store`` step's answers: which stores the instances named, how often."""
    for check in report:
        if check.name == "shared store" and check.data.get("stores"):
            rows = [{"store (run_id or endpoint)": k, "answers": n} for k, n in check.data["stores"].items()]
            show_table(
                rows,
                title=f"{check.data.get('samples', 0)} diagnostics samples, "
                f"instances: {', '.join(check.data.get('instances', []))}",
            )


def show_cause(diagnosis: Diagnosis) -> None:
    """The conclusion in large type: the cause code and what to do about it."""
    colour = "#1a7f37" if diagnosis.healthy else "#cf222e"
    status = Status.PASS if diagnosis.healthy else Status.FAIL
    body = (
        f"<div style='border-left:6px solid {colour};padding:0.4em 1em'>"
        f"<p style='font-size:1.3em;margin:0'><b>Cause: <code>{html.escape(diagnosis.cause)}</code></b></p>"
        f"<p style='margin:0.4em 0 0 0'><b>Remedy:</b> {html.escape(diagnosis.remedy)}</p></div>"
    )
    display_bundle(
        {"text/html": body, "text/plain": f"{status.value} cause: {diagnosis.cause}\nremedy: {diagnosis.remedy}"},
        {CHECKS_META: [{"name": "cause", "status": c.status.value} for c in diagnosis.report if c.name == "cause"]},
    )


def show_step_rows(report: Report, name: str, key: str, title: str) -> None:
    """The rows a step keeps in ``data[key]`` (a list of dicts, or a dict of name -> count) as a table."""
    for check in report:
        rows = check.data.get(key) if check.name == name else None
        if isinstance(rows, dict):
            rows = [{"name": k, "count": v} for k, v in rows.items()]
        if rows:
            show_table(rows, title=title)


def plot_step_samples(report: Report, name: str, key: str = "samples_ms", *, limit: str = "limit_ms") -> None:
    """A line of the round trips a step kept in ``data[key]`` (ms), with its limit; nothing without samples."""
    check = next((c for c in report if c.name == name), None)
    samples = check.data.get(key) if check is not None else None
    if not samples:
        return
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.plot(samples, marker=".", linewidth=0.8, label="PING")
    if check is not None and check.data.get(limit) is not None:
        ax.axhline(check.data[limit], color="tab:red", linestyle=":", label="limit")
    ax.set_xlabel("PING number")
    ax.set_ylabel("round trip, ms")
    ax.legend(loc="upper right")
    plt.show()
    plt.close(fig)
