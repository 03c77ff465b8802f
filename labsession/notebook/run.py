"""One notebook execution (:class:`NotebookRun`): its parameters, target, time budget and report,
started by :func:`start` and ended by :meth:`NotebookRun.finish`."""

from __future__ import annotations

import asyncio
import html
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from ..checks import CheckResult, Report, Status
from ..errors import ConfigError, LabSessionError, RedisUnavailable
from ..masking import mask_text, redact
from ..probes.lifecycle import after_creation
from ..store.service import RedisService
from .declared import kernel_parameters
from .display import display_bundle, show_checks, show_report
from .spec import COMMON_PARAMS, Param, validate_parameters
from .target import Target, resolve_target

__all__ = ["Budget", "NotebookRun", "start"]

T = TypeVar("T")


class Budget:
    """A whole-notebook time budget of ``seconds`` (monotonic clock), started on creation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.monotonic() - self.started

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.seconds - self.elapsed)

    def cap(self, timeout: float) -> float:
        """``timeout`` shortened to what is left of the budget, in seconds."""
        return min(timeout, self.remaining())

    @property
    def spent(self) -> bool:
        return self.remaining() <= 0.0


class NotebookRun:
    """One notebook execution: validated ``params``, its :class:`Target`, a :class:`Budget` and a :class:`Report`."""

    def __init__(self, title: str, params: dict[str, Any], target: Target, budget: Budget) -> None:
        self.title = title
        self.params = params
        self.target = target
        self.budget = budget
        self.report = Report(title, facts={"target": target.to_dict(), "parameters": _safe_params(params)})
        self._finished = False
        self._redis: RedisService | None = None
        self._redis_failed = False
        self._shown = 0

    # -- steps -------------------------------------------------------------------------------

    @property
    def timeout(self) -> float:
        """The per-step timeout (``timeout_seconds``) capped by the remaining budget, in seconds."""
        return self.budget.cap(float(self.params.get("timeout_seconds") or 5.0))

    def check(self, name: str, status: Status | str, evidence: str, **data: Any) -> CheckResult:
        """Record one check on the report."""
        return self.report.check(name, status, evidence, **data)

    def add(self, results: CheckResult | Iterable[CheckResult]) -> list[CheckResult]:
        """Record check results a probe returned; returns them as a list."""
        items = [results] if isinstance(results, CheckResult) else list(results)
        self.report.extend(items)
        return items

    def show_new(self) -> None:
        """Show the checks recorded since the last call (the end of a notebook section)."""
        new = self.report.checks[self._shown :]
        self._shown = len(self.report.checks)
        if new:
            show_checks(new)

    def skip(self, name: str, reason: str) -> CheckResult:
        return self.check(name, Status.SKIP, reason)

    def needs_writes(self, name: str) -> bool:
        """True when writes are allowed; else records ``name`` as SKIP with the reason."""
        if self.target.writes_allowed:
            return True
        self.skip(name, self.target.write_refusal)
        return False

    def needs_backends(self, name: str) -> bool:
        """True when there is a backend URL; else records ``name`` as SKIP with the reason."""
        if self.target.backend_urls:
            return True
        self.skip(name, self.target.problem or "no backend URL given (parameter backend_urls)")
        return False

    async def attempt(
        self,
        name: str,
        make: Callable[[], Awaitable[T]],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> T | None:
        """Await ``make()`` bounded by ``timeout`` seconds (default ``timeout_seconds``) and the budget.

        Returns its result, or ``None`` after recording a check ``name``: FAIL when the target
        failed (unreachable store, no answer in time, a labsession error), ERROR when the
        budget was spent or the probe itself broke.
        """
        want = float(timeout if timeout is not None else self.params.get("timeout_seconds") or 5.0)
        allowed = self.budget.cap(want)
        if allowed <= 0:
            self.check(name, Status.ERROR, f"time budget of {self.budget.seconds:g} s spent before this step")
            return None
        try:
            async with asyncio.timeout(allowed):
                return await make()
        except RedisUnavailable as exc:
            self.check(name, Status.FAIL, str(exc), cause=exc.cause.value)
        except TimeoutError:
            if allowed < want:
                self.check(name, Status.ERROR, f"time budget of {self.budget.seconds:g} s ran out during this step")
            else:
                self.check(name, Status.FAIL, f"no answer within {allowed:.1f} s")
        except LabSessionError as exc:
            self.check(name, Status.FAIL, str(exc))
        except Exception as exc:
            self.check(name, Status.ERROR, f"probe error {type(exc).__name__}: {mask_text(str(exc))[:300]}")
        return None

    async def redis(self, name: str = "redis connection") -> RedisService | None:
        """The connected :class:`RedisService` of the target (opened once, closed by :meth:`finish`).

        ``None`` after recording ``name`` as FAIL (with the cause) when the store cannot be
        reached, or as SKIP when there is no Redis; later calls return ``None`` without a new check.
        """
        if self._redis is not None:
            return self._redis
        if self._redis_failed:
            return None
        self._redis_failed = True
        if self.target.settings is None:
            self.skip(name, self.target.problem or "no Redis URL")
            return None
        service = RedisService(self.target.settings)
        try:
            async with asyncio.timeout(max(0.05, self.budget.cap(self.target.settings.operation_timeout * 2))):
                await service.connect()
        except RedisUnavailable as exc:
            self.check(name, Status.FAIL, str(exc), cause=exc.cause.value)
            return None
        except TimeoutError:
            await service.aclose()
            self.check(
                name, Status.FAIL, f"no answer from Redis at {self.target.settings.endpoint} in time", cause="TIMEOUT"
            )
            return None
        self._redis_failed = False
        self._redis = service
        return service

    # -- end ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the embedded target this notebook started (if any)."""
        self.target.close()

    async def finish(self, *, raise_on_failure: bool = True) -> Report:
        """Show the verdict, stop the embedded target, raise :class:`CheckFailed` on FAIL or ERROR."""
        self.report.facts["elapsedSeconds"] = round(self.budget.elapsed, 3)
        if not self._finished:
            self._finished = True
            if self._redis is not None:
                await self._redis.aclose()
                self._redis = None
            await asyncio.to_thread(self.close)
        show_report(self.report)
        if raise_on_failure:
            self.report.raise_for_failures()
        return self.report

    def __repr__(self) -> str:
        return f"NotebookRun({self.title!r}, {self.target.describe()!r})"


#: Longest a kernel told to stop waits for a probe session's life to be shortened, seconds.
STOP_WAIT_SECONDS = 5.0
_stop_handler: list[Any] = []


def _exit_on_sigterm() -> None:
    """In a kernel, make SIGTERM end the process at once, except in the one round trip between creating
    a probe session and shortening its life (:func:`labsession.probes.lifecycle.after_creation`), which
    it waits for (at most :data:`STOP_WAIT_SECONDS`).

    A kernel that ``labsession health`` starts gets SIGTERM when the run dies, even by SIGKILL (it asks
    Linux for it: ``PR_SET_PDEATHSIG``). Dying then, before the SET, would leave the probe session to
    live the backend's whole session lifetime instead of two minutes at most.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    in_kernel = getattr(shell, "kernel", None) is not None
    if _stop_handler or not in_kernel or threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, frame: Any) -> None:
        code = 128 + signum
        timer = threading.Timer(STOP_WAIT_SECONDS, os._exit, (code,))
        timer.daemon = True
        timer.start()
        after_creation(lambda: os._exit(code))

    _stop_handler.append(handle)
    signal.signal(signal.SIGTERM, handle)


def _safe_params(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = redact(dict(params))
    return out


def _from_kernel() -> tuple[dict[str, Param], dict[str, Any]]:
    """The running notebook's declared parameters and their values (see :mod:`.declared`)."""
    try:
        from IPython import get_ipython
    except ImportError:
        shell = None
    else:
        shell = get_ipython()
    if shell is None:
        raise ConfigError(
            "nb.start(title)",
            "reads the parameters cell of a running notebook; outside a kernel, pass params= and spec=",
        )
    return kernel_parameters(list(shell.user_ns.get("In", [])), shell.user_ns)


def _with_common_bounds(spec: Mapping[str, Param]) -> dict[str, Param]:
    """``spec`` with the bounds of :data:`COMMON_PARAMS` where a common parameter declares none."""
    out = dict(spec)
    for name, param in spec.items():
        common = COMMON_PARAMS.get(name)
        if common is not None and param.minimum is None and param.maximum is None:
            out[name] = replace(param, minimum=common.minimum, maximum=common.maximum)
    return out


async def start(
    title: str,
    params: Mapping[str, Any] | None = None,
    spec: Mapping[str, Param] | None = None,
    *,
    backends: int = 2,
    env: Mapping[str, str] | None = None,
    show: bool = True,
    target: bool = True,
) -> NotebookRun:
    """Validate the parameters, resolve the target, start the budget.

    In a notebook, ``await nb.start(title)`` takes the parameters the ``parameters`` cell
    declares, with their current values (:func:`~labsession.notebook.declared.kernel_parameters`):
    each is written once, in that cell. Elsewhere pass ``params`` (checked against
    :data:`COMMON_PARAMS` + ``spec``). ``backends`` is how many reference backend instances an
    own embedded target starts. Shows the target at the top of the notebook when ``show``.
    ``target=False`` is for a notebook that diagnoses no Redis and no backend (the run history's):
    no target is resolved, and such a notebook declares only the parameters it uses.
    Raises :class:`~labsession.errors.ConfigError` naming the parameter.
    """
    if params is None:
        declared, values = _from_kernel()
        values = validate_parameters(values, _with_common_bounds(declared))
    else:
        full = dict(COMMON_PARAMS)
        full.update(spec or {})
        values = validate_parameters(params, full)
    _exit_on_sigterm()
    budget = Budget(float(values.get("budget_seconds") or 60.0))
    if not target:
        run = NotebookRun(title, values, Target(None, [], False, "no target", read_only=True), budget)
        if show:
            text = f"{title} — no Redis and no backend: this notebook reads files only"
            display_bundle({"text/html": f"<p>{html.escape(text)}</p>", "text/plain": text})
        return run
    resolved = await asyncio.to_thread(resolve_target, values, env, backends=backends)
    run = NotebookRun(title, values, resolved, budget)
    if show:
        note = f"<p><b>{html.escape(title)}</b> — target: {html.escape(resolved.describe())}</p>"
        if resolved.problem:
            note += f"<p>Note: {html.escape(resolved.problem)}</p>"
        if resolved.notice:
            note = (
                f"<p style='border-left:6px solid #9a6700;padding:0.3em 0.8em'><b>{html.escape(resolved.notice)}"
                f"</b></p>"
            ) + note
        text = f"{title} — target: {resolved.describe()}" + (f"\nNote: {resolved.problem}" if resolved.problem else "")
        if resolved.notice:
            text = f"{resolved.notice}\n{text}"
        display_bundle({"text/html": note, "text/plain": text})
    return run
