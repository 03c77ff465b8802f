"""The HTTP routes of docs/contract.md's "labsession" column.

Every handler reads the :class:`~labsession.backend.state.BackendState` from ``app.state``
and raises :class:`~labsession.backend.errors.ApiError` or a library error for anything but
success; :mod:`labsession.backend.app` turns those into JSON with a stable ``code``.
Responses never carry a secret: no sandbox account, no credentials, no session ids in listings.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import LabSessionError, RedisUnavailable
from ..sessions.model import LabSession, check_session_id
from ..sessions.service import ValidationReason, check_extension_minutes
from .errors import ApiError, from_library_error, reason_code, truncate_echo
from .jsonio import JsonResponse, iso_time, read_json_object, request_id, send_json
from .state import BackendState

__all__ = ["FIELD_LIMIT", "http_routes"]

#: Longest accepted ``userId``/``labId``/``purchaseId``/``token``, characters.
FIELD_LIMIT = 256
_NOT_FOUND_TEXT = "Session not found or expired"


def _state(request: Request) -> BackendState:
    state: BackendState = request.app.state.backend
    return state


def _session_id(request: Request) -> str:
    return _checked_id(str(request.path_params.get("session_id", "")))


def _checked_id(raw: str) -> str:
    try:
        return check_session_id(raw)
    except LabSessionError:
        raise ApiError(
            400,
            "INVALID_SESSION_ID",
            "Invalid session id (1 to 128 letters, digits, '.', '_' or '-')",
            field="sessionId",
            sessionId=truncate_echo(raw),
        ) from None


def _ws_base(request: Request, state: BackendState) -> str:
    if state.config.public_ws_base:
        return state.config.public_ws_base
    server = request.scope.get("server") or (state.config.host, state.config.port)
    host, port = str(server[0]), server[1]
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{port}" if port else f"ws://{host}"


def _public_view(session: LabSession, now_ms: int) -> dict[str, Any]:
    """What a client may see of a session: no sandbox account, no unknown (possibly secret) fields."""
    return {
        "sessionId": session.session_id,
        "userId": session.user_id,
        "labId": session.lab_id,
        "purchaseId": session.purchase_id,
        "status": session.status,
        "createdAt": session.created_at,
        "expiresAt": session.expires_at,
        "expiresIn": session.expires_in(now_ms),
        "webSocketUrl": session.web_socket_url,
    }


# -- health ---------------------------------------------------------------------------------


async def health(request: Request) -> JsonResponse:
    """Liveness: always 200 while the process serves; the store's last known state is in the body."""
    state = _state(request)
    return JsonResponse(
        {
            "status": "ok",
            "timestamp": iso_time(state.clock()),
            "instanceId": state.config.instance_id,
            "version": state.version,
            "store": state.store.to_dict(),
        }
    )


async def ready(request: Request) -> JsonResponse:
    """Readiness: a live PING of the store; 503 ``STORE_UNAVAILABLE`` while it cannot be reached."""
    state = _state(request)
    if state.shutting_down:
        raise ApiError(503, "SHUTTING_DOWN", "This instance is shutting down")
    store = await state.check_store()
    if not store.up:
        raise ApiError(
            503,
            "STORE_UNAVAILABLE",
            "The session store is unavailable",
            cause=store.cause,
            status="unavailable",
            store=store.to_dict(),
        )
    return JsonResponse(
        {
            "status": "ready",
            "timestamp": iso_time(state.clock()),
            "instanceId": state.config.instance_id,
            "store": store.to_dict(),
        }
    )


async def diagnostics(request: Request) -> JsonResponse:
    """This instance and its store, for runbooks: never a session id (they open terminals), a count
    instead. ``?count=false`` leaves the count out: it walks the whole keyspace with SCAN, and a
    runbook polling an instance (its uptime, a replica's offset) has no use for it."""
    state = _state(request)
    body: dict[str, Any] = {
        "status": "ok",
        "websocketEndpoint": "/terminal/:sessionId",
        "supportedProtocols": ["ws", "wss"],
        "corsOrigins": list(state.config.allowed_origins),
        "timestamp": iso_time(state.clock()),
        "instance": {
            "id": state.config.instance_id,
            "version": state.version,
            "uptimeSeconds": round(state.uptime, 3),
            "openWebSockets": len(state.sockets),
        },
    }
    try:
        state.require_store()
        identity = await state.redis.identity()
        count = None if request.query_params.get("count") == "false" else await state.sessions.count()
    except RedisUnavailable as exc:
        raise ApiError(
            503,
            "STORE_UNAVAILABLE",
            "The session store is unavailable",
            cause=exc.cause.value,
            instance=body["instance"],
            store={"endpoint": state.redis.settings.endpoint, "runId": None},
        ) from None
    body["store"] = identity.to_dict()
    if count is not None:
        body["sessionCount"] = count
    return JsonResponse(body)


# -- sessions -------------------------------------------------------------------------------


def _text_field(data: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, "INVALID_FIELD", f"Missing required field: {name}", field=name)
        return None
    if not isinstance(value, str) or len(value) > FIELD_LIMIT or not value.isprintable():
        raise ApiError(
            400, "INVALID_FIELD", f"{name} must be printable text of at most {FIELD_LIMIT} characters", field=name
        )
    return value


async def start_lab(request: Request) -> JsonResponse:
    """``POST /api/labs/start {userId, labId, purchaseId, token?}`` → 201 with the new session's id and URL."""
    state = _state(request)
    data = await read_json_object(request, state.config.max_body_size, required=True)
    user_id = _text_field(data, "userId", required=True)
    lab_id = _text_field(data, "labId", required=True)
    purchase_id = _text_field(data, "purchaseId", required=True)
    _text_field(data, "token", required=False)  # accepted for compatibility; never stored or echoed
    assert user_id is not None and lab_id is not None and purchase_id is not None
    state.require_store()
    session = await state.sessions.create(user_id, lab_id, purchase_id, base_url=_ws_base(request, state))
    summary = {"sessionId": session.session_id, "webSocketUrl": session.web_socket_url, "expiresAt": session.expires_at}
    return JsonResponse({"success": True, **summary, "session": summary}, status_code=201)


async def get_session(request: Request) -> JsonResponse:
    """``GET /api/labs/session/{id}`` → the session (no credentials) while it is valid, else 404."""
    state = _state(request)
    session_id = _session_id(request)
    state.require_store()
    verdict = await state.sessions.validate(session_id)
    if not verdict.valid or verdict.session is None:
        raise ApiError(
            404, reason_code(verdict.reason), _NOT_FOUND_TEXT, sessionId=session_id, reason=verdict.reason.value
        )
    return JsonResponse(_public_view(verdict.session, state.sessions.now_ms()))


async def validate(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /api/labs/session/{id}/validate``: the TypeScript backend's field names, one ``GET``, no writes.

    The busiest route, so a plain ASGI endpoint: no ``Request``, handler wrapper or ``Response``
    object (~4 µs of a request). Errors are raised as in every other route and answered by the
    app's exception handlers."""
    state: BackendState = scope["app"].state.backend
    try:
        session_id = _checked_id(str(scope["path_params"].get("session_id", "")))
        state.require_store()
        verdict = await state.sessions.validate(session_id)
    except ApiError as exc:
        exc.fields["valid"] = False
        raise
    except RedisUnavailable as exc:
        error = from_library_error(exc)
        error.fields["valid"] = False
        raise error from None
    session = verdict.session
    if verdict.reason is not ValidationReason.OK or session is None:
        # Answered, not raised: a miss is the common case under attack and exceptions cost ~20 %.
        await send_json(
            send,
            404,
            {
                "error": _NOT_FOUND_TEXT,
                "code": reason_code(verdict.reason),
                "valid": False,
                "sessionId": session_id,
                "reason": verdict.reason.value,
                "requestId": request_id(scope),
            },
        )
        return
    await send_json(
        send,
        200,
        {
            "valid": True,
            "sessionId": session.session_id,
            "labId": session.lab_id,
            "status": session.status,
            "expiresAt": session.expires_at,
            "expiresIn": verdict.expires_in if verdict.expires_in is not None else 0,
        },
    )


async def extend(request: Request) -> JsonResponse:
    """``POST …/extend {minutes?=30}``: atomic across instances; minutes a whole number from 1 to 1440."""
    state = _state(request)
    session_id = _session_id(request)
    data = await read_json_object(request, state.config.max_body_size, required=False)
    try:  # bad input is a 400 before anything else, even while the store is down
        minutes = check_extension_minutes(data.get("minutes", 30), session_id)
        state.require_store()
        session = await state.sessions.extend(session_id, minutes)
    except LabSessionError as exc:
        raise from_library_error(exc, changing=True) from None
    return JsonResponse(
        {
            "success": True,
            "sessionId": session_id,
            "newExpiresAt": session.expires_at,
            "expiresAt": session.expires_at,
            "expiresIn": session.expires_in(state.sessions.now_ms()),
            "minutes": minutes,
        }
    )


async def end(request: Request) -> JsonResponse:
    """``POST …/end``: idempotent; unknown ids → 404; an ended session stays ended."""
    state = _state(request)
    session_id = _session_id(request)
    state.require_store()
    try:
        session = await state.sessions.end(session_id)
    except LabSessionError as exc:
        raise from_library_error(exc, changing=True) from None
    return JsonResponse({"success": True, "sessionId": session_id, "status": session.status})


class _Asgi:
    """A plain ASGI endpoint for a ``Route`` (Starlette wraps a function as request → response)."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return self.app(scope, receive, send)  # the endpoint's coroutine itself: no frame of ours


def http_routes() -> list[Route]:
    """The HTTP routes, busiest first: the router tries them in order (no two overlap)."""
    return [
        Route("/api/labs/session/{session_id}/validate", _Asgi(validate), methods=["GET"]),
        Route("/api/labs/session/{session_id}", get_session, methods=["GET"]),
        Route("/api/labs/session/{session_id}/extend", extend, methods=["POST"]),
        Route("/api/labs/session/{session_id}/end", end, methods=["POST"]),
        Route("/api/labs/start", start_lab, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/api/diagnostics/websocket", diagnostics, methods=["GET"]),
    ]
