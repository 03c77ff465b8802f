"""Runbook "Terminal disconnects": why a lab terminal's WebSocket keeps dropping.

Two connections to ``/terminal/{id}`` are held at the same time through the first backend URL
(the address users connect to, a load balancer in production): one pings every few seconds for
``ping_seconds``, the other stays silent for ``idle_seconds`` and then pings once. What ends
either of them, and when, is the evidence. Steps, each a check:

1. ``session``: the session read from Redis (one ``GET``): valid, and how long until it expires.
2. ``connect``: both connections opened and said ``connected``.
3. ``pings``: protocol and message round trips on the busy connection, unanswered pings.
4. ``idle hold``: whether the silent connection survived its silence.
5. ``closes``: every close seen (code, reason, the error code before it), read by meaning.
6. ``instances``: whether a backend instance started during the run (uptime before and after).
7. ``session after``: the session read again: ended or expired meanwhile.

Without a session id a probe session is created through the backend, only when writes are
allowed (``read_only`` False); a read-only run without one checks the instances only. The
whole run lasts about ``max(ping_seconds, idle_seconds)`` plus the time bounds of each wait.
It ends with one :class:`TerminalDisconnectsCause` and a plain remediation.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..checks import CheckResult, Report, Status
from ..errors import ConfigError, InvalidSessionId, RedisUnavailable
from ..masking import get_logger, log_id
from ..probes.lifecycle import probe_session
from ..probes.stats import percentile
from ..probes.websocket import HeldConnection, hold_connection
from ..sessions.model import check_session_id
from ..sessions.service import LabSessionService, ValidationReason, ValidationResult
from ..settings import Settings
from ..store.service import RedisService
from .base import Diagnosis, conclude
from .restarts import judge_restarts, sample_uptimes

__all__ = [
    "NAME",
    "REMEDIES",
    "TerminalDisconnectsCause",
    "TerminalDisconnectsInputs",
    "close_rows",
    "diagnose_terminal_disconnects",
    "inputs_from_parameters",
    "ping_rows",
]

log = get_logger(__name__)

NAME = "terminal_disconnects"


class TerminalDisconnectsCause(StrEnum):
    """The one cause the runbook names; when several are found the first listed wins."""

    SESSION_NOT_VALID = "SESSION_NOT_VALID"
    CONNECT_FAILED = "CONNECT_FAILED"
    SESSION_ENDED_MID_CONNECTION = "SESSION_ENDED_MID_CONNECTION"
    SESSION_EXPIRING = "SESSION_EXPIRING"
    INSTANCE_RESTARTED = "INSTANCE_RESTARTED"
    SERVER_CLOSES = "SERVER_CLOSES"
    IDLE_TIMEOUT_CUTS_CONNECTION = "IDLE_TIMEOUT_CUTS_CONNECTION"
    CONNECTION_DROPPED = "CONNECTION_DROPPED"
    PINGS_UNANSWERED = "PINGS_UNANSWERED"
    HIGH_PING_LATENCY = "HIGH_PING_LATENCY"
    NO_FAULT_FOUND = "NO_FAULT_FOUND"


C = TerminalDisconnectsCause

REMEDIES: dict[TerminalDisconnectsCause, str] = {
    C.SESSION_NOT_VALID: "the session is not valid, so every connect is refused with close 4000 before it can drop; "
    "run the invalid_session runbook with this session id",
    C.CONNECT_FAILED: "the WebSocket to /terminal cannot be opened at all; check the backend URL, that the instance "
    "is up (GET /health) and that the load balancer forwards WebSocket upgrades",
    C.SESSION_ENDED_MID_CONNECTION: "the session was ended (status destroyed) while connected, and the backend closed "
    "the terminal with 4000; find who ended it (the end route in the backend logs) and let the client start a new "
    "session instead of reconnecting",
    C.SESSION_EXPIRING: "the session's expiresAt falls within the run (or its TTL runs out), so the backend closes "
    "the terminal with 4000 when it passes; extend the session before expiresAt (POST …/extend) or raise "
    "LAB_TIMEOUT_MINUTES",
    C.INSTANCE_RESTARTED: "a backend instance started during the run (a restart, crash or deploy), which cuts every "
    "terminal on the old one; find why it restarted (platform events, OOM, health check failures) and make "
    "clients reconnect with backoff",
    C.SERVER_CLOSES: "the backend closed the connection itself; the close code says why (1001 going away: a "
    "deploy or shutdown, 1011 a server error, 1013 the store unavailable, 4000 the session invalid): fix that "
    "cause, see the closes step",
    C.IDLE_TIMEOUT_CUTS_CONNECTION: "a proxy or load balancer cuts connections that stay silent for N seconds "
    "(the idle hold shows N); send an application ping more often than every N seconds, or raise the idle timeout "
    "(AWS ALB: idle_timeout.timeout_seconds, 60 s by default; App Runner's front end cuts idle connections too)",
    C.CONNECTION_DROPPED: "the TCP connection was cut without a WebSocket close while in use: a proxy, a network "
    "reset or a crashed instance; check the load balancer's and the instance's logs at that time",
    C.PINGS_UNANSWERED: "pings went unanswered within the ping timeout while the connection stayed open: the "
    "backend's event loop or the network path stalls; check the instance's CPU and the path's packet loss",
    C.HIGH_PING_LATENCY: "round trips are slower than the latency threshold: the network path or the backend is "
    "slow; check the region the client reaches and the instance's load",
    C.NO_FAULT_FOUND: "the connections stayed up, answered every ping in time and were not cut while idle; look "
    "at the client: its network, its reconnect logic and the browser console's close codes",
}

_NO_SESSION_HINT = (
    "the instances look stable; run again with the session_id of a dropping terminal (or read_only=False to "
    "use a probe session) to hold connections"
)

#: What a close code means, for the evidence (RFC 6455 and docs/contract.md).
CLOSE_MEANINGS: dict[int, str] = {
    1000: "normal close",
    1001: "going away: the instance shuts down (a deploy or scale-in)",
    1006: "cut without a close frame",
    1008: "policy violation",
    1009: "message too big",
    1011: "server error",
    1012: "service restart",
    1013: "try again later: the session store is unavailable",
    4000: "invalid session",
}

#: The allowed range of each numeric input (the notebook's parameters cell states the same).
BOUNDS: dict[str, tuple[float, float]] = {
    "ping_seconds": (0.5, 600.0),
    "ping_every_seconds": (0.1, 60.0),
    "idle_seconds": (0.0, 900.0),
    "ping_timeout": (0.05, 60.0),
    "high_latency_ms": (1.0, 60_000.0),
    "expiry_margin_seconds": (0.0, 86_400.0),
    "instance_samples": (1, 20),
    "http_timeout": (0.05, 600.0),
}

#: An idle connection cut within this many seconds of the busy one was cut with it, not for idling.
_TOGETHER_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class TerminalDisconnectsInputs:
    """What the runbook does. Durations in seconds, latency in ms.

    ``session_id`` ``None`` uses a probe session when ``read_only`` is False, else skips the
    connections; ``backend_urls[0]`` is the address the connections go to (all are sampled for
    restarts); ``idle_seconds`` 0 skips the idle hold.
    """

    session_id: str | None = None
    backend_urls: tuple[str, ...] = ()
    ping_seconds: float = 60.0
    ping_every_seconds: float = 5.0
    idle_seconds: float = 75.0
    ping_timeout: float = 5.0
    high_latency_ms: float = 1000.0
    expiry_margin_seconds: float = 120.0
    instance_samples: int = 2
    read_only: bool = True
    #: Seconds to open a connection or answer one HTTP request.
    http_timeout: float = 5.0
    origin: str | None = None

    def __post_init__(self) -> None:
        if self.session_id is not None:
            check_session_id(self.session_id)
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"parameter {name!r}", f"is {value}, outside [{low:g}, {high:g}]")

    @property
    def run_seconds(self) -> float:
        """How long the connections are held: the longer of the two holds."""
        return max(self.ping_seconds, self.idle_seconds)


def inputs_from_parameters(
    params: Mapping[str, Any], *, writes_allowed: bool, backend_urls: Sequence[str] | None = None
) -> TerminalDisconnectsInputs:
    """:class:`TerminalDisconnectsInputs` from a notebook's validated parameters; ``backend_urls``
    (the resolved target's) replaces the parameter when given.

    Raises :class:`~labsession.errors.ConfigError` naming the parameter that is wrong.
    """
    sid = str(params.get("session_id") or "").strip() or None
    if sid is not None:
        try:
            check_session_id(sid)
        except InvalidSessionId as exc:
            raise ConfigError("parameter 'session_id'", f"is {exc.message}") from None
    defaults = TerminalDisconnectsInputs()

    def number(name: str, default: float) -> float:
        value = params.get(name)
        return float(default if value is None else value)

    return TerminalDisconnectsInputs(
        session_id=sid,
        backend_urls=tuple(backend_urls if backend_urls is not None else params.get("backend_urls") or ()),
        ping_seconds=number("ping_seconds", defaults.ping_seconds),
        ping_every_seconds=number("ping_every_seconds", defaults.ping_every_seconds),
        idle_seconds=number("idle_seconds", defaults.idle_seconds),
        ping_timeout=number("ping_timeout_seconds", defaults.ping_timeout),
        high_latency_ms=number("high_latency_ms", defaults.high_latency_ms),
        expiry_margin_seconds=number("expiry_margin_seconds", defaults.expiry_margin_seconds),
        instance_samples=int(number("instance_samples", defaults.instance_samples)),
        read_only=not writes_allowed,
        http_timeout=number("timeout_seconds", defaults.http_timeout),
    )


# -- judging what was seen --------------------------------------------------------------------


def judge_session(
    verdict: ValidationResult, inputs: TerminalDisconnectsInputs, now_ms: int
) -> tuple[CheckResult, TerminalDisconnectsCause | None]:
    """The ``session`` step: is the session valid, and does it outlive the run and the margin?"""
    sid = log_id(verdict.session_id)
    if not verdict.valid or verdict.session is None:
        text = f"session {sid} is not valid ({verdict.reason.value}{': ' + verdict.detail if verdict.detail else ''})"
        return CheckResult("session", Status.FAIL, text, {"reason": verdict.reason.value}), C.SESSION_NOT_VALID
    left_s = (verdict.session.expires_at - now_ms) / 1000
    window = inputs.run_seconds + inputs.expiry_margin_seconds
    data = {"reason": verdict.reason.value, "expires_in_s": round(left_s, 1), "window_s": window}
    if left_s <= window:
        return CheckResult(
            "session",
            Status.FAIL,
            f"session {sid} is active but expires in {left_s:.0f} s, within the {inputs.run_seconds:g} s run "
            f"and {inputs.expiry_margin_seconds:g} s margin",
            data,
        ), C.SESSION_EXPIRING
    return CheckResult(
        "session",
        Status.PASS,
        f"session {sid} is active and outlives the {inputs.run_seconds:g} s run by more than the "
        f"{inputs.expiry_margin_seconds:g} s margin",
        data,
    ), None


def judge_connect(
    busy: HeldConnection, idle: HeldConnection | None
) -> tuple[CheckResult, TerminalDisconnectsCause | None]:
    """The ``connect`` step: did both connections open and say ``connected``?"""
    held = [c for c in (busy, idle) if c is not None]
    data = {"connections": [c.to_dict() for c in held]}
    failed = [c for c in held if c.error]
    if failed:
        return CheckResult("connect", Status.FAIL, f"{failed[0].label}: {failed[0].error}", data), C.CONNECT_FAILED
    refused = [c for c in held if not c.connected]
    if refused:
        c = refused[0]
        return CheckResult(
            "connect",
            Status.FAIL,
            f"{c.label}: refused with {c.first_code or 'an error'}, then {c.close_text()}",
            data,
        ), C.SESSION_NOT_VALID if c.close_code == 4000 or c.first_code else C.CONNECT_FAILED
    instances = sorted({c.instance_id or "?" for c in held})
    return CheckResult(
        "connect", Status.PASS, f"{len(held)} connection(s) connected (instance {', '.join(instances)})", data
    ), None


def judge_pings(
    busy: HeldConnection, inputs: TerminalDisconnectsInputs
) -> tuple[CheckResult, TerminalDisconnectsCause | None]:
    """The ``pings`` step: unanswered pings, then the median round trip against the threshold."""
    rows = [
        {"at_s": round(p.at_s, 2), "protocol_ms": _ms(p.protocol_ms), "message_ms": _ms(p.app_ms)} for p in busy.pings
    ]
    rtts = [ms for p in busy.pings for ms in (p.protocol_ms, p.app_ms) if ms is not None]
    unanswered = sum(1 for p in busy.pings if not p.answered)
    data: dict[str, Any] = {"samples": rows, "unanswered": unanswered, "threshold_ms": inputs.high_latency_ms}
    if not busy.pings:
        return CheckResult("pings", Status.SKIP, "no ping was sent (the connection ended first)", data), None
    p50 = percentile(rtts, 50)
    p99 = percentile(rtts, 99)
    data["pings"] = len(busy.pings)
    shape = "no round trip measured"
    if p50 is not None:
        shape = f"round trip p50 {p50:.1f} ms, p99 {p99 or 0:.1f} ms"
        data.update(p50_ms=round(p50, 2), p99_ms=round(p99 or 0, 2))
    if unanswered:
        return CheckResult(
            "pings",
            Status.FAIL,
            f"{unanswered} of {len(busy.pings)} pings got no answer within {inputs.ping_timeout:g} s ({shape})",
            data,
        ), C.PINGS_UNANSWERED
    if p50 is not None and p50 > inputs.high_latency_ms:
        return CheckResult(
            "pings", Status.FAIL, f"{shape}: slower than the {inputs.high_latency_ms:g} ms threshold", data
        ), C.HIGH_PING_LATENCY
    if p99 is not None and p99 > inputs.high_latency_ms:
        return CheckResult(
            "pings", Status.WARN, f"{shape}: some above the {inputs.high_latency_ms:g} ms threshold", data
        ), None
    return CheckResult(
        "pings", Status.PASS, f"every ping answered within {inputs.ping_timeout:g} s ({shape})", data
    ), None


def judge_idle(
    busy: HeldConnection, idle: HeldConnection, seconds: float
) -> tuple[CheckResult, TerminalDisconnectsCause | None]:
    """The ``idle hold`` step: was the silent connection cut while the busy one lived on?"""
    data = idle.to_dict()
    busy_alive = busy.closed_at_s is None or (
        idle.closed_at_s is not None and busy.closed_at_s > idle.closed_at_s + _TOGETHER_SECONDS
    )
    if idle.closed_at_s is not None:
        by_idling = idle.close_code is None or (idle.close_code == 1000 and idle.last_error_code is None)
        if by_idling and busy_alive:
            return CheckResult(
                "idle hold",
                Status.FAIL,
                f"the silent connection was {idle.close_text()} of silence while the pinging one stayed open: "
                f"something cuts connections idle for about {idle.closed_at_s:.0f} s",
                data,
            ), C.IDLE_TIMEOUT_CUTS_CONNECTION
        return CheckResult("idle hold", Status.WARN, f"the silent connection ended: {idle.close_text()}", data), None
    last = idle.pings[-1] if idle.pings else None
    if last is None or not last.answered:
        return CheckResult(
            "idle hold",
            Status.FAIL,
            f"after {seconds:g} s of silence the connection looked open but did not answer a ping: it was cut silently",
            data,
        ), C.IDLE_TIMEOUT_CUTS_CONNECTION
    return CheckResult(
        "idle hold",
        Status.PASS,
        f"survived {seconds:g} s of silence and then answered a ping in {last.app_ms or 0:.1f} ms",
        data,
    ), None


def _invalid_mid_connection(
    c: HeldConnection, after: ValidationResult | None, *, expiring: bool
) -> TerminalDisconnectsCause:
    """Why a session stopped validating mid-connection: ended when the backend or the record says so,
    expired when either says that or the session was known to be expiring; ended otherwise."""
    if c.last_error_code == "SESSION_ENDED" or (after is not None and after.reason is ValidationReason.ENDED):
        return C.SESSION_ENDED_MID_CONNECTION
    if c.last_error_code == "SESSION_EXPIRED" or (after is not None and after.reason is ValidationReason.EXPIRED):
        return C.SESSION_EXPIRING
    return C.SESSION_EXPIRING if expiring else C.SESSION_ENDED_MID_CONNECTION


def judge_closes(
    held: Sequence[HeldConnection],
    after: ValidationResult | None,
    *,
    explained: Sequence[str] = (),
    expiring: bool = False,
) -> tuple[CheckResult, list[TerminalDisconnectsCause]]:
    """The ``closes`` step: each close by meaning; the causes they point at. Connections whose
    ``label`` is in ``explained`` (an idle connection cut for idling) are shown but point at nothing;
    ``expiring`` says the session was seen expiring before the run (a 4000 then means that)."""
    rows = close_rows_of(held)
    closed = [c for c in held if c.connected and c.closed_at_s is not None]
    data: dict[str, Any] = {"closes": rows}
    if not closed:
        return CheckResult("closes", Status.PASS, "no connection was closed during the run", data), []
    causes: list[TerminalDisconnectsCause] = []
    for c in closed:
        if c.label in explained:
            continue
        if c.close_code == 4000:
            causes.append(_invalid_mid_connection(c, after, expiring=expiring))
        elif c.close_code is None:
            causes.append(C.CONNECTION_DROPPED)
        elif not (c.label == "idle" and c.close_code == 1000):
            causes.append(C.SERVER_CLOSES)
    shown = "; ".join(
        f"{c.label}: {c.close_text()} — {CLOSE_MEANINGS.get(c.close_code or 1006, 'other')}" for c in closed
    )
    return CheckResult("closes", Status.FAIL if causes else Status.WARN, shown, data), causes


def close_rows_of(held: Sequence[HeldConnection]) -> list[dict[str, Any]]:
    """One row per connection: how it ended and what the close code means."""
    return [
        {
            "connection": c.label,
            "instance": c.instance_id or "?",
            "ended": c.close_text(),
            "code": c.close_code
            if c.closed_at_s is not None and c.close_code is not None
            else (1006 if c.dropped else None),
            "meaning": CLOSE_MEANINGS.get(c.close_code or 1006, "other") if c.closed_at_s is not None else "",
            "pings": len(c.pings),
        }
        for c in held
    ]


def ping_rows(report: Report) -> list[dict[str, Any]]:
    """The ``pings`` step's samples, one row per ping, for a table (times s, round trips ms)."""
    for check in report:
        if check.name == "pings":
            return list(check.data.get("samples", []))
    return []


def close_rows(report: Report) -> list[dict[str, Any]]:
    """The ``closes`` step's rows, one per connection, for a table."""
    for check in report:
        if check.name == "closes":
            return list(check.data.get("closes", []))
    return []


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# -- the run ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[RedisService | None]:
    """The runbook's own Redis connection, or ``None`` when it cannot be opened (the backends may still)."""
    try:
        async with RedisService(settings.with_changes(retry_attempts=min(settings.retry_attempts, 2))) as redis:
            yield redis
    except RedisUnavailable as exc:
        log.warning("runbook cannot open Redis: %s", exc.cause.value)
        yield None


async def _read_session(redis: RedisService | None, settings: Settings, session_id: str) -> ValidationResult | str:
    """The session's validation (one ``GET``), or why it could not be read."""
    if redis is None:
        return "the runbook cannot reach Redis"
    try:
        return await LabSessionService(redis, settings).validate(session_id)
    except RedisUnavailable as exc:
        return str(exc)


async def diagnose_terminal_disconnects(
    settings: Settings,
    inputs: TerminalDisconnectsInputs,
    *,
    clock: Callable[[], float] = time.time,
    report: Report | None = None,
) -> Diagnosis:
    """Run every step against ``settings``' Redis and ``inputs.backend_urls``; never raises for a
    store or backend failure (that is evidence), only for bad inputs.

    ``clock`` returns seconds since the epoch (the time sessions are judged at); the steps are
    recorded on ``report`` when given (a notebook's own), else on a new one. Redis sees two
    ``GET``s of the session (plus, only when writes are allowed and no session id is given, the
    probe session's mark and removal); each backend URL ``2 × instance_samples`` diagnostics
    requests and the two connections.
    """
    report = report if report is not None else Report("Runbook: terminal disconnects")
    report.facts.update(
        {
            "endpoint": settings.endpoint,
            "session_id": log_id(inputs.session_id) if inputs.session_id else None,
            "backends": list(inputs.backend_urls),
            "read_only": inputs.read_only,
            "ping_seconds": inputs.ping_seconds,
            "idle_seconds": inputs.idle_seconds,
        }
    )
    found: list[TerminalDisconnectsCause] = []
    async with _store(settings) as redis:
        if not inputs.backend_urls:
            for step in ("session", "connect", "pings", "idle hold", "closes", "instances", "session after"):
                report.check(step, Status.SKIP, "no backend URL given")
            return _finish(report, found, hint="give backend_urls (the address users' terminals connect to)")
        if inputs.session_id is not None:
            await _steps(settings, inputs, inputs.session_id, redis, report, found, clock)
        elif inputs.read_only:
            report.check("session", Status.SKIP, "no session id given, and a read-only run creates no probe session")
            for step in ("connect", "pings", "idle hold", "closes"):
                report.check(step, Status.SKIP, "needs a session id (or read_only=False for a probe session)")
            before = await sample_uptimes(
                inputs.backend_urls, samples_per_url=inputs.instance_samples, http_timeout=inputs.http_timeout
            )
            check, restarted = judge_restarts(before, [], time.monotonic())
            report.add(check)
            report.check("session after", Status.SKIP, "no session id given")
            if restarted:
                found.append(C.INSTANCE_RESTARTED)
            return _finish(report, found, hint=_NO_SESSION_HINT)
        else:
            ttl = math.ceil(inputs.run_seconds + inputs.expiry_margin_seconds + 60)
            async with probe_session(
                inputs.backend_urls[0], redis=redis, timeout=inputs.http_timeout, ttl_seconds=ttl
            ) as (sid, answer):
                if sid is None:
                    report.check(
                        "session",
                        Status.FAIL,
                        f"could not create a probe session: HTTP {answer.status} {answer.error or ''}".strip(),
                    )
                    found.append(C.CONNECT_FAILED)
                else:
                    await _steps(settings, inputs, sid, redis, report, found, clock)
    return _finish(report, found)


def _finish(report: Report, found: list[TerminalDisconnectsCause], *, hint: str = "") -> Diagnosis:
    cause = min(found, key=list(C).index) if found else C.NO_FAULT_FOUND
    remedy = hint if cause is C.NO_FAULT_FOUND and hint else REMEDIES[cause]
    return conclude(NAME, report, cause, remedy, healthy=cause is C.NO_FAULT_FOUND)


async def _steps(
    settings: Settings,
    inputs: TerminalDisconnectsInputs,
    session_id: str,
    redis: RedisService | None,
    report: Report,
    found: list[TerminalDisconnectsCause],
    clock: Callable[[], float],
) -> None:
    """Every step for one session id, recording checks on ``report`` and causes in ``found``."""
    url = inputs.backend_urls[0]
    verdict = await _read_session(redis, settings, session_id)
    if isinstance(verdict, str):
        report.check("session", Status.WARN, f"could not read the session from Redis: {verdict}")
    else:
        check, cause = judge_session(verdict, inputs, int(clock() * 1000))
        report.add(check)
        if cause is C.SESSION_NOT_VALID:
            found.append(cause)
            for step in ("connect", "pings", "idle hold", "closes", "instances", "session after"):
                report.check(step, Status.SKIP, "the session is not valid: a connection would be refused")
            return
        if cause is not None:
            found.append(cause)

    before = await sample_uptimes(
        inputs.backend_urls, samples_per_url=inputs.instance_samples, http_timeout=inputs.http_timeout
    )
    began = time.monotonic()
    holds = [
        hold_connection(
            url,
            session_id,
            seconds=inputs.ping_seconds,
            ping_every=inputs.ping_every_seconds,
            ping_timeout=inputs.ping_timeout,
            connect_timeout=inputs.http_timeout,
            origin=inputs.origin,
            label="pinging",
        )
    ]
    if inputs.idle_seconds > 0:
        holds.append(
            hold_connection(
                url,
                session_id,
                seconds=inputs.idle_seconds,
                ping_timeout=inputs.ping_timeout,
                connect_timeout=inputs.http_timeout,
                origin=inputs.origin,
                label="idle",
            )
        )
    held = await asyncio.gather(*holds)
    busy, idle = held[0], (held[1] if len(held) > 1 else None)
    # A connection cut early leaves the rest of the window to an instance coming back from a restart.
    await asyncio.sleep(max(0.0, began + inputs.run_seconds - time.monotonic()))
    after = await sample_uptimes(
        inputs.backend_urls,
        samples_per_url=inputs.instance_samples,
        http_timeout=inputs.http_timeout,
        retry_for=inputs.http_timeout,
    )

    check, cause = judge_connect(busy, idle)
    report.add(check)
    if cause is not None:
        found.append(cause)
    connected = cause is None
    if connected:
        check, cause = judge_pings(busy, inputs)
        report.add(check)
        if cause is not None:
            found.append(cause)
    else:
        report.check("pings", Status.SKIP, "no connection")
    if idle is None:
        report.check("idle hold", Status.SKIP, "idle_seconds is 0")
    elif connected:
        check, cause = judge_idle(busy, idle, inputs.idle_seconds)
        report.add(check)
        if cause is not None:
            found.append(cause)
    else:
        report.check("idle hold", Status.SKIP, "no connection")

    verdict_after = await _read_session(redis, settings, session_id)
    after_result = verdict_after if isinstance(verdict_after, ValidationResult) else None
    explained = ["idle"] if C.IDLE_TIMEOUT_CUTS_CONNECTION in found else []
    check, causes = judge_closes(
        held if connected else [], after_result, explained=explained, expiring=C.SESSION_EXPIRING in found
    )
    report.add(check)
    found.extend(causes)

    check, restarted = judge_restarts(before, after, began)
    report.add(check)
    if restarted:
        found.append(C.INSTANCE_RESTARTED)

    if after_result is None:
        report.check("session after", Status.WARN, f"could not read the session again: {verdict_after}")
    elif after_result.valid:
        report.check("session after", Status.PASS, "the session is still valid after the run")
    else:
        report.check(
            "session after",
            Status.FAIL,
            f"the session became {after_result.reason.value} during the run",
            reason=after_result.reason.value,
        )
        if after_result.reason is ValidationReason.EXPIRED:
            found.append(C.SESSION_EXPIRING)
        elif after_result.reason is ValidationReason.ENDED:
            found.append(C.SESSION_ENDED_MID_CONNECTION)
