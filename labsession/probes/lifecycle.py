"""Session lifecycle probe: create through one backend, use through every instance, extend, end.

A probe session is created with ``userId``/``labId`` ``labsession-probe``; when Redis may be
written its record is marked ``"probe": true`` and shortened to live :data:`PROBE_TTL_SECONDS`,
so that even a run killed halfway leaves nothing behind for long (the extend step adds one
minute: at most 2 minutes in all). It is always cleaned up — ended through a backend and its
key deleted — even when a step fails. Times are milliseconds. The cross-connection
visibility probe is in :mod:`labsession.probes.visibility`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..checks import CheckResult, Status
from ..errors import LabSessionError
from ..masking import get_logger, log_id
from ..sessions.codec import decode_json, encode_json
from ..store.service import RedisService
from .backend import BackendClient, HttpAnswer, to_ws_url, ws_session
from .stats import percentile

__all__ = [
    "PROBE_TTL_SECONDS",
    "LifecycleResult",
    "after_creation",
    "creation_window",
    "probe_session",
    "run_lifecycle",
]

log = get_logger(__name__)

#: Seconds a probe session lives before the extend step (which adds 60 s).
PROBE_TTL_SECONDS = 60


class _Window:
    """Probe sessions being created: from the request until the SET that shortens the record, a probe
    session would live as long as the backend's own session lifetime (hours) if the process died."""

    def __init__(self) -> None:
        self.open = 0
        self.then: list[Callable[[], None]] = []


_window = _Window()


@contextlib.contextmanager
def creation_window() -> Iterator[None]:
    """Wrap the creation of a probe session up to the SET that shortens it; what :func:`after_creation`
    deferred meanwhile runs when the last such block ends."""
    _window.open += 1
    try:
        yield
    finally:
        _window.open -= 1
        while not _window.open and _window.then:
            _window.then.pop(0)()


def after_creation(action: Callable[[], None]) -> None:
    """Run ``action`` now, or, while a probe session is being created, as soon as its life is shortened
    (a kernel told to stop exits then: a killed run leaves no probe session for longer than 2 minutes)."""
    if _window.open:
        _window.then.append(action)
    else:
        action()


@dataclass(slots=True)
class LifecycleResult:
    """The checks of one lifecycle run, the WebSocket ping round trips (ms) and step times (ms)."""

    checks: list[CheckResult] = field(default_factory=list)
    ping_rtts_ms: list[float] = field(default_factory=list)
    steps_ms: dict[str, float] = field(default_factory=dict)
    cleaned_up: bool = False

    def add(self, name: str, status: Status, evidence: str, **data: Any) -> None:
        self.checks.append(CheckResult(name, status, evidence, data))


def _said(answer: HttpAnswer) -> str:
    if answer.status is None:
        return answer.error or "no answer"
    detail = answer.body.get("error") or answer.body.get("code") or answer.body.get("message")
    return f"HTTP {answer.status}" + (f" ({detail})" if detail else "")


async def _shorten(redis: RedisService, key: str, ttl: int) -> bool:
    """Mark the probe record and make it expire in ``ttl`` seconds (value and TTL in one SET)."""
    async with redis.guard("probe mark"):
        raw = await redis.client.get(key)
        if raw is None:
            return False
        data = decode_json(raw)
        if not isinstance(data, dict):
            return False
        data["probe"] = True
        data["expiresAt"] = int(time.time() * 1000) + ttl * 1000
        return bool(await redis.client.set(key, encode_json(data), ex=ttl, xx=True))


async def run_lifecycle(
    backend_urls: Sequence[str],
    *,
    redis: RedisService | None,
    pings: int = 3,
    timeout: float = 5.0,
    origin: str | None = None,
) -> LifecycleResult:
    """Create a probe session through the first backend, validate it and open a WebSocket
    (``pings`` round trips) through every instance, extend it by one minute through the last,
    end it through the first, then expect validate → 404 and WebSocket → close 4000 everywhere.

    ``redis`` (allowed to write) marks, shortens and finally deletes the probe key; without
    it the probe is only ended through the backend (it then expires within 60 s).
    """
    result = LifecycleResult()
    clients = [BackendClient(url, timeout=timeout) for url in backend_urls]
    session_id: str | None = None
    key: str | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            for client in clients:
                await stack.enter_async_context(client)
            with creation_window():
                answer, session_id = await clients[0].start_probe()
                result.steps_ms["create"] = answer.elapsed_ms
                if not answer.ok or not session_id:
                    result.add(
                        "create",
                        Status.FAIL,
                        f"POST /api/labs/start on {clients[0].base_url}: {_said(answer)}",
                        response=answer.body,
                    )
                    return result
                result.add(
                    "create",
                    Status.PASS,
                    f"created probe session {log_id(session_id)} through {clients[0].base_url} "
                    f"({_said(answer)}, {answer.elapsed_ms:.1f} ms)",
                )
                if redis is not None:
                    key = redis.settings.key_prefix + session_id
                    try:
                        marked = await _shorten(redis, key, PROBE_TTL_SECONDS)
                    except (LabSessionError, ValueError) as exc:
                        marked = False
                        log.warning("could not mark the probe session: %s", exc)
            if redis is not None:
                if marked:
                    result.add(
                        "probe marked", Status.PASS, f'probe record marked "probe": true, TTL {PROBE_TTL_SECONDS} s'
                    )
                else:
                    result.add(
                        "probe marked",
                        Status.WARN,
                        f"the probe key {redis.settings.key_prefix}{log_id(session_id)} was not found "
                        "in this Redis: does the backend use another store?",
                    )
            for client in clients:
                check = await client.validate(session_id)
                valid = check.ok and check.body.get("valid") is True
                result.add(
                    f"validate via {client.base_url}",
                    Status.PASS if valid else Status.FAIL,
                    f"{_said(check)}, valid={check.body.get('valid')}, {check.elapsed_ms:.1f} ms",
                )
                ws = await ws_session(
                    to_ws_url(client.base_url), session_id, origin=origin, pings=pings, timeout=timeout
                )
                result.ping_rtts_ms.extend(ws.ping_rtts_ms)
                if ws.connected and len(ws.ping_rtts_ms) == pings:
                    p50 = percentile(ws.ping_rtts_ms, 50)
                    rtt = f", ping p50 {p50:.2f} ms" if p50 is not None else ""
                    result.add(
                        f"websocket via {client.base_url}",
                        Status.PASS,
                        f"connected in {ws.handshake_ms or 0:.1f} ms, {len(ws.ping_rtts_ms)} pongs{rtt}",
                        **ws.to_dict(),
                    )
                else:
                    result.add(
                        f"websocket via {client.base_url}",
                        Status.FAIL,
                        f"expected connected and {pings} pongs; got first={ws.first_type} "
                        f"code={ws.first_code} close={ws.close_code} refused={ws.refused_status} "
                        f"error={ws.error}",
                        **ws.to_dict(),
                    )
            before = await clients[-1].validate(session_id)
            extended = await clients[-1].extend(session_id, 1)
            new_expiry = extended.body.get("newExpiresAt", extended.body.get("expiresAt"))
            old_expiry = before.body.get("expiresAt")
            if extended.ok and isinstance(new_expiry, int) and isinstance(old_expiry, int):
                moved = new_expiry - old_expiry
                status = Status.PASS if moved == 60_000 else Status.FAIL
                result.add(
                    "extend",
                    status,
                    f"extend by 1 minute through {clients[-1].base_url} moved expiresAt by {moved} ms (want 60000)",
                    movedMs=moved,
                )
            else:
                result.add("extend", Status.FAIL, f"extend through {clients[-1].base_url}: {_said(extended)}")
            ended = await clients[0].end(session_id)
            result.add(
                "end", Status.PASS if ended.ok else Status.FAIL, f"end through {clients[0].base_url}: {_said(ended)}"
            )
            for client in clients:
                after = await client.validate(session_id)
                gone = after.status == 404 and after.body.get("valid") is not True
                evidence = f"after end: {_said(after)}, valid={after.body.get('valid')}"
                if after.body.get("valid") is True:
                    evidence += " — the ended session came back (grace-period revival?)"
                result.add(f"ended → 404 via {client.base_url}", Status.PASS if gone else Status.FAIL, evidence)
                ws = await ws_session(to_ws_url(client.base_url), session_id, origin=origin, timeout=timeout)
                closed = ws.close_code == 4000
                result.add(
                    f"ended → close 4000 via {client.base_url}",
                    Status.PASS if closed else Status.FAIL,
                    f"WebSocket after end: first={ws.first_type} code={ws.first_code} close={ws.close_code} "
                    f"in {ws.close_ms or 0:.0f} ms" + (f", error={ws.error}" if ws.error else ""),
                    **ws.to_dict(),
                )
    finally:
        if session_id is not None:
            result.cleaned_up = await _cleanup(backend_urls[0], session_id, redis, key, timeout)
            result.add(
                "cleanup",
                Status.PASS if result.cleaned_up else Status.WARN,
                "probe session deleted"
                if result.cleaned_up and key
                else "probe session ended (Redis expires it within 60 s)"
                if result.cleaned_up
                else "could not clean up the probe session; it expires by itself",
            )
    return result


async def _cleanup(base_url: str, session_id: str, redis: RedisService | None, key: str | None, timeout: float) -> bool:
    ok = False
    with contextlib.suppress(Exception):
        async with BackendClient(base_url, timeout=timeout) as client:
            answer = await client.end(session_id)
            ok = answer.status is not None and answer.status < 500
    if redis is not None and key is not None:
        try:
            async with redis.guard("probe cleanup"):
                await redis.client.delete(key)
            ok = True
        except Exception as exc:  # cleanup must not hide the result; the key expires anyway
            log.warning("could not delete the probe key: %s", type(exc).__name__)
    return ok


@contextlib.asynccontextmanager
async def probe_session(
    base_url: str, *, redis: RedisService | None, timeout: float = 5.0, ttl_seconds: int = PROBE_TTL_SECONDS
) -> AsyncIterator[tuple[str | None, HttpAnswer]]:
    """Create a probe session through ``base_url`` for the block; yields ``(session_id, answer)``
    (``session_id`` is ``None`` when creation failed). With ``redis`` the record is marked and
    shortened to ``ttl_seconds`` (:data:`PROBE_TTL_SECONDS` by default). Always ended and deleted
    on the way out.
    """
    with creation_window():
        async with BackendClient(base_url, timeout=timeout) as client:
            answer, session_id = await client.start_probe()
        key = redis.settings.key_prefix + session_id if redis is not None and session_id else None
        if redis is not None and key is not None:
            with contextlib.suppress(LabSessionError, ValueError):
                await _shorten(redis, key, ttl_seconds)
    try:
        yield session_id, answer
    finally:
        if session_id is not None:
            await _cleanup(base_url, session_id, redis, key, timeout)
