"""``labsession health``: run the diagnostic notebooks (and registered runbooks) headless, in parallel.

Targets: ``--embedded`` starts one embedded Redis and two reference backend instances shared
by every notebook, handed over through environment variables (never parameters, which
papermill writes into the saved notebooks); otherwise the Redis URL is read from
``$REDIS_URL`` (``--redis-url-env`` names another variable) and backends from the repeatable
``--backend-url``. A missing variable is an error (exit 2), never a switch to an embedded Redis.

Which notebooks: :func:`labsession.runner.registry.registry` (``--only NAME`` picks some).
They run through papermill's Python API in worker threads (each in its own kernel; a kernel
start costs about a second of CPU, so more workers than cores only help while notebooks wait
on the network).

``--budget`` (seconds, counted from the start of the run, target setup included) is a hard bound:
when it is spent, every notebook still running has its kernel killed (its process group, SIGKILL)
and is reported as a FAIL check saying it did not finish within the budget and on which cell; the
reports are still written (a stopped notebook is kept as far as it ran, not rendered to HTML) and
the process exits within :data:`STOP_GRACE_SECONDS` after the budget (exit 1, or 2 when a check
was ERROR). Notebooks still waiting for a worker then never start.

``--out DIR`` keeps the executed notebooks, ``report.html`` (no code inputs), ``summary.json``
(every check with its status and evidence) and ``junit.xml``.

Exit codes: 0 everything passed (WARN allowed), 1 a check failed, 2 a notebook could not run
(or a check was ERROR, or the target could not be set up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from ..checks import EXIT_COULD_NOT_RUN, Report, Status, exit_code, worst
from ..embedded.target import embedded_env, start_embedded_target
from ..errors import LabSessionError
from ..masking import get_logger, mask_text, redact
from .executor import Execution, StoppedKernelFilter, declared_parameters, execute
from .history import History, RunInProgress, RunLock, default_history_path
from .monitoring import NAGIOS_UNKNOWN, nagios_code, nagios_line, nagios_unknown, write_prometheus
from .notify import deliver, shown_url, verdict_event
from .registry import HealthNotebook, registry
from .report import find_root_cause, human_duration, render_html, write_outputs
from .results import NotebookOutcome, RunSummary, iso_utc
from .rundirs import new_run_id, point_latest, prune_runs

__all__ = ["STOP_GRACE_SECONDS", "HealthOptions", "NotebookOutcome", "RunSummary", "health", "run_health"]

log = get_logger(__name__)

#: Seconds past ``--budget`` within which ``labsession health`` exits, counted from its start: enough to
#: kill the kernels still running, let their notebooks be saved, write the reports and stop the target.
STOP_GRACE_SECONDS = 5.0
#: Seconds :func:`run_health` waits, after killing the kernels still running at the budget, for their
#: threads to save the notebooks as far as they ran (nbclient notices a dead kernel within a second).
SAVE_WAIT_SECONDS = 2.0
_SUFFIX = {Status.PASS: "ok", Status.WARN: "warn", Status.SKIP: "skip", Status.FAIL: "FAIL", Status.ERROR: "ERROR"}


# -- executing one notebook ------------------------------------------------------------------


def _unfinished(execution: Execution, notebooks_dir: Path) -> NotebookOutcome:
    """The outcome of a notebook whose thread never reported: no reports, its output file if any."""
    outcome = NotebookOutcome(execution.entry.name, execution.entry.path)
    output = notebooks_dir / f"{execution.entry.name}.ipynb"
    outcome.output = output if execution.began_at is not None and output.exists() else None
    outcome.elapsed_seconds = 0.0 if execution.began_at is None else time.monotonic() - execution.began_at
    return outcome


def execute_one(
    entry: HealthNotebook,
    out_dir: Path,
    parameters: Mapping[str, Any],
    *,
    cell_timeout: float,
    html_dir: Path | None = None,
    execution: Execution | None = None,
) -> NotebookOutcome:
    """Execute ``entry`` with papermill (only the parameters it declares) and read its verdict back;
    with ``html_dir``, also render it without code inputs there (while other notebooks still run).

    ``execution`` lets another thread see the cell running and kill the kernel (:meth:`Execution.stop`).
    """
    execution = execution or Execution(entry)
    outcome = NotebookOutcome(entry.name, entry.path)
    merged = {**parameters, **entry.parameters}
    try:
        declared = declared_parameters(entry.file)
    except Exception as exc:  # unreadable or not a notebook
        outcome.error = f"could not run: {type(exc).__name__}: {mask_text(str(exc))[:400]}"
        return outcome
    executed = execute(
        entry.file,
        out_dir / f"{entry.name}.ipynb",
        {k: v for k, v in merged.items() if k in declared},
        cell_timeout=cell_timeout,
        execution=execution,
    )
    outcome.output, outcome.reports, outcome.error = executed.output, executed.reports, executed.error
    outcome.elapsed_seconds = executed.elapsed_seconds
    if outcome.reports:
        outcome.status = worst(Status(report.get("verdict", "ERROR")) for report in outcome.reports)
        if outcome.error and not outcome.error.startswith("CheckFailed") and outcome.status is not Status.ERROR:
            outcome.status = Status.ERROR  # it broke after reporting
    else:
        outcome.status = Status.ERROR
        outcome.error = outcome.error or "the notebook recorded no report"
    if html_dir is not None and not execution.stopped.is_set():  # a stopped one is not rendered at all
        render_html(outcome, html_dir)
    return outcome


# -- the run ---------------------------------------------------------------------------------


class _Progress:
    """One line per finished notebook on a terminal; silent otherwise."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.enabled = stream.isatty()
        self.lock = threading.Lock()

    def started(self, names: Sequence[str]) -> None:
        if self.enabled:
            print(
                f"labsession health: running {self.total} notebooks ({', '.join(names)})", file=self.stream, flush=True
            )

    def finished(self, outcome: NotebookOutcome) -> None:
        with self.lock:
            self.done += 1
            if self.enabled:
                print(
                    f"  [{self.done}/{self.total}] {outcome.name:<22} {outcome.status.value:<5} "
                    f"{outcome.elapsed_seconds:5.1f} s",
                    file=self.stream,
                    flush=True,
                )


def _close_thread_loop() -> None:
    """Close the event loop nbclient left set on this thread (cancelling what a killed kernel left pending)."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return
    if loop.is_running() or loop.is_closed():
        return
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _stopped_outcome(
    execution: Execution, budget: float, done: NotebookOutcome | None, signal_name: str | None = None
) -> NotebookOutcome:
    """The outcome of a notebook stopped before it finished (after any report it showed): at the
    budget a FAIL check saying so; by a signal (``signal_name``) an ERROR check, since nothing was
    found wrong with the target, the run was only cut short."""
    entry = execution.entry
    outcome = done or NotebookOutcome(entry.name, entry.path)
    report = Report(entry.name)
    cell = None if execution.cell is None else execution.cell + 1
    if signal_name:
        where = " (it never started)" if execution.began_at is None else execution.where()
        message = f"stopped by {signal_name} before it finished{where}"
        report.check("finished", Status.ERROR, message, signal=signal_name, cell=cell)
    else:
        message = f"did not finish within the budget of {budget:g} s{execution.where()}"
        report.check("finished within the budget", Status.FAIL, message, budgetSeconds=budget, cell=cell)
    outcome.reports = [*outcome.reports, report.to_dict()]
    outcome.stopped = True
    outcome.status = worst([report.verdict, *(Status(r.get("verdict", "ERROR")) for r in outcome.reports)])
    outcome.error = message
    return outcome


def run_health(
    entries: Sequence[HealthNotebook],
    parameters: Mapping[str, Any],
    out_dir: Path,
    *,
    jobs: int,
    cell_timeout: float,
    budget: float,
    target: dict[str, Any],
    render: bool = False,
    on_done: Callable[[NotebookOutcome], None] | None = None,
    started: float | None = None,
    stop: threading.Event | None = None,
    stopped_by: Callable[[], str | None] = lambda: None,
) -> RunSummary:
    """Execute ``entries`` with ``parameters`` in ``jobs`` threads, within ``budget`` seconds of ``started``.

    ``started`` is a :func:`time.monotonic` reading (default: now). The budget is a hard bound: at
    its end every notebook still running has its kernel killed and becomes a FAIL check saying it did
    not finish within the budget (and on which cell), and notebooks not started yet never start; the
    call returns about :data:`SAVE_WAIT_SECONDS` after the budget at most. Worker threads are daemons,
    so none can hold the process up.

    ``stop`` set (by a signal handler: ``stopped_by()`` names the signal) ends the run the same way
    at once, each notebook cut short an ERROR check instead of a FAIL.
    """
    started = time.monotonic() if started is None else started
    deadline = started + budget
    notebooks_dir = out_dir / "notebooks"
    notebooks_dir.mkdir(parents=True, exist_ok=True)
    executions = [Execution(entry) for entry in entries]
    papermill_log = logging.getLogger("papermill")
    if not any(isinstance(f, StoppedKernelFilter) for f in papermill_log.filters):
        papermill_log.addFilter(StoppedKernelFilter())
    waiting: queue.SimpleQueue[Execution] = queue.SimpleQueue()
    for execution in executions:
        waiting.put(execution)
    finished: queue.SimpleQueue[tuple[Execution, NotebookOutcome]] = queue.SimpleQueue()
    spent = threading.Event()

    def work() -> None:
        try:
            while not spent.is_set():
                try:
                    execution = waiting.get_nowait()
                except queue.Empty:
                    return
                execution.began_at = time.monotonic()
                try:
                    outcome = execute_one(
                        execution.entry,
                        notebooks_dir,
                        parameters,
                        cell_timeout=cell_timeout,
                        html_dir=out_dir if render else None,
                        execution=execution,
                    )
                except Exception as exc:  # execute_one catches what papermill raises; this is a last resort
                    outcome = NotebookOutcome(
                        execution.entry.name, execution.entry.path, error=f"could not run: {type(exc).__name__}"
                    )
                finished.put((execution, outcome))
        finally:
            _close_thread_loop()

    if stop is not None and stop.is_set():
        spent.set()  # stopped before it began: no notebook starts
    for index in range(max(1, min(jobs, len(executions)))):
        threading.Thread(target=work, name=f"labsession-health-{index}", daemon=True).start()

    outcomes: dict[str, NotebookOutcome] = {}

    def record(execution: Execution, outcome: NotebookOutcome) -> None:
        if execution.interrupted:  # killed (or refused a kernel) at the budget: say so, keep what it showed
            outcome = _stopped_outcome(execution, budget, outcome, stopped_by())
        outcomes[execution.entry.name] = outcome
        if on_done:
            on_done(outcome)

    # Without a stop event the wait is capped only because a wait of inf seconds is an OverflowError;
    # with one, a signal handler's event is seen within a quarter of a second.
    cap = 0.25 if stop is not None else 60.0
    while (
        len(outcomes) < len(executions)
        and (left := deadline - time.monotonic()) > 0
        and not (stop is not None and stop.is_set())
    ):
        with contextlib.suppress(queue.Empty):
            record(*finished.get(timeout=min(left, cap)))
    if len(outcomes) < len(executions):
        spent.set()
        running = [e for e in executions if e.entry.name not in outcomes]
        for execution in running:
            execution.stop()
        # A killed kernel is noticed by nbclient within about a second; papermill then saves the
        # notebook as far as it ran. Keep killing meanwhile: a kernel may have been mid-launch.
        until = time.monotonic() + SAVE_WAIT_SECONDS
        while time.monotonic() < until and any(
            e.began_at is not None and e.entry.name not in outcomes for e in running
        ):
            with contextlib.suppress(queue.Empty):
                record(*finished.get(timeout=0.1))
            for execution in running:
                execution.stop()
        for execution in running:
            if execution.entry.name not in outcomes:  # never started, or its thread is still busy: leave it
                execution.stop()
                execution.interrupted = True
                record(execution, _unfinished(execution, notebooks_dir))
    ordered = [outcomes[e.name] for e in entries if e.name in outcomes]
    elapsed = time.monotonic() - started
    began = time.time() - elapsed  # the wall time ``started`` stands for (target setup included)
    return RunSummary(
        target,
        ordered,
        iso_utc(began),
        elapsed,
        started_at=began,
        finished_at=time.time(),
        parameters=dict(parameters),
        stopped_by=stopped_by() if stop is not None and stop.is_set() else None,
    )


def _print_verdict(summary: RunSummary, stream: TextIO) -> None:
    """The terminal's verdict: a root cause once at the top, then each notebook with what went wrong."""
    width = max((len(o.name) for o in summary.outcomes), default=8)
    if description := summary.target.get("description"):
        print(f"labsession health: {mask_text(str(description))}", file=stream)
    if summary.stopped_by:
        print(
            f"stopped by {summary.stopped_by}: notebooks still running were stopped; the report is partial", file=stream
        )
    cause = find_root_cause(summary)
    if cause is not None:
        print(f"root cause: {cause.sentence()}", file=stream)
    for outcome in summary.outcomes:
        checks = outcome.checks()
        bad = [c for c in checks if c["status"] in ("FAIL", "ERROR", "WARN")]
        print(
            f"{outcome.status.value:<5}  {outcome.name:<{width}}  {len(checks)} checks, "
            f"{human_duration(outcome.elapsed_seconds)}",
            file=stream,
        )
        explained = [c for c in bad if cause is not None and cause.explains(c)]
        if cause is not None and explained:
            names = ", ".join(str(c["name"]) for c in explained)
            print(f"       {explained[0]['status']:<5} {names}: {cause.code} (the root cause above)", file=stream)
        for check in bad:
            if check not in explained:
                print(f"       {check['status']:<5} {check['name']}: {str(check['evidence'])[:200]}", file=stream)
        if (
            outcome.error
            and not outcome.error.startswith("CheckFailed")
            and outcome.error not in {c["evidence"] for c in bad}
        ):
            print(f"       {outcome.error[:300]}", file=stream)
    code = exit_code(summary.verdict)
    print(f"verdict: {summary.verdict.value} ({human_duration(summary.elapsed_seconds)}, exit {code})", file=stream)
    stream.flush()


@dataclass(frozen=True, slots=True)
class HealthOptions:
    """What one ``labsession health`` run does (the command line's options, parsed).

    Times are in seconds; ``out`` ``None`` keeps no files (else each run goes into its own folder
    there, ``keep`` of them kept, 0 for all); ``jobs`` 0 means one worker per notebook, at most 6;
    ``only`` empty runs every registered notebook. The run is recorded in ``history`` (default
    :func:`~labsession.runner.history.default_history_path`) unless ``no_history``; a run already
    holding that history makes this one wait up to ``lock_wait`` seconds, then stop (exit 2).
    """

    embedded: bool = False
    redis_url_env: str = "REDIS_URL"
    backend_urls: tuple[str, ...] = ()
    read_write: bool = False
    out: Path | None = None
    only: tuple[str, ...] = ()
    jobs: int = 0
    cell_timeout: float = 120.0
    budget: float = 300.0
    timeout: float = 5.0
    #: Findings name whole session keys (notebooks that declare ``show_session_ids``); masked by default.
    show_session_ids: bool = False
    history: Path | None = None
    no_history: bool = False
    keep: int = 30
    #: Runs older than this many days are forgotten by the history (0 keeps every run).
    history_days: float = 90.0
    lock_wait: float = 0.0
    #: The node_exporter textfile to write the run's metrics to (atomically), or ``None``.
    prometheus: Path | None = None
    #: ``text`` (a table), ``nagios`` (one plugin line; exit codes 0-3) or ``json`` (summary.json on stdout).
    output_format: str = "text"
    #: Where to POST a JSON event when the verdict changes (needs the history), or ``None``.
    notify_url: str | None = None
    #: The environment variable holding ``notify_url`` instead (keeps a webhook token out of ``ps``), or ``None``.
    notify_url_env: str | None = None


def _entries(only: Sequence[str]) -> list[HealthNotebook] | str:
    """The notebooks to run, or why there are none to run."""
    entries = registry()
    if only:
        known = {e.name for e in entries}
        unknown = [n for n in only if n not in known]
        if unknown:
            return f"unknown notebook {unknown[0]!r}; known: {', '.join(sorted(known))}"
        entries = [e for e in entries if e.name in only]
    missing = [e for e in entries if not e.file.exists()]
    if missing:
        return f"notebook file not found: {missing[0].file}"
    return entries


def _lock_path(args: HealthOptions, history: Path | None) -> Path | None:
    """The lock two runs sharing a history (or, without one, an ``--out`` folder) take in turn."""
    if history is not None:
        return history.with_name(history.name + ".lock")
    if args.out is not None:
        return args.out / ".labsession-health.lock"
    return None


def _execute(
    args: HealthOptions, entries: Sequence[HealthNotebook], run_id: str, run_dir: Path | None, interrupt: _Stop
) -> RunSummary:
    """Set the target up, run ``entries`` into ``run_dir`` (a scratch folder if ``None``), write the
    files, stop the target. Raises :class:`_CannotRun` when there is no target to check."""
    started = time.monotonic()  # the budget counts setting up the target too
    stop: Callable[[], None] | None = None
    saved_env: dict[str, str | None] = {}
    parameters: dict[str, Any] = {
        "timeout_seconds": float(args.timeout),
        "budget_seconds": float(max(5.0, args.budget - 10.0)),
        "show_session_ids": bool(args.show_session_ids),
    }
    try:
        if args.embedded:
            if args.read_write:
                print(
                    "labsession health: --read-write changes nothing with --embedded: an embedded target is a "
                    "throwaway store, so probe sessions are always written there",
                    file=sys.stderr,
                )
            redis_url, backend_urls, stop = start_embedded_target(2)
            env = embedded_env(redis_url, backend_urls)
            parameters.update(embedded=True, backend_urls=[], read_only=True)
            target = {
                "description": f"embedded Redis and {len(backend_urls)} reference backends, shared",
                "embedded": True,
                "endpoint": "embedded",
                "backends": backend_urls,
            }
        else:
            variable = args.redis_url_env
            if not os.environ.get(variable, "").strip():
                raise _CannotRun(
                    f"{variable} is not set; set it to the Redis URL "
                    f"(rediss://default:****@host:6379) or use --embedded for an offline run"
                )
            from ..settings import Settings

            endpoint = Settings.from_url(os.environ[variable].strip()).endpoint
            env = {}
            parameters.update(
                embedded=False,
                backend_urls=list(args.backend_urls),
                read_only=not args.read_write,
                redis_url_env=variable,
            )
            target = {
                "description": f"Redis at {endpoint} (from ${variable}), "
                f"{len(args.backend_urls)} backend URL(s), "
                f"{'read-write' if args.read_write else 'read-only'}",
                "embedded": False,
                "endpoint": endpoint,
                "backends": list(args.backend_urls),
            }
        for name, value in env.items():  # kernels inherit this process's environment
            saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        jobs = args.jobs or min(len(entries), 6)
        progress = _Progress(len(entries), sys.stderr)
        progress.started([e.name for e in entries])
        with tempfile.TemporaryDirectory(prefix="labsession-health-") as scratch:
            out_dir = run_dir or Path(scratch)
            out_dir.mkdir(parents=True, exist_ok=True)
            summary = run_health(
                entries,
                parameters,
                out_dir,
                jobs=jobs,
                cell_timeout=args.cell_timeout,
                budget=args.budget,
                target=target,
                render=run_dir is not None,
                on_done=progress.finished,
                started=started,
                stop=interrupt.event,
                stopped_by=interrupt.name,
            )
            summary.run_id = run_id
            if run_dir is not None:
                write_outputs(summary, run_dir)
    finally:
        for name, old in saved_env.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        if stop is not None:
            stop()
    return summary


class _Stop:
    """SIGTERM or SIGINT (Ctrl-C) ends a run early, the way the budget does, with a partial report and
    verdict ERROR; a second one ends the process at once (its children die with it)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.caught: str | None = None
        self._previous: dict[int, Any] = {}

    def name(self) -> str | None:
        return self.caught

    def _handle(self, signum: int, frame: Any) -> None:
        self.caught = self.caught or signal.Signals(signum).name
        self.event.set()
        signal.signal(signum, signal.SIG_DFL)

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():  # only there can handlers be set
            for each in self.SIGNALS:
                self._previous[each] = signal.signal(each, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for each, handler in self._previous.items():
            signal.signal(each, handler)
        self._previous.clear()


class _CannotRun(Exception):
    """The run cannot check anything (the message says why): exit 2, or UNKNOWN for Nagios."""


def _cannot_run(args: HealthOptions, message: str) -> int:
    if args.output_format == "nagios":
        print(nagios_unknown(message), flush=True)
        return NAGIOS_UNKNOWN
    print(f"labsession health: {mask_text(message)}", file=sys.stderr)
    return EXIT_COULD_NOT_RUN


def _notify(args: HealthOptions, summary: RunSummary, history: History, run_dir: Path | None) -> None:
    """POST the verdict change, if any, to ``--notify-url`` and remember what was announced."""
    assert args.notify_url
    state = history.alert_state()
    if state is not None:
        before = Status(state[0])
    else:
        previous = history.previous(summary.run_id)
        before = Status(previous.verdict) if previous is not None else Status.PASS
    if summary.verdict is before:
        if state is None:
            history.set_alert_state(before.value, summary.run_id)
        return
    report = str(run_dir / "report.html") if run_dir is not None else None
    delivery = deliver(args.notify_url, verdict_event(summary, before, report=report))
    if delivery.ok:
        history.set_alert_state(summary.verdict.value, summary.run_id)
    else:
        print(
            f"labsession health: could not deliver the {before.value} → {summary.verdict.value} alert to "
            f"{shown_url(args.notify_url)} ({delivery.problem} after {delivery.attempts} attempts); the next "
            f"run tries again",
            file=sys.stderr,
        )


def _keep(
    args: HealthOptions, summary: RunSummary, history_path: Path | None, root: Path | None, run_dir: Path | None
) -> None:
    """What a finished run leaves behind: the latest link and retention, the history, the alert, the
    Prometheus file. A failure of one is said on stderr and does not lose the others or the verdict."""
    if root is not None and run_dir is not None:
        point_latest(root, run_dir)
        prune_runs(root, args.keep, current=run_dir)
    if history_path is not None:
        try:
            with History(history_path) as history:
                history.record(summary, out_dir=run_dir, keep_days=args.history_days)
                if args.notify_url:
                    _notify(args, summary, history, run_dir)
        except (OSError, sqlite3.Error) as exc:
            print(
                f"labsession health: could not record the run in {history_path}: {mask_text(str(exc))}", file=sys.stderr
            )
    if args.prometheus is not None:
        try:
            write_prometheus(summary, args.prometheus)
        except OSError as exc:
            print(f"labsession health: could not write {args.prometheus}: {mask_text(str(exc))}", file=sys.stderr)


def health(options: HealthOptions) -> int:
    """Run the health notebooks as ``options`` say, keep what the options ask for, print the verdict
    (a table, one Nagios line, or JSON); return the exit code (Nagios' codes with ``--format nagios``)."""
    args = options
    entries = _entries(args.only)
    if isinstance(entries, str):
        return _cannot_run(args, entries)
    if args.notify_url_env:
        url = os.environ.get(args.notify_url_env, "").strip()
        if not url:
            return _cannot_run(
                args, f"--notify-url-env names {args.notify_url_env}, which is not set; export the webhook URL in it"
            )
        args = replace(args, notify_url=url, notify_url_env=None)
    if args.notify_url and args.no_history:
        return _cannot_run(
            args, "--notify-url needs the history (it compares with the verdict last announced); drop --no-history"
        )
    history_path = None if args.no_history else (args.history or default_history_path())
    lock_path = _lock_path(args, history_path)
    lock = RunLock(lock_path, args.lock_wait) if lock_path is not None and os.name == "posix" else None
    try:
        if lock is not None:
            lock.acquire()
    except (RunInProgress, OSError) as exc:
        return _cannot_run(args, str(exc))
    try:
        run_id = new_run_id()
        root = args.out.resolve() if args.out is not None else None
        run_dir = root / run_id if root is not None else None
        with _Stop() as interrupt:
            try:
                summary = _execute(args, entries, run_id, run_dir, interrupt)
            except (_CannotRun, LabSessionError) as exc:
                return _cannot_run(args, str(exc))
            _keep(args, summary, history_path, root, run_dir)
    finally:
        if lock is not None:
            lock.release()
    if args.output_format == "nagios":
        print(nagios_line(summary), flush=True)
        return nagios_code(summary.verdict)
    if args.output_format == "json":
        print(json.dumps(redact(summary.to_dict()), indent=2, default=str), flush=True)
    else:
        _print_verdict(summary, sys.stdout)
    return exit_code(summary.verdict)
