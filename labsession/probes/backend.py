"""Talking to a backend instance over HTTP and WebSocket, for either backend of docs/contract.md.

:class:`BackendClient` wraps the HTTP routes and normalizes the two backends' answers
(the TypeScript backend nests the new session under ``session`` and returns credentials;
ours returns the fields at the top level). Nothing returned here carries a secret or a
whole session id: credentials are dropped and ids are shortened before they reach a result.
:func:`ws_session` opens ``/terminal/{id}`` and records what happened, with times in ms.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ..masking import get_logger, mask_text, redact
from ..store.service import StoreIdentity

__all__ = [
    "PROBE_LAB_ID",
    "PROBE_USER_ID",
    "BackendClient",
    "Diagnostics",
    "HttpAnswer",
    "clock_offset",
    "WsOutcome",
    "parse_diagnostics",
    "to_ws_url",
    "ws_session",
]

log = get_logger(__name__)

#: Probe sessions are created with these fields, so anyone reading Redis can tell them apart.
PROBE_USER_ID = "labsession-probe"
PROBE_LAB_ID = "labsession-probe"


def to_ws_url(base_url: str) -> str:
    """``http://h:p`` → ``ws://h:p`` (and https → wss)."""
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :].rstrip("/")
    return "ws://" + base_url.split("://", 1)[-1].rstrip("/")


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """One HTTP exchange: status (``None`` when no answer), JSON body (redacted), time in ms, error text."""

    status: int | None
    body: dict[str, Any]
    elapsed_ms: float
    error: str | None = None
    #: The server's clock minus ours, seconds, from its HTTP ``Date`` header (:func:`clock_offset`:
    #: within about ±1 s plus half the round trip); ``None`` without an answer or a readable header.
    clock_offset_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """What ``/api/diagnostics/websocket`` told about an instance and its store.

    ``instance_id`` and ``store`` are ``None`` when the backend does not report them (the
    TypeScript backend reports neither); ``session_count`` comes from ``sessionCount`` or the
    length of ``activeSessions`` (whose ids are never kept); ``lists_session_ids`` flags a
    backend that publishes every session id.
    """

    instance_id: str | None
    store: StoreIdentity | None
    session_count: int | None
    lists_session_ids: bool
    cors_origins: tuple[str, ...]
    flavour: str
    #: Seconds since the instance started (``instance.uptimeSeconds``); ``None`` when not reported.
    uptime_seconds: float | None = None


def parse_diagnostics(body: dict[str, Any]) -> Diagnostics:
    """Read either backend's diagnostics body; unknown shapes give ``None`` fields, never an error."""
    instance = body.get("instance")
    instance_id: str | None = None
    if isinstance(instance, dict):
        raw = instance.get("id") or instance.get("instanceId")
        instance_id = str(raw) if raw else None
    elif isinstance(instance, str):
        instance_id = instance
    instance_id = instance_id or (str(body["instanceId"]) if body.get("instanceId") else None)
    uptime: float | None = None
    if isinstance(instance, dict) and isinstance(instance.get("uptimeSeconds"), int | float):
        uptime = float(instance["uptimeSeconds"])
    store_raw = body.get("store") or body.get("storeIdentity")
    store: StoreIdentity | None = None
    if isinstance(store_raw, dict) and (store_raw.get("runId") or store_raw.get("endpoint")):
        store = _store_identity(store_raw)
    active = body.get("activeSessions")
    count: int | None = None
    if isinstance(body.get("sessionCount"), int):
        count = int(body["sessionCount"])
    elif isinstance(active, list):
        count = len(active)
    origins = body.get("corsOrigins")
    cors = tuple(str(o) for o in origins) if isinstance(origins, list) else ()
    flavour = (
        "labsession"
        if "sessionCount" in body or isinstance(instance, dict)
        else ("typescript" if isinstance(active, list) else "unknown")
    )
    return Diagnostics(instance_id, store, count, isinstance(active, list), cors, flavour, uptime)


def _store_identity(raw: dict[str, Any]) -> StoreIdentity:
    """A reported store identity; fields of the wrong type count as not reported."""

    def text(name: str) -> str | None:
        value = raw.get(name)
        return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else None

    def number(name: str) -> int | None:
        value = raw.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return StoreIdentity(
        str(raw.get("endpoint") or "?"),
        text("runId") or text("run_id"),
        role=text("role"),
        replid=text("replId"),
        offset=number("replOffset"),
        link=text("replLink"),
        db=number("db"),
        key_prefix=text("keyPrefix"),
    )


def clock_offset(response: httpx.Response, sent: float, received: float) -> float | None:
    """The server's clock minus ours in seconds, from ``response``'s ``Date`` header, against the
    midpoint of ``sent`` and ``received`` (our epoch seconds). ``Date`` has whole seconds and
    servers refresh it once a second, so the server's time lies in [Date, Date + 2): its middle
    is taken (within ±1 s, plus half the round trip)."""
    raw = response.headers.get("date")
    if not raw:
        return None
    try:
        stamp = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return stamp + 1.0 - (sent + received) / 2


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {mask_text(str(exc))[:160]}"


def _clean(body: Any) -> dict[str, Any]:
    """A response body safe to keep: no credentials, session ids in lists dropped, secrets masked."""
    if not isinstance(body, dict):
        return {"_body": mask_text(str(body))[:200]}
    out = dict(body)
    for name in ("credentials", "sandboxAccount"):
        out.pop(name, None)
    if isinstance(out.get("session"), dict):
        out["session"] = {k: v for k, v in out["session"].items() if k not in ("credentials", "sandboxAccount")}
    if isinstance(out.get("activeSessions"), list):
        out["activeSessions"] = f"<{len(out['activeSessions'])} ids hidden>"
    cleaned: dict[str, Any] = redact(out)
    return cleaned


class BackendClient:
    """HTTP calls to one backend base URL (``http://host:port``); every call bounded by ``timeout`` s.

    Never raises for HTTP or network errors: an :class:`HttpAnswer` with ``status=None`` and
    ``error`` says what happened.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._client = client
        self._own = client is None
        #: The clock offset (s) of the last answer's ``Date`` header; ``None`` when it had none.
        self.last_clock_offset: float | None = None

    async def __aenter__(self) -> BackendClient:
        if self._client is None:
            # A new connection per client: a load balancer sees separate clients, not one keep-alive.
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._own and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[httpx.Response | None, float, str | None]:
        """One request bounded by ``timeout``: ``(response, ms, None)``, or ``(None, ms, error text)``.

        The server's clock offset (:func:`clock_offset`) is kept in ``last_clock_offset``."""
        if self._client is None:
            await self.__aenter__()
        assert self._client is not None
        started = time.perf_counter()
        sent = time.time()
        self.last_clock_offset = None
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.request(method, self.base_url + path, json=body, headers=headers)
            self.last_clock_offset = clock_offset(response, sent, time.time())
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            text = (
                f"no answer within {self.timeout:g} s"
                if isinstance(exc, TimeoutError | httpx.TimeoutException)
                else _failure(exc)
            )
            return None, (time.perf_counter() - started) * 1000, text
        return response, (time.perf_counter() - started) * 1000, None

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> HttpAnswer:
        """One request; JSON body parsed and cleaned; never raises for network trouble."""
        response, elapsed, error = await self._send(method, path, body, headers)
        if response is None:
            return HttpAnswer(None, {}, elapsed, error)
        try:
            parsed: Any = response.json()
        except (ValueError, UnicodeDecodeError):
            parsed = {"_body": response.text[:200]}
        return HttpAnswer(response.status_code, _clean(parsed), elapsed, clock_offset_s=self.last_clock_offset)

    async def raw_json(self, path: str) -> tuple[int | None, Any, float, str | None]:
        """GET ``path`` and return the raw parsed JSON (for parsers that must see the shape), never shown."""
        response, elapsed, error = await self._send("GET", path)
        if response is None:
            return None, None, elapsed, error
        try:
            return response.status_code, response.json(), elapsed, None
        except ValueError as exc:
            return None, None, elapsed, _failure(exc)

    async def health(self) -> HttpAnswer:
        return await self.request("GET", "/health")

    async def diagnostics(self, *, count: bool = True) -> tuple[HttpAnswer, Diagnostics | None]:
        """The diagnostics route, cleaned, and parsed into :class:`Diagnostics` (``None`` without a JSON body).

        ``count=False`` asks the reference backend not to count sessions (a SCAN of the whole
        keyspace per request); the TypeScript backend ignores the query and lists them anyway."""
        path = "/api/diagnostics/websocket" + ("" if count else "?count=false")
        status, data, elapsed, error = await self.raw_json(path)
        if status is None or not isinstance(data, dict):
            return HttpAnswer(status, {}, elapsed, error or "no JSON body", self.last_clock_offset), None
        return HttpAnswer(status, _clean(data), elapsed, clock_offset_s=self.last_clock_offset), parse_diagnostics(data)

    async def start_probe(self) -> tuple[HttpAnswer, str | None]:
        """Create a probe session; returns the answer (cleaned) and the new id (kept out of the answer)."""
        body = {"userId": PROBE_USER_ID, "labId": PROBE_LAB_ID, "purchaseId": "labsession-probe"}
        response, elapsed, error = await self._send("POST", "/api/labs/start", body)
        status = response.status_code if response is not None else None
        data: Any = None
        if response is not None:
            try:
                data = response.json()
            except ValueError as exc:
                error = _failure(exc)
        session_id: str | None = None
        if isinstance(data, dict):
            inner = data.get("session") if isinstance(data.get("session"), dict) else data
            raw = inner.get("sessionId") if isinstance(inner, dict) else None
            session_id = str(raw) if raw else None
        cleaned = _clean(data) if data is not None else {}
        for holder in (cleaned, cleaned.get("session")):
            if isinstance(holder, dict):
                for name in ("sessionId", "webSocketUrl"):
                    if name in holder:
                        holder[name] = "<probe session>"
        return HttpAnswer(status, cleaned, elapsed, error), session_id

    async def validate(self, session_id: str) -> HttpAnswer:
        return await self.request("GET", f"/api/labs/session/{session_id}/validate")

    async def extend(self, session_id: str, minutes: int) -> HttpAnswer:
        return await self.request("POST", f"/api/labs/session/{session_id}/extend", {"minutes": minutes})

    async def end(self, session_id: str) -> HttpAnswer:
        return await self.request("POST", f"/api/labs/session/{session_id}/end", {})


@dataclass(slots=True)
class WsOutcome:
    """One WebSocket visit to ``/terminal/{id}``. Times are ms from the start of the attempt.

    ``refused_status`` is the HTTP status of a refused handshake; ``close_code`` the code the
    server closed with (``None`` while open or when the client closed first).
    """

    handshake_ms: float | None = None
    refused_status: int | None = None
    first_type: str | None = None
    first_code: str | None = None
    first_ms: float | None = None
    close_code: int | None = None
    close_reason: str | None = None
    close_ms: float | None = None
    ping_rtts_ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def connected(self) -> bool:
        return self.first_type == "connected"

    def to_dict(self) -> dict[str, Any]:
        return {
            "handshakeMs": _r(self.handshake_ms),
            "refusedStatus": self.refused_status,
            "first": self.first_type,
            "code": self.first_code,
            "firstMs": _r(self.first_ms),
            "closeCode": self.close_code,
            "closeMs": _r(self.close_ms),
            "pings": len(self.ping_rtts_ms),
            "error": self.error,
        }


def _r(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


async def ws_session(
    ws_base: str,
    session_id: str,
    *,
    origin: str | None = None,
    pings: int = 0,
    timeout: float = 5.0,
    wait_close: bool = False,
) -> WsOutcome:
    """Connect to ``{ws_base}/terminal/{session_id}``, read the first message, send ``pings``
    ping messages (recording round trips), and, when ``wait_close``, wait for the server's close.
    Every wait is bounded by ``timeout`` seconds in total. Never raises for network trouble.
    """
    out = WsOutcome()
    started = time.perf_counter()

    def ms() -> float:
        return (time.perf_counter() - started) * 1000

    url = f"{ws_base.rstrip('/')}/terminal/{session_id}"
    try:
        async with asyncio.timeout(timeout):
            async with websockets.connect(
                url,
                origin=origin,  # type: ignore[arg-type]
                open_timeout=timeout,
                close_timeout=1.0,
                ping_interval=None,
                max_size=2**20,
            ) as ws:
                out.handshake_ms = ms()
                try:
                    first = await ws.recv()
                    out.first_ms = ms()
                    message = json.loads(first)
                    if isinstance(message, dict):
                        out.first_type = str(message.get("type"))
                        out.first_code = str(message["code"]) if message.get("code") else None
                    if out.connected:
                        for _ in range(pings):
                            sent = time.perf_counter()
                            await ws.send(json.dumps({"type": "ping"}))
                            while True:
                                reply = json.loads(await ws.recv())
                                if isinstance(reply, dict) and reply.get("type") == "pong":
                                    out.ping_rtts_ms.append((time.perf_counter() - sent) * 1000)
                                    break
                    if wait_close or not out.connected:
                        await ws.wait_closed()
                except ConnectionClosed:
                    pass
                except ValueError:
                    out.error = "a message was not JSON"
                received = ws.protocol.close_rcvd
                if received is not None:
                    out.close_code = received.code
                    out.close_reason = received.reason
                    out.close_ms = ms()
    except InvalidStatus as exc:
        out.refused_status = exc.response.status_code
        out.handshake_ms = ms()
    except InvalidHandshake as exc:
        out.error = f"handshake failed: {type(exc).__name__}"
    except TimeoutError:
        out.error = f"no answer within {timeout:g} s"
    except (OSError, ConnectionClosed) as exc:
        out.error = f"{type(exc).__name__}: {mask_text(str(exc))[:160]}"
    return out
