"""``WS /terminal/{sessionId}``: the lab terminal socket, without the terminal.

The handshake is refused (403) for an ``Origin`` outside the allow-list. Otherwise the socket
is accepted first, so a client sees a close code rather than an HTTP error, then the session is
looked up with the TypeScript backend's retry (after 0, 100, 200, 400 ms; one ``GET`` each, never
``KEYS``), timed from the upgrade request's arrival so that reads slowed by load do not add up.
Messages the client sends meanwhile wait in the server's queue and are answered in order afterwards.
Then ``{"type":"connected",…}``, or an error with ``SESSION_NOT_FOUND`` and
close 4000 "Invalid session".

While open: ``{"type":"ping"}`` → ``{"type":"pong","timestamp"}``; invalid JSON, unknown types and
binary frames → an error message, the socket stays open; nothing is ever executed. The session
is re-read every ``session_poll_interval`` seconds (one pipelined read for all sockets of this
instance): ended or expired elsewhere → error and close 4000. The store failing → error with
``STORE_UNAVAILABLE`` and close 1013 (try again later). No message for ``idle_timeout`` seconds →
close 1000 "Idle timeout". Shutdown → close 1001. Messages over ``max_message_size`` bytes →
close 1009 (by the protocol layer).

Close codes: 1000 idle, 1001 shutdown, 1009 too big, 1013 store unavailable, 4000 invalid session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import LabSessionError, RedisUnavailable
from ..masking import get_logger, log_id
from ..sessions.model import check_session_id
from ..sessions.service import ValidationReason, ValidationResult
from .errors import reason_code, truncate_echo
from .jsonio import JsonResponse, iso_time, request_id
from .origins import OriginPolicy
from .state import BackendState

__all__ = [
    "CLOSE_IDLE",
    "CLOSE_INVALID_SESSION",
    "CLOSE_SHUTDOWN",
    "CLOSE_STORE_UNAVAILABLE",
    "TerminalConnection",
    "terminal_routes",
]

log = get_logger(__name__)

CLOSE_IDLE = 1000
CLOSE_SHUTDOWN = 1001
CLOSE_STORE_UNAVAILABLE = 1013
CLOSE_INVALID_SESSION = 4000
_COMMAND_TYPES = frozenset({"command", "exec", "execute", "input", "shell", "run"})


#: Lookups are retried (``lookup_delays``) only while another instance's write may still be on its
#: way: the key is not there yet, or the session is still being created.
_WORTH_RETRYING = frozenset({ValidationReason.NOT_FOUND, ValidationReason.NOT_ACTIVE})


class TerminalConnection:
    """One accepted ``/terminal`` socket: its lookup, its message loop and its reasons to close."""

    def __init__(
        self, websocket: WebSocket, state: BackendState, raw_id: str, rid: str | None, *, arrived: float | None = None
    ) -> None:
        """``arrived``: when the upgrade request reached this instance (``time.monotonic()``)."""
        self.websocket = websocket
        self.state = state
        self.raw_id = raw_id
        self.rid = rid or "-"
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.messages = 0
        self.close_code: int | None = None
        self._opened = time.monotonic()
        self._arrived = self._opened if arrived is None else arrived

    # -- called from elsewhere ---------------------------------------------------------------

    def request_close(self, code: int, reason: str) -> None:
        """Ask the connection to close with ``code`` (used on shutdown)."""
        self.events.put_nowait(("close", (code, reason)))

    def _on_verdict(self, verdict: ValidationResult | RedisUnavailable) -> None:
        self.events.put_nowait(("verdict", verdict))

    # -- the connection ----------------------------------------------------------------------

    async def run(self) -> None:
        reader = asyncio.create_task(self._read(), name="labsession-terminal-reader")
        unwatch = None
        try:
            session_id = await self._lookup()
            if session_id is None:
                return
            unwatch = self.state.watcher.watch(session_id, self._on_verdict)
            await self._loop()
        finally:
            if unwatch is not None:
                unwatch()
            reader.cancel()
            self.state.info(
                log,
                f"event=ws_closed rid={self.rid} session={log_id(self.raw_id)} "
                f"code={self.close_code} messages={self.messages} "
                f"seconds={time.monotonic() - self._opened:.3f}",
            )

    async def _read(self) -> None:
        """Move every client message into ``events`` as it arrives, so none is lost during the lookup."""
        while True:
            try:
                message = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.events.put_nowait(("gone", 1006))
                return
            if message["type"] == "websocket.disconnect":
                self.events.put_nowait(("gone", message.get("code", 1005)))
                return
            if message.get("text") is not None:
                self.events.put_nowait(("text", message["text"]))
            elif message.get("bytes") is not None:
                self.events.put_nowait(("bytes", message["bytes"]))

    async def _lookup(self) -> str | None:
        """The session id once the session validates, else ``None`` (after the error and the close)."""
        try:
            session_id = check_session_id(self.raw_id)
        except LabSessionError:
            await self._reject(ValidationReason.NOT_FOUND, "malformed id")
            return None
        verdict: ValidationResult | None = None
        due = self._arrived
        for delay in self.state.config.lookup_delays:
            # Attempt n is due sum(delays[:n+1]) after the upgrade request arrived: the same
            # window as the TypeScript backend, which slow reads under load do not stretch.
            due += delay
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                self.state.require_store()
                verdict = await self.state.sessions.validate(session_id)
            except RedisUnavailable as exc:
                await self._store_failed(exc)
                return None
            if verdict.reason not in _WORTH_RETRYING:
                break  # valid, or final (ended, expired, corrupt): waiting cannot change it
        assert verdict is not None
        if not verdict.valid or verdict.session is None:
            await self._reject(verdict.reason, verdict.reason.value)
            return None
        session = verdict.session
        await self._send(
            {
                "type": "connected",
                "message": "Connected to lab terminal",
                "sessionId": session_id,
                "labId": session.lab_id,
                "expiresAt": session.expires_at,
                "instanceId": self.state.config.instance_id,
                "timestamp": iso_time(),
            }
        )
        self.state.info(log, f"event=ws_connected rid={self.rid} session={log_id(session_id)}")
        return session_id

    async def _loop(self) -> None:
        idle = self.state.config.idle_timeout
        last = time.monotonic()
        while True:
            remaining = idle - (time.monotonic() - last)
            try:
                if remaining <= 0:
                    raise TimeoutError
                kind, value = await asyncio.wait_for(self.events.get(), remaining)
            except TimeoutError:
                await self._close(CLOSE_IDLE, "Idle timeout")
                return
            if kind == "gone":
                self.close_code = int(value)
                return
            if kind == "close":
                await self._close(*value)
                return
            if kind == "verdict":
                if isinstance(value, RedisUnavailable):
                    await self._store_failed(value)
                else:
                    await self._reject(value.reason, value.reason.value)
                return
            last = time.monotonic()
            self.messages += 1
            await self._handle(kind, value)

    async def _handle(self, kind: str, value: Any) -> None:
        if kind == "bytes":
            await self._error("UNSUPPORTED_FRAME", "Binary frames are not supported; send JSON text")
            return
        try:
            message = json.loads(value)
        except (ValueError, RecursionError):
            await self._error("INVALID_JSON", "Invalid JSON")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._error("INVALID_MESSAGE", "Expected a JSON object with a string 'type'")
            return
        kind = message["type"]
        if kind == "ping":
            await self._send({"type": "pong", "timestamp": iso_time()})
        elif kind in _COMMAND_TYPES:
            await self._error("COMMANDS_DISABLED", "This backend never executes commands")
        else:
            await self._error("UNKNOWN_TYPE", f"Unknown message type: {truncate_echo(kind, 40)!r}")

    # -- sending -----------------------------------------------------------------------------

    async def _send(self, payload: dict[str, Any]) -> bool:
        try:
            await self.websocket.send_text(json.dumps(payload, separators=(",", ":")))
            return True
        except (WebSocketDisconnect, RuntimeError, OSError):
            return False

    async def _error(self, code: str, message: str, **fields: Any) -> bool:
        return await self._send({"type": "error", "code": code, "message": message, **fields, "timestamp": iso_time()})

    async def _close(self, code: int, reason: str) -> None:
        self.close_code = code
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.websocket.close(code, reason)

    async def _reject(self, reason: ValidationReason, detail: str) -> None:
        await self._error(reason_code(reason), "Session not found or expired", sessionId=truncate_echo(self.raw_id))
        await self._close(CLOSE_INVALID_SESSION, "Invalid session")
        self.state.info(log, f"event=ws_rejected rid={self.rid} session={log_id(self.raw_id)} reason={detail}")

    async def _store_failed(self, exc: RedisUnavailable) -> None:
        await self._error(
            "STORE_UNAVAILABLE", "The session store is unavailable; reconnect shortly", cause=exc.cause.value
        )
        await self._close(CLOSE_STORE_UNAVAILABLE, "Store unavailable")
        log.warning(
            "event=ws_store_unavailable rid=%s session=%s cause=%s", self.rid, log_id(self.raw_id), exc.cause.value
        )


async def terminal(websocket: WebSocket) -> None:
    arrived = time.monotonic()
    state: BackendState = websocket.app.state.backend
    policy: OriginPolicy = websocket.app.state.origins
    rid = request_id(websocket.scope)
    origin = websocket.headers.get("origin")
    if not policy.allows(origin):
        log.info("event=ws_refused rid=%s reason=origin", rid)
        await websocket.send_denial_response(
            JsonResponse({"error": "Origin not allowed", "code": "ORIGIN_REFUSED", "requestId": rid}, status_code=403)
        )
        return
    if state.shutting_down:
        await websocket.send_denial_response(
            JsonResponse(
                {"error": "This instance is shutting down", "code": "SHUTTING_DOWN", "requestId": rid}, status_code=503
            )
        )
        return
    await websocket.accept()
    connection = TerminalConnection(
        websocket, state, str(websocket.path_params.get("session_id", "")), rid, arrived=arrived
    )
    state.add_socket(connection)
    try:
        await connection.run()
    finally:
        state.remove_socket(connection)


def terminal_routes() -> list[WebSocketRoute]:
    return [WebSocketRoute("/terminal/{session_id}", terminal)]
