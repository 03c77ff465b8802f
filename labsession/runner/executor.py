"""The one papermill executor: health runs and runbook runs execute notebooks through it.

It runs a notebook in its own kernel with the parameters its ``parameters`` cell declares (an
unknown name is refused, never injected: papermill writes names into code), gives the kernel
its working directory through nbclient rather than papermill's ``cwd`` (a process-wide
``os.chdir`` that races between threads), lets another thread see the running cell and kill
the kernel (:class:`Execution`), and reads the verdict back from the saved notebook
(:func:`reports_in`, the machine-readable reports every notebook displays).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import REPORT_MIME
from ..embedded.processes import die_with_parent
from ..errors import ConfigError
from ..masking import mask_text
from .registry import HealthNotebook

__all__ = [
    "KERNEL_NAME",
    "Executed",
    "Execution",
    "StoppedKernelFilter",
    "check_parameters",
    "declared_parameters",
    "error_in",
    "execute",
    "reports_in",
]

#: The Jupyter kernel every notebook runs in.
KERNEL_NAME = "python3"


def declared_parameters(path: Path) -> dict[str, Any]:
    """The parameters ``path``'s ``parameters`` cell declares: name -> papermill's description."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def reports_in(notebook: Any) -> list[dict[str, Any]]:
    """Every :data:`~labsession.checks.REPORT_MIME` report an executed notebook displayed, in order."""
    found: list[dict[str, Any]] = []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data") or {}
            if REPORT_MIME in data:
                report = data[REPORT_MIME]
                found.append(dict(report) if isinstance(report, Mapping) else json.loads(str(report)))
    return found


def error_in(notebook: Any) -> str | None:
    """The masked ``ename: evalue`` of the first error output, or ``None``."""
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if output.get("output_type") == "error":
                return mask_text(f"{output.get('ename')}: {output.get('evalue')}")[:500]
    return None


_current = threading.local()  # .execution: the _Execution a worker thread is running


class StoppedKernelFilter(logging.Filter):
    """Drops what nbclient logs (on papermill's logger) from a thread whose kernel the budget killed:
    "Kernel died while waiting for execute reply" is the kill itself, already reported as a FAIL."""

    def filter(self, record: logging.LogRecord) -> bool:
        execution = getattr(_current, "execution", None)
        return not (execution is not None and execution.stopped.is_set())


class Execution:
    """One notebook's execution as the coordinating thread sees it: its kernel, its cell, whether it was stopped.

    nbclient calls the hooks from the worker thread; :meth:`stop` is called from the coordinating
    thread and kills the kernel's process group (the kernel runs in a session of its own).
    """

    def __init__(self, entry: HealthNotebook) -> None:
        self.entry = entry
        self.began_at: float | None = None  # time.monotonic() when its thread took it
        self.cell: int | None = None  # 0-based index of the cell executing (or last executed)
        self.cells: int | None = None
        self.stopped = threading.Event()
        #: True once :meth:`stop` killed a live kernel or refused to start one.
        self.interrupted = False
        self._manager: Any = None
        #: The folder of the kernel's IPC sockets (POSIX), made when its kernel manager is; see :meth:`cleanup`.
        self.ipc_dir: str | None = None

    def on_notebook_start(self, notebook: Any, **_: Any) -> None:
        self.cells = len(notebook.cells)

    def on_cell_start(self, cell_index: int, **_: Any) -> None:
        self.cell = cell_index

    def manager_class(self) -> type[Any]:
        """nbclient's default ``AsyncKernelManager``, registering itself here and starting no kernel once stopped."""
        from jupyter_client.manager import AsyncKernelManager

        execution = self

        class TrackedKernelManager(AsyncKernelManager):
            def __init__(self, **kwargs: Any) -> None:
                if os.name == "posix":
                    # Unix sockets in a private folder instead of TCP ports on localhost: nothing else on
                    # the machine can connect to the kernel, no port can be taken meanwhile, and the
                    # kernel has no cause to warn that it "is running over TCP without encryption".
                    execution.ipc_dir = execution.ipc_dir or tempfile.mkdtemp(prefix="labsession-kernel-")
                    kwargs.setdefault("transport", "ipc")
                    kwargs.setdefault("ip", os.path.join(execution.ipc_dir, "k"))
                super().__init__(**kwargs)
                execution._manager = self

            # AsyncKernelManager itself redeclares the sync start_kernel as a coroutine function.
            async def start_kernel(self, **kwargs: Any) -> None:  # type: ignore[override]
                if execution.stopped.is_set():
                    execution.interrupted = True
                    raise RuntimeError("the time budget was spent before the kernel started")
                # start_kernel's keyword arguments reach Popen (jupyter_client documents it): the kernel
                # dies with this process even when it is killed with SIGKILL and cleans nothing up. Its
                # parent is this worker thread, which outlives every kernel it starts. SIGTERM, not
                # SIGKILL: a notebook kernel exits on it at once, except in the one round trip between
                # creating a probe session and shortening its life (labsession.notebook.run).
                preexec = die_with_parent(signal.SIGTERM)
                if preexec is not None:
                    kwargs.setdefault("preexec_fn", preexec)
                await super().start_kernel(**kwargs)

        return TrackedKernelManager

    def stop(self) -> None:
        """Mark stopped and SIGKILL the kernel's process group if it is alive (and reap it); safe to repeat."""
        self.stopped.set()
        provisioner = getattr(self._manager, "provisioner", None)
        process = getattr(provisioner, "process", None)  # jupyter_client's LocalProvisioner: a Popen
        if process is None or process.poll() is not None:
            return
        self.interrupted = True
        pgid = getattr(provisioner, "pgid", None)
        try:
            if pgid and pgid != os.getpgid(0):  # never our own group
                os.killpg(pgid, signal.SIGKILL)
            else:
                process.kill()
        except ProcessLookupError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.5)  # reap it: no zombie outlives the run

    def cleanup(self) -> None:
        """Remove the kernel's IPC socket folder (the kernel is gone by then)."""
        if self.ipc_dir is not None:
            shutil.rmtree(self.ipc_dir, ignore_errors=True)
            self.ipc_dir = None

    def where(self) -> str:
        """Where the notebook was stopped, as a parenthesis for the budget message."""
        if self.began_at is None:
            return " (it never started: every worker was busy)"
        if self.cell is None:
            return " (its kernel was still starting)"
        of = f" of {self.cells}" if self.cells else ""
        return f" (it was on cell {self.cell + 1}{of})"


def check_parameters(path: Path, parameters: Mapping[str, Any]) -> None:
    """Refuse a parameter ``path`` does not declare, naming the ones it does (a typo must not pass
    silently, and a name is written into code by papermill)."""
    declared = declared_parameters(path)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ConfigError(
            f"parameter {unknown[0]!r}",
            f"is not a parameter of {path.name}; its parameters are: {', '.join(sorted(declared))}",
        )


@dataclass(slots=True)
class Executed:
    """One finished execution: the saved ``output`` (``None`` if none was written), the reports it
    displayed, the first error (masked) or ``None``, and the wall time in seconds."""

    output: Path | None
    reports: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    elapsed_seconds: float = 0.0


def execute(
    source: Path,
    output: Path,
    parameters: Mapping[str, Any],
    *,
    cell_timeout: float,
    execution: Execution | None = None,
) -> Executed:
    """Execute ``source`` into ``output`` with ``parameters`` (each must be declared: see
    :func:`check_parameters`); never raises for a failing notebook, that is in the result."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    execution = execution or Execution(HealthNotebook(source.stem, str(source)))
    if execution.began_at is None:
        execution.began_at = time.monotonic()
    _current.execution = execution
    result = Executed(output)
    started = time.monotonic()
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=dict(parameters),
            kernel_name=KERNEL_NAME,
            execution_timeout=int(cell_timeout),
            progress_bar=False,
            log_output=False,
            resources={"metadata": {"path": str(source.parent)}},
            # The kernel's own log is not the run's output: jupyter_client interrupts every kernel it shuts
            # down, and the kernel logs that as an ERROR ("KeyboardInterrupt caught in kernel").
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            kernel_manager_class=execution.manager_class(),
            on_notebook_start=execution.on_notebook_start,
            on_cell_start=execution.on_cell_start,
        )
    except PapermillExecutionError:
        pass  # the saved notebook holds the error and, when it got there, the report
    except Exception as exc:
        result.error = f"could not run: {type(exc).__name__}: {mask_text(str(exc))[:400]}"
    finally:
        execution.cleanup()
    result.elapsed_seconds = time.monotonic() - started
    if output.exists():
        try:
            executed = nbformat.read(str(output), as_version=4)  # type: ignore[no-untyped-call,unused-ignore]
            result.reports = reports_in(executed)
            result.error = result.error or error_in(executed)
        except (OSError, ValueError) as exc:
            result.error = result.error or f"unreadable output notebook: {type(exc).__name__}"
    else:
        result.output = None
    return result
