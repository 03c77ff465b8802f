"""Helpers a diagnostic notebook (or runbook) calls: parameters, target, time budget, display, verdict.

A notebook's first cell after ``parameters`` calls :func:`start`, which

1. validates the parameters against a spec (:data:`COMMON_PARAMS` plus the notebook's own):
   a wrong type, an unknown name or a value out of range stops the run with a clear
   :class:`~labsession.errors.ConfigError` naming the parameter;
2. resolves the target (:class:`Target`): the Redis URL is read from the environment
   variable the ``redis_url_env`` parameter names (credentials never travel as parameters,
   since papermill writes parameters into the saved notebook);
3. with ``embedded=True`` and no ``backend_urls``, uses an embedded target: the one a runner
   (``labsession health --embedded``, the test session) provides through two environment
   variables (:mod:`labsession.embedded.target`), or else its own embedded
   Redis and two reference backend instances, and says so at the top;
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

import asyncio
import html
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..checks import REPORT_MIME, CheckResult, Report, Status
from ..embedded.target import EMBEDDED_BACKENDS_ENV, EMBEDDED_REDIS_URL_ENV, start_embedded_target
from ..errors import ConfigError, LabSessionError, RedisUnavailable
from ..masking import get_logger, mask_text, redact
from ..settings import Settings
from ..store.service import RedisService

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

log = get_logger(__name__)
T = TypeVar("T")


_STATUS_COLOURS = {
    Status.PASS: "#1a7f37",
    Status.SKIP: "#6e7781",
    Status.WARN: "#9a6700",
    Status.FAIL: "#cf222e",
    Status.ERROR: "#8250df",
}


# -- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """What one notebook parameter may hold.

    ``kind`` is the Python type (``float`` also accepts an ``int``; ``bool`` is never taken
    for an ``int``); ``items`` is the element type of a ``list``; ``choices`` the allowed
    values; ``minimum``/``maximum`` bound numbers (inclusive); ``meaning`` is shown in errors.
    """

    kind: type
    meaning: str = ""
    items: type | None = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False


#: The parameters every notebook and runbook takes (each may add its own).
COMMON_PARAMS: dict[str, Param] = {
    "redis_url_env": Param(str, "name of the environment variable holding the Redis URL"),
    "embedded": Param(bool, "with no backend_urls: use an embedded Redis and two reference backends"),
    "backend_urls": Param(list, "backend base URLs (http://host:port), one per instance or a load balancer", str),
    "read_only": Param(bool, "forbid writes to a real target (probe sessions SKIP)"),
    "key_prefix": Param(str, "prefix of the session keys in Redis"),
    "timeout_seconds": Param(float, "longest wait for one network step, seconds", minimum=0.05, maximum=600),
    "budget_seconds": Param(float, "time budget of the whole notebook, seconds", minimum=1, maximum=3600),
}


def _type_name(kind: type) -> str:
    return {str: "a string", bool: "True or False", int: "a whole number", float: "a number",
            list: "a list"}.get(kind, kind.__name__)


def _check_one(name: str, value: Any, spec: Param) -> Any:
    if value is None and spec.optional:
        return None
    kind = spec.kind
    ok: bool
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif kind is list:
        ok = isinstance(value, list | tuple)
        if ok:
            value = list(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(
            f"parameter {name!r}",
            f"must be {_type_name(kind)} ({spec.meaning}), got {type(value).__name__}",
        )
    if spec.items is not None and isinstance(value, list):
        for index, item in enumerate(value):
            _check_one(f"{name}[{index}]", item, Param(spec.items, spec.meaning))
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(repr(c) for c in spec.choices)
        raise ConfigError(f"parameter {name!r}", f"must be one of {allowed}, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):  # NaN passes every comparison: refuse it before the bounds
            raise ConfigError(f"parameter {name!r}", f"must be a finite number ({spec.meaning}), got {value!r}")
        if spec.minimum is not None and value < spec.minimum:
            raise ConfigError(f"parameter {name!r}", f"must be at least {spec.minimum} ({spec.meaning}), got {value!r}")
        if spec.maximum is not None and value > spec.maximum:
            raise ConfigError(f"parameter {name!r}", f"must be at most {spec.maximum} ({spec.meaning}), got {value!r}")
    return value


def validate_parameters(values: Mapping[str, Any], spec: Mapping[str, Param]) -> dict[str, Any]:
    """Check ``values`` against ``spec``; return them normalized (``int`` → ``float`` where a number is wanted).

    Raises :class:`ConfigError` naming the parameter for an unknown name, a missing one, a wrong
    type or a value out of range. Credentials are refused: ``redis_url_env`` must name a
    variable (a URL there is rejected without echoing it) and backend URLs carry no password.
    """
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise ConfigError(f"parameter {unknown[0]!r}", f"is unknown; known parameters: {', '.join(sorted(spec))}")
    out: dict[str, Any] = {}
    for name, param in spec.items():
        if name not in values:
            if param.optional:
                out[name] = None
                continue
            raise ConfigError(f"parameter {name!r}", f"is missing ({param.meaning})")
        out[name] = _check_one(name, values[name], param)
    env_name = out.get("redis_url_env")
    if isinstance(env_name, str) and not env_name.replace("_", "").isalnum():
        # Do not echo the value: someone may have pasted the URL (and its password) here.
        raise ConfigError(
            "parameter 'redis_url_env'",
            "must name an environment variable (like REDIS_URL), not hold the URL itself",
        )
    for number, url in enumerate(out.get("backend_urls") or [], start=1):
        # A URL that does not parse is never quoted, masked or not: a password with '#', '/' or
        # '?' in it makes the parse cut it anywhere, so no part of it is known to be safe to show.
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("parameter 'backend_urls'",
                              f"must hold http(s)://host:port URLs; entry {number} is not one")
        if parts.password or "@" in url:
            raise ConfigError("parameter 'backend_urls'", "must not carry credentials")
    if isinstance(out.get("key_prefix"), str) and not out["key_prefix"]:
        raise ConfigError("parameter 'key_prefix'", "must not be empty (the default is 'session:')")
    return out


# -- time budget -----------------------------------------------------------------------------


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


# -- target ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Target:
    """What a notebook diagnoses: a Redis (``settings``) and zero or more backend base URLs.

    ``settings`` is ``None`` only when the Redis URL could not be resolved (``problem`` says
    why). ``embedded`` is True for a throwaway embedded store; ``origin`` says who started it.
    """

    settings: Settings | None
    backend_urls: list[str]
    embedded: bool
    origin: str
    read_only: bool
    problem: str | None = None
    _stoppers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def writes_allowed(self) -> bool:
        """Probe sessions may be written: the target is embedded, or ``read_only`` is False."""
        return self.embedded or not self.read_only

    @property
    def write_refusal(self) -> str:
        """Why writes are not allowed (the SKIP evidence), or ``""``."""
        if self.writes_allowed:
            return ""
        return "read_only=True: no probe session is written to a real target (set read_only=False to allow)"

    @property
    def ws_urls(self) -> list[str]:
        """The backends' WebSocket base URLs (``ws://host:port``)."""
        return [("wss://" + u[len("https://"):]) if u.startswith("https://") else "ws://" + u.split("://", 1)[1]
                for u in self.backend_urls]

    def describe(self) -> str:
        """One sentence, safe to show: which store and backends, who started them, write policy."""
        store = f"Redis at {self.settings.endpoint} (tls={self.settings.tls})" if self.settings else "no Redis"
        backends = ", ".join(self.backend_urls) if self.backend_urls else "no backend URL"
        writes = ("probe sessions allowed (throwaway embedded store)" if self.embedded
                  else "probe sessions allowed (read_only=False)" if not self.read_only
                  else "read-only: no writes")
        return f"{self.origin}: {store}; backends: {backends}; {writes}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "embedded": self.embedded,
            "redis": self.settings.endpoint if self.settings else None,
            "tls": self.settings.tls if self.settings else None,
            "backends": list(self.backend_urls),
            "writesAllowed": self.writes_allowed,
            "problem": self.problem,
        }

    def close(self) -> None:
        """Stop whatever this notebook started (backends first, then Redis); safe to call twice."""
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception as exc:  # stopping must not hide the verdict
                log.warning("could not stop part of the embedded target: %s", type(exc).__name__)


def _settings_for(url: str, key_prefix: str, timeout: float, env_name: str) -> Settings:
    try:
        return Settings.from_url(
            url,
            key_prefix=key_prefix,
            connect_timeout=timeout,
            socket_timeout=timeout,
            operation_timeout=timeout,
            retry_attempts=2,
        )
    except ConfigError as exc:
        raise ConfigError(env_name, exc.message.removeprefix("REDIS_URL ")) from None


def _start_own_embedded(key_prefix: str, timeout: float, backends: int) -> Target:
    url, backend_urls, stop = start_embedded_target(backends)
    target = Target(
        _settings_for(url, key_prefix, timeout, "embedded Redis"),
        backend_urls, True, "embedded target started by this notebook", read_only=True,
    )
    target._stoppers.append(stop)
    if not backend_urls and backends:
        target.problem = "the reference backend is not available in this build: backend checks SKIP"
    return target


def resolve_target(params: Mapping[str, Any], env: Mapping[str, str] | None = None, *, backends: int = 2) -> Target:
    """The target for validated ``params`` (see the module docstring for the rules).

    Raises :class:`ConfigError` when a real target's Redis variable is unset or malformed:
    a notebook never switches silently to an embedded Redis.
    """
    env = os.environ if env is None else env
    prefix = str(params.get("key_prefix") or "session:")
    timeout = float(params.get("timeout_seconds") or 5.0)
    backend_urls = [u.rstrip("/") for u in params.get("backend_urls") or []]
    read_only = bool(params.get("read_only", True))
    if params.get("embedded") and not backend_urls:
        shared = env.get(EMBEDDED_REDIS_URL_ENV, "").strip()
        if shared:
            urls = env.get(EMBEDDED_BACKENDS_ENV, "").split()
            return Target(
                _settings_for(shared, prefix, timeout, EMBEDDED_REDIS_URL_ENV),
                [u.rstrip("/") for u in urls], True, "embedded target provided by the runner", read_only,
            )
        target = _start_own_embedded(prefix, timeout, backends)
        target.read_only = read_only
        return target
    name = str(params.get("redis_url_env") or "REDIS_URL")
    url = env.get(name, "").strip()
    if not url:
        raise ConfigError(name, "is not set: it must hold the Redis URL (set embedded=True for an offline run)",
                          "rediss://default:****@your-endpoint.upstash.io:6379")
    return Target(_settings_for(url, prefix, timeout, name), backend_urls, False, f"target from ${name}", read_only)


# -- display ---------------------------------------------------------------------------------


def display_bundle(bundle: Mapping[str, Any]) -> None:
    """Display a MIME bundle in the notebook (or print its text/plain outside a kernel)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency
        print(bundle.get("text/plain", ""))
        return
    if get_ipython() is None:
        print(bundle.get("text/plain", ""))
        return
    display(dict(bundle), raw=True)  # type: ignore[no-untyped-call,unused-ignore]


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
    return ("<table><tr><th style='text-align:left'>status</th><th style='text-align:left'>check</th>"
            "<th style='text-align:left'>evidence</th></tr>" + "".join(rows) + "</table>")


def show_checks(checks: Iterable[CheckResult]) -> None:
    """Show some check results as a coloured HTML table with a text fallback."""
    items = list(checks)
    width = max((len(c.name) for c in items), default=4)
    text = "\n".join(f"{c.status.value:<5}  {c.name:<{width}}  {c.evidence}" for c in items) or "(no checks)"
    display_bundle({"text/html": _checks_html(items), "text/plain": text})


def show_report(report: Report) -> None:
    """The verdict: an HTML table, a text fallback, and the machine-readable :data:`REPORT_MIME` JSON."""
    colour = _STATUS_COLOURS[report.verdict]
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    head = (f"<h3>{html.escape(report.title)}: <span style='color:{colour}'>{report.verdict.value}</span></h3>"
            f"<p>{html.escape(counts)}</p>")
    display_bundle({
        "text/html": head + _checks_html(report.checks),
        "text/plain": f"{report.title}\n{report.table()}",
        REPORT_MIME: report.to_dict(),
    })


# -- the run ---------------------------------------------------------------------------------


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
        new = self.report.checks[self._shown:]
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
        self, name: str, make: Callable[[], Awaitable[T]], *, timeout: float | None = None  # noqa: ASYNC109
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
            self.check(name, Status.FAIL, f"no answer from Redis at {self.target.settings.endpoint} in time",
                       cause="TIMEOUT")
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


def _safe_params(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = redact(dict(params))
    return out


async def start(
    title: str,
    params: Mapping[str, Any],
    spec: Mapping[str, Param] | None = None,
    *,
    backends: int = 2,
    env: Mapping[str, str] | None = None,
    show: bool = True,
) -> NotebookRun:
    """Validate ``params`` (against :data:`COMMON_PARAMS` + ``spec``), resolve the target, start the budget.

    ``backends`` is how many reference backend instances an own embedded target starts.
    Shows the target at the top of the notebook when ``show``. Raises :class:`ConfigError`.
    """
    full = dict(COMMON_PARAMS)
    full.update(spec or {})
    values = validate_parameters(params, full)
    budget = Budget(float(values.get("budget_seconds") or 60.0))
    target = await asyncio.to_thread(resolve_target, values, env, backends=backends)
    run = NotebookRun(title, values, target, budget)
    if show:
        note = f"<p><b>{html.escape(title)}</b> — target: {html.escape(target.describe())}</p>"
        if target.problem:
            note += f"<p>Note: {html.escape(target.problem)}</p>"
        display_bundle({"text/html": note, "text/plain": f"{title} — target: {target.describe()}"
                        + (f"\nNote: {target.problem}" if target.problem else "")})
    return run
