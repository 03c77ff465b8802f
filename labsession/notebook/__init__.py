"""Helpers a diagnostic notebook (or runbook) calls: parameters, target, time budget, display, verdict.

A notebook's first cell after ``parameters`` calls ``await nb.start(title)``, which

1. validates the parameters the ``parameters`` cell declares (:mod:`.declared`: each one is
   written once, there, with its type, meaning and bounds; a name papermill injects that the
   cell does not declare stops the run):
   a wrong type, an unknown name or a value out of range stops the run with a clear
   :class:`~labsession.errors.ConfigError` naming the parameter;
2. resolves the target (:class:`Target`): the Redis URL is read from the environment
   variable the ``redis_url_env`` parameter names (credentials never travel as parameters,
   since papermill writes parameters into the saved notebook);
3. with ``embedded=True`` and no ``backend_urls``, uses an embedded target: the one a runner
   (``labsession health --embedded``, the test session) provides through two environment
   variables (:mod:`labsession.embedded.target`), or else its own embedded
   Redis and two reference backend instances, and says so at the top. ``embedded=None`` (the
   default) means an embedded target only for a person in JupyterLab (said loudly) or when a
   runner handed one over; a headless run uses the Redis ``redis_url_env`` names or stops;
4. starts the time budget (``budget_seconds``).

Write policy: ``read_only=True`` (the default) forbids writes to a real target; probes that
need a write SKIP with the reason. An embedded target is a throwaway store nobody else uses,
so probe sessions are always allowed there (:attr:`Target.writes_allowed`).

The notebook then records checks on ``run.report`` (directly or through :meth:`NotebookRun.attempt`,
which bounds a step by a timeout and the budget and turns failures into FAIL/ERROR checks),
shows tables with :func:`show_table` / :func:`show_checks`, and ends with
``await run.finish()``: the verdict is displayed as an HTML table with a text fallback and as
machine-readable JSON (:data:`~labsession.checks.REPORT_MIME`), the embedded target is
stopped, and :class:`~labsession.checks.CheckFailed` is raised on FAIL or ERROR so that
papermill exits non-zero.
"""

from __future__ import annotations

from .display import display_bundle, show_checks, show_report, show_table, show_text
from .run import Budget, NotebookRun, start
from .spec import COMMON_PARAMS, Param, validate_parameters
from .target import Target, resolve_target

__all__ = [
    "COMMON_PARAMS",
    "Budget",
    "NotebookRun",
    "Param",
    "Target",
    "display_bundle",
    "resolve_target",
    "show_checks",
    "show_report",
    "show_table",
    "show_text",
    "start",
    "validate_parameters",
]
