"""WebSocket probe: per-instance health and diagnostics, the ``/terminal`` handshake, invalid and
valid sessions, refused origins, which instances (and stores) answer behind one URL, and a
connection held open for a while (:func:`hold_connection`: pings, or silence, and how it ended).

Works with both backends of docs/contract.md: what the TypeScript backend does not report (an
instance or store identity) is a WARN saying it is unknown, never a crash. Times are ms.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

if TYPE_CHECKING:  # the client module costs every command ~15 ms at import; websockets.connect loads it
    from websockets.asyncio.client import ClientConnection

from ..checks import CheckResult, Status
from ..masking import mask_text
from ..store.service import StoreIdentity
from .backend import BackendClient, Diagnostics, WsOutcome, to_ws_url, ws_session
from .stats import percentile

__all__ = [
    "REFUSED_ORIGIN",
    "BalancerSample",
    "HeldConnection",
    "InstanceInfo",
    "PingSample",
    "check_instance",
    "hold_connection",
    "probe_refused_origin",
    "probe_unknown_session",
    "probe_valid_session",
    "sample_balancer",
    "same_store",
]

#: An origin no configuration should allow.
REFUSED_ORIGIN = "https://labsession-probe.invalid"


def same_store(a: StoreIdentity, b: StoreIdentity) -> bool | None:
    """Whether ``a`` and ``b`` read the same sessions: one server (``run_id``) or one data set
    through a replica (``replid``), in the same database and key prefix where both report them;
    by endpoint when neither server is named; ``None`` when unknowable. A replica that lags is
    still the same store here (the invalid_session runbook measures the lag)."""
    if a.db is not None and b.db is not None and a.db != b.db:
        return False
    if a.key_prefix is not None and b.key_prefix is not None and a.key_prefix != b.key_prefix:
        return False
    if a.run_id and b.run_id:
        if a.run_id == b.run_id:
            return True
        return bool(a.replid and a.replid == b.replid)
    if a.endpoint and b.endpoint and "?" not in (a.endpoint, b.endpoint):
        return a.endpoint == b.endpoint
    return None


@dataclass(slots=True)
class InstanceInfo:
    """What one backend URL said about itself; ``diagnostics`` is ``None`` when it did not answer."""

    url: str
    health_status: int | None
    health_ms: float
    diagnostics: Diagnostics | None
    checks: list[CheckResult] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        d = self.diagnostics
        return {
            "url": self.url,
            "health": self.health_status,
            "healthMs": round(self.health_ms, 1),
            "backend": d.flavour if d else None,
            "instance": d.instance_id if d else None,
            "store": (d.store.run_id or d.store.endpoint) if d and d.store else None,
            "sessions": d.session_count if d else None,
        }


async def check_instance(url: str, *, timeout: float = 5.0, our_store: StoreIdentity | None = None) -> InstanceInfo:
    """``GET /health`` and the diagnostics route of one instance, as checks."""
    async with BackendClient(url, timeout=timeout) as client:
        health = await client.health()
        answer, diag = await client.diagnostics()
    info = InstanceInfo(url, health.status, health.elapsed_ms, diag)
    if health.ok:
        info.checks.append(
            CheckResult(f"health {url}", Status.PASS, f"/health answered {health.status} in {health.elapsed_ms:.1f} ms")
        )
    else:
        info.checks.append(
            CheckResult(f"health {url}", Status.FAIL, f"/health: {health.error or f'HTTP {health.status}'}")
        )
    if diag is None or not answer.ok:
        what = answer.error or f"HTTP {answer.status}"
        info.checks.append(
            CheckResult(f"diagnostics {url}", Status.FAIL, f"diagnostics route: {what}", {"response": answer.body})
        )
        return info
    evidence = f"{diag.flavour} backend, {diag.session_count} sessions"
    if diag.lists_session_ids:
        info.checks.append(
            CheckResult(
                f"diagnostics {url}",
                Status.WARN,
                f"{evidence}; it publishes every session id (the only credential /terminal asks for) — ids hidden here",
            )
        )
    else:
        info.checks.append(CheckResult(f"diagnostics {url}", Status.PASS, evidence))
    if diag.store is None:
        info.checks.append(
            CheckResult(
                f"store identity {url}",
                Status.WARN,
                "the instance does not report which store it uses: sharing is unknown",
            )
        )
    elif our_store is not None and same_store(diag.store, our_store) is False:
        info.checks.append(
            CheckResult(
                f"store identity {url}",
                Status.FAIL,
                f"the instance uses store {diag.store.endpoint} (run_id "
                f"{(diag.store.run_id or '?')[:12]}), not the Redis this notebook inspects "
                f"({our_store.endpoint})",
            )
        )
    else:
        info.checks.append(
            CheckResult(
                f"store identity {url}",
                Status.PASS,
                f"store {diag.store.endpoint} (run_id {(diag.store.run_id or '?')[:12]})",
            )
        )
    return info


async def probe_unknown_session(
    base_url: str, *, timeout: float = 5.0, expected_close_ms: float = 2000.0
) -> tuple[CheckResult, WsOutcome]:
    """Connect with a random (unknown) session id: expect an error and close 4000 within ``expected_close_ms``."""
    outcome = await ws_session(to_ws_url(base_url), str(uuid.uuid4()), timeout=timeout, wait_close=True)
    name = f"unknown session {base_url}"
    data = outcome.to_dict()
    if outcome.close_code == 4000:
        took = outcome.close_ms or 0.0
        text = (
            f"handshake {outcome.handshake_ms or 0:.1f} ms, then {outcome.first_code or outcome.first_type} and "
            f"close 4000 after {took:.0f} ms (expected within {expected_close_ms:.0f} ms)"
        )
        if took <= expected_close_ms:
            return CheckResult(name, Status.PASS, text, data), outcome
        return CheckResult(name, Status.WARN, text, data, timing="closed later than expected"), outcome
    if outcome.connected:
        return CheckResult(name, Status.FAIL, "a random session id was accepted as connected", data), outcome
    return CheckResult(
        name,
        Status.FAIL,
        f"expected close 4000; got first={outcome.first_type} "
        f"close={outcome.close_code} refused={outcome.refused_status} error={outcome.error}",
        data,
    ), outcome


async def probe_valid_session(
    base_url: str, session_id: str, *, pings: int = 5, timeout: float = 5.0, origin: str | None = None
) -> tuple[CheckResult, WsOutcome]:
    """Connect with a valid session: expect ``connected`` and ``pings`` pongs (round trips in the outcome)."""
    outcome = await ws_session(to_ws_url(base_url), session_id, origin=origin, pings=pings, timeout=timeout)
    name = f"valid session {base_url}"
    if outcome.connected and len(outcome.ping_rtts_ms) == pings:
        p50 = percentile(outcome.ping_rtts_ms, 50) or 0.0
        p99 = percentile(outcome.ping_rtts_ms, 99) or 0.0
        return CheckResult(
            name,
            Status.PASS,
            f"connected after {outcome.first_ms or 0:.1f} ms; {pings} pings, RTT p50 {p50:.2f} ms, p99 {p99:.2f} ms",
            outcome.to_dict(),
        ), outcome
    return CheckResult(
        name,
        Status.FAIL,
        f"expected connected and {pings} pongs; got first={outcome.first_type} "
        f"code={outcome.first_code} close={outcome.close_code} error={outcome.error}",
        outcome.to_dict(),
    ), outcome


async def probe_refused_origin(
    base_url: str, *, allowed: tuple[str, ...] = (), timeout: float = 5.0
) -> list[CheckResult]:
    """Handshakes from origins that must be refused: an unrelated one and, when an allowed origin
    is known, that origin with a suffix (a substring match lets it through)."""
    origins = [REFUSED_ORIGIN]
    if allowed:
        origins.append(allowed[0].rstrip("/") + ".evil.example")
    out: list[CheckResult] = []
    for origin in origins:
        outcome = await ws_session(
            to_ws_url(base_url), str(uuid.uuid4()), origin=origin, timeout=timeout, wait_close=True
        )
        name = f"refused origin {base_url} ({origin})"
        if outcome.refused_status is not None:
            out.append(
                CheckResult(
                    name, Status.PASS, f"handshake refused with HTTP {outcome.refused_status}", outcome.to_dict()
                )
            )
        elif outcome.handshake_ms is not None:
            out.append(
                CheckResult(
                    name,
                    Status.FAIL,
                    f"handshake from a disallowed origin was accepted (then close "
                    f"{outcome.close_code}); check the origin allow-list",
                    outcome.to_dict(),
                )
            )
        else:
            out.append(CheckResult(name, Status.FAIL, f"no handshake answer: {outcome.error}", outcome.to_dict()))
    return out


@dataclass(slots=True)
class BalancerSample:
    """Which instances and stores answered ``n`` diagnostics requests through one URL."""

    url: str
    requests: int = 0
    failures: int = 0
    instances: Counter[str] = field(default_factory=Counter)
    stores: dict[str, StoreIdentity | None] = field(default_factory=dict)

    def check(self, our_store: StoreIdentity | None = None) -> CheckResult:
        name = f"instances behind {self.url}"
        data = {"requests": self.requests, "failures": self.failures, "instances": dict(self.instances)}
        if not self.instances:
            return CheckResult(name, Status.FAIL, f"no answer in {self.requests} requests", data)
        known = {k: v for k, v in self.stores.items() if v is not None}
        unknown = [k for k, v in self.stores.items() if v is None]
        spread = f"{len(self.instances)} instance(s) answered {self.requests} requests"
        if self.failures:
            spread += f" ({self.failures} failed)"
        identities = list(known.values())
        split = any(same_store(identities[0], other) is False for other in identities[1:]) if identities else False
        if our_store is not None:
            split = split or any(same_store(our_store, other) is False for other in identities)
        if split:
            stores = ", ".join(f"{k}: {(v.run_id or v.endpoint)[:12]}" for k, v in known.items())
            return CheckResult(
                name,
                Status.FAIL,
                f"{spread}; they do NOT share one store ({stores}): a session made on one is invalid on another",
                data,
            )
        if unknown:
            return CheckResult(
                name, Status.WARN, f"{spread}; {len(unknown)} report no store identity, so sharing is unknown", data
            )
        return CheckResult(name, Status.PASS, f"{spread}, all on one store", data)


async def sample_balancer(url: str, n: int = 8, *, timeout: float = 5.0, concurrency: int = 4) -> BalancerSample:
    """``n`` diagnostics requests through ``url``, each on a new connection, at most ``concurrency`` at once."""
    sample = BalancerSample(url)
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate, BackendClient(url, timeout=timeout) as client:
            answer, diag = await client.diagnostics()
        sample.requests += 1
        if diag is None or not answer.ok:
            sample.failures += 1
            return
        name = diag.instance_id or f"(unnamed #{index})"
        sample.instances[name] += 1
        sample.stores[name] = diag.store

    await asyncio.gather(*(one(i) for i in range(n)))
    return sample


# -- a connection held open ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PingSample:
    """One ping on a held connection: sent ``at_s`` seconds after connecting; round trips in ms of a
    protocol ping (the WebSocket Ping frame) and of a ``{"type":"ping"}`` message, each ``None``
    when no answer came within the ping timeout."""

    at_s: float
    protocol_ms: float | None
    app_ms: float | None

    @property
    def answered(self) -> bool:
        return self.protocol_ms is not None and self.app_ms is not None


@dataclass(slots=True)
class HeldConnection:
    """One ``/terminal/{id}`` connection held for a while. Times are seconds since connecting.

    ``error`` (or ``refused_status``) is set when it never opened; ``connected`` when the first
    message said so (else ``first_code`` holds that message's ``code``). ``closed_at_s`` is set
    when it ended before the hold did: ``close_code`` is the code the peer sent, ``None`` when no
    close frame came (1006, the TCP connection was cut). ``last_error_code`` is the ``code`` of
    the last error message before the close (``SESSION_ENDED`` …).
    """

    label: str
    connected: bool = False
    instance_id: str | None = None
    refused_status: int | None = None
    first_code: str | None = None
    error: str | None = None
    pings: list[PingSample] = field(default_factory=list)
    closed_at_s: float | None = None
    close_code: int | None = None
    close_reason: str = ""
    last_error_code: str | None = None
    held_s: float = 0.0

    @property
    def closed(self) -> bool:
        return self.closed_at_s is not None

    @property
    def dropped(self) -> bool:
        """Closed without a close frame: the TCP connection was cut (seen by the client as 1006)."""
        return self.closed_at_s is not None and self.close_code is None

    def close_text(self) -> str:
        """``close 4000 "Invalid session" (SESSION_ENDED) after 3.2 s``, or what else happened."""
        if self.error:
            return self.error
        if self.closed_at_s is None:
            return f"open for {self.held_s:.1f} s"
        what = "cut without a close frame (1006)" if self.close_code is None else f"close {self.close_code}"
        if self.close_reason:
            what += f" {self.close_reason!r}"
        if self.last_error_code:
            what += f" ({self.last_error_code})"
        return f"{what} after {self.closed_at_s:.1f} s"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "connected": self.connected,
            "instance": self.instance_id,
            "refusedStatus": self.refused_status,
            "firstCode": self.first_code,
            "error": self.error,
            "pings": len(self.pings),
            "unanswered": sum(1 for p in self.pings if not p.answered),
            "closedAtS": None if self.closed_at_s is None else round(self.closed_at_s, 2),
            "closeCode": self.close_code,
            "closeReason": self.close_reason,
            "errorCode": self.last_error_code,
            "heldS": round(self.held_s, 2),
        }


async def _read_until_closed(
    ws: ClientConnection, held: HeldConnection, pongs: deque[asyncio.Future[float]], opened: float
) -> None:
    """Read every message until the peer closes: pongs answer the oldest ping waiting; error codes are kept."""
    while True:
        try:
            raw = await ws.recv()
        except ConnectionClosed as closed:
            held.closed_at_s = time.monotonic() - opened
            if closed.rcvd is not None:
                held.close_code = closed.rcvd.code
                held.close_reason = closed.rcvd.reason
            return
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        if message.get("type") == "pong" and pongs:
            waiter = pongs.popleft()  # one pong per ping, in order: a late pong answers its own ping
            if not waiter.done():
                waiter.set_result(time.perf_counter())
        elif message.get("type") == "error" and message.get("code"):
            held.last_error_code = str(message["code"])[:40]


async def _ping(
    ws: ClientConnection,
    pongs: deque[asyncio.Future[float]],
    reader: asyncio.Task[None],
    at_s: float,
    timeout: float,
) -> PingSample | None:
    """One protocol ping and one ping message, each waited for at most ``timeout`` s; ``None`` when the
    connection closed meanwhile (an answer it could no longer give is not an unanswered ping)."""
    protocol_ms: float | None = None
    app_ms: float | None = None
    try:
        latency = asyncio.ensure_future(await ws.ping())  # resolves to the round trip in seconds
        first: set[asyncio.Future[Any]] = {latency, reader}
        await asyncio.wait(first, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if latency.done() and not latency.cancelled() and latency.exception() is None:
            protocol_ms = latency.result() * 1000
        pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        pongs.append(pong)
        sent = time.perf_counter()
        await ws.send(json.dumps({"type": "ping"}))
        second: set[asyncio.Future[Any]] = {pong, reader}
        await asyncio.wait(second, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if pong.done():
            app_ms = (pong.result() - sent) * 1000
    except ConnectionClosed:
        return None
    sample = PingSample(at_s, protocol_ms, app_ms)
    return None if reader.done() and not sample.answered else sample


async def hold_connection(
    base_url: str,
    session_id: str,
    *,
    seconds: float,
    ping_every: float | None = None,
    ping_timeout: float = 5.0,
    connect_timeout: float = 5.0,
    origin: str | None = None,
    label: str = "",
) -> HeldConnection:
    """Open ``/terminal/{session_id}`` and hold it for ``seconds``: with ``ping_every`` a protocol
    ping and a ping message every ``ping_every`` s, else silence followed by one last ping (a
    connection cut silently answers nothing). Stops early when the peer closes or cuts it.

    The client sends no keepalive pings of its own (it still answers the server's), so a silent
    hold is as idle as a user's idle terminal. Every wait is bounded: ``connect_timeout`` to open
    and read the first message, ``ping_timeout`` per ping; the whole hold ends by
    ``seconds + connect_timeout + 3 * ping_timeout + 2``. Never raises for network trouble.
    """
    held = HeldConnection(label or base_url)
    url = f"{to_ws_url(base_url)}/terminal/{session_id}"
    try:
        async with asyncio.timeout(seconds + connect_timeout + 3 * ping_timeout + 2.0):
            await _hold(url, held, seconds, ping_every, ping_timeout, connect_timeout, origin)
    except TimeoutError:
        held.error = held.error or f"the connection did not finish within its {seconds:g} s hold and timeouts"
    return held


async def _hold(
    url: str,
    held: HeldConnection,
    seconds: float,
    ping_every: float | None,
    ping_timeout: float,
    connect_timeout: float,
    origin: str | None,
) -> None:
    try:
        ws = await websockets.connect(
            url,
            origin=origin,  # type: ignore[arg-type]
            open_timeout=connect_timeout,
            close_timeout=1.0,
            ping_interval=None,
            compression=None,
            proxy=None,
            max_size=2**20,
        )
    except InvalidStatus as exc:
        held.refused_status = exc.response.status_code
        held.error = f"handshake refused with HTTP {exc.response.status_code}"
        return
    except InvalidHandshake as exc:
        held.error = f"handshake failed: {type(exc).__name__}"
        return
    except TimeoutError:
        held.error = f"no handshake within {connect_timeout:g} s"
        return
    except OSError as exc:
        held.error = f"could not connect: {type(exc).__name__}: {mask_text(str(exc))[:120]}"
        return
    opened = time.monotonic()
    pongs: deque[asyncio.Future[float]] = deque()
    reader: asyncio.Task[None] | None = None
    try:
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), connect_timeout))
        except TimeoutError:
            held.error = f"connected, but no first message within {connect_timeout:g} s"
            return
        except ValueError:
            held.error = "the first message was not JSON"
            return
        except ConnectionClosed as closed:
            held.closed_at_s = time.monotonic() - opened
            if closed.rcvd is not None:
                held.close_code, held.close_reason = closed.rcvd.code, closed.rcvd.reason
            return
        if isinstance(first, dict):
            held.connected = first.get("type") == "connected"
            held.instance_id = str(first["instanceId"])[:80] if first.get("instanceId") else None
            if first.get("code"):
                held.last_error_code = held.first_code = str(first["code"])[:40]
        reader = asyncio.create_task(_read_until_closed(ws, held, pongs, opened), name="labsession-ws-hold")
        if not held.connected:
            await asyncio.wait({reader}, timeout=connect_timeout)  # an invalid session is closed next
            return
        end = opened + seconds
        if ping_every:
            while not reader.done() and time.monotonic() < end:
                tick = time.monotonic()
                sample = await _ping(ws, pongs, reader, tick - opened, ping_timeout)
                if sample is not None:
                    held.pings.append(sample)
                await asyncio.wait({reader}, timeout=max(0.0, min(end, tick + ping_every) - time.monotonic()))
        else:
            await asyncio.wait({reader}, timeout=max(0.0, end - time.monotonic()))
            if not reader.done():
                sample = await _ping(ws, pongs, reader, time.monotonic() - opened, ping_timeout)
                if sample is not None:
                    held.pings.append(sample)
        if reader.done():
            return
        held.held_s = time.monotonic() - opened
    finally:
        if reader is not None:
            if reader.done():
                held.held_s = held.closed_at_s or held.held_s
            reader.cancel()
        await ws.close()
