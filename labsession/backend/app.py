"""The Starlette application, built from injected collaborators (:func:`create_app`).

Middleware: :class:`RequestLogMiddleware` (request id, one access line per request, a JSON 500
without a trace for any bug), which sends a request with an ``Origin`` through
:class:`~labsession.backend.origins.CorsMiddleware`, then the routes. Errors become JSON bodies
with a stable ``code`` (see :mod:`labsession.backend.errors`).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from ..errors import LabSessionError
from ..masking import get_logger, mask_text
from .accesslog import ACCESS_LOGGER, AccessLog
from .errors import ApiError, error_body, from_library_error
from .jsonio import REQUEST_ID_KEY, JsonResponse, new_request_id, request_id, safe_path
from .origins import CorsMiddleware, OriginPolicy
from .routes_http import http_routes, validate
from .state import BackendState
from .terminal import terminal_routes

__all__ = ["RequestLogMiddleware", "create_app"]

log = get_logger(ACCESS_LOGGER)
_CLIENT_RID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 400: "BAD_REQUEST"}


class RequestLogMiddleware:
    """Give every request an id (``X-Request-ID``; a well-formed one from the client is kept),
    hand one line per HTTP request to ``access`` (:class:`~labsession.backend.accesslog.AccessLog`;
    ``None``: no access log), and turn any escaped exception into a JSON 500.

    With ``cors``, an HTTP request that carries an ``Origin`` goes through
    :class:`~labsession.backend.origins.CorsMiddleware` first; one without (not a browser: the
    busy path) goes straight on, found in the same pass over the headers as the request id.

    With ``validate`` (the endpoint of ``GET /api/labs/session/{session_id}/validate``), such a
    request without an ``Origin`` is handed to it directly, its errors answered as the app's
    exception handlers answer them: Starlette's router and exception layers cost ~8 µs of a
    ~90 µs request. Anything else about it (another method, a root path, a browser) is routed.
    """

    def __init__(
        self,
        app: ASGIApp,
        access: AccessLog | None = None,
        cors: OriginPolicy | None = None,
        validate: ASGIApp | None = None,
    ) -> None:
        self.app = app
        self.access = access
        self.browser_app: ASGIApp = app if cors is None else CorsMiddleware(app, cors)
        self.validate = validate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        offered = ""
        app = self.app
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                offered = value.decode("latin-1")
            elif name == b"origin":
                app = self.browser_app
        kept = bool(offered) and _CLIENT_RID.fullmatch(offered) is not None
        rid = offered if kept else new_request_id()
        scope[REQUEST_ID_KEY] = rid
        if kind == "websocket":
            await self.app(scope, receive, send)  # the endpoint checks the origin, to answer 403
            return
        started = time.perf_counter()
        status = 0
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            direct = self.validate if app is self.app else None
            session_id = None if direct is None else _validate_target(scope)
            if direct is None or session_id is None:
                await app(scope, receive, send_with_id)
            else:
                scope["path_params"] = {"session_id": session_id}
                await _answer_errors(direct, scope, receive, send_with_id)
        except ClientDisconnect:
            status = status or 499  # the client left before we answered; nobody to tell
        except Exception as exc:
            log.error(
                "event=error rid=%s %s %s error=%s: %s",
                rid,
                scope.get("method"),
                safe_path(scope["path"]),
                type(exc).__name__,
                mask_text(str(exc))[:200],
            )
            if status == 0:
                status = 500
                body = error_body(ApiError(500, "INTERNAL_ERROR", "Internal error"), rid)
                await JsonResponse(body, status_code=500, headers={"x-request-id": rid})(scope, receive, send)
        if self.access is not None:
            self.access.record(rid, scope["method"], scope["path"], status, time.perf_counter() - started, offered=kept)


_VALIDATE_HEAD, _VALIDATE_TAIL = "/api/labs/session/", "/validate"


def _validate_target(scope: Scope) -> str | None:
    """The session id of a ``GET`` the validate route matches as the router would (a path
    segment, nothing else about the request routed differently), else ``None``."""
    if scope["method"] != "GET" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not (path.startswith(_VALIDATE_HEAD) and path.endswith(_VALIDATE_TAIL)):
        return None
    session_id = path[len(_VALIDATE_HEAD) : -len(_VALIDATE_TAIL)]
    return session_id if session_id and "/" not in session_id else None


async def _answer_errors(endpoint: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``endpoint``; answer an :class:`ApiError` or a library error raised before it
    responded as the app's exception handlers do (anything else propagates)."""
    try:
        await endpoint(scope, receive, send)
    except (ApiError, LabSessionError) as exc:
        error = exc if isinstance(exc, ApiError) else from_library_error(exc)
        await _json_error_for(scope, error)(scope, receive, send)


def _json_error_for(scope: Scope, error: ApiError) -> JsonResponse:
    headers = {"retry-after": "1"} if error.status == 503 else None
    return JsonResponse(error_body(error, request_id(scope)), status_code=error.status, headers=headers)


def _json_error(request: Request, error: ApiError) -> JsonResponse:
    return _json_error_for(request.scope, error)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _json_error(request, exc)


async def _library_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LabSessionError)
    return _json_error(request, from_library_error(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = {"NOT_FOUND": "Not found", "METHOD_NOT_ALLOWED": "Method not allowed"}.get(code, "Request refused")
    response = _json_error(request, ApiError(exc.status_code, code, message))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """Unknown paths: JSON 404 for HTTP, a 404 handshake refusal for WebSockets."""
    body = {"error": "Not found", "code": "NOT_FOUND"}
    rid = request_id(scope)
    if rid:
        body["requestId"] = rid
    response = JsonResponse(body, status_code=404)
    if scope["type"] == "websocket":
        await WebSocket(scope, receive, send).send_denial_response(response)
        return
    await response(scope, receive, send)


def create_app(state: BackendState) -> Starlette:
    """The application for ``state``; its lifespan starts and stops ``state`` (``async with state``).

    When the app is driven without a lifespan (an in-process test client), start ``state`` yourself.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with state:
            yield

    policy = OriginPolicy(state.config.allowed_origins)
    handlers: dict[Any, Any] = {
        ApiError: _api_error,
        LabSessionError: _library_error,
        HTTPException: _http_error,
    }
    app = Starlette(
        routes=[*http_routes(), *terminal_routes()],
        middleware=[Middleware(RequestLogMiddleware, access=state.access_log, cors=policy, validate=validate)],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.router.default = _not_found
    app.state.backend = state
    app.state.origins = policy
    return app
