"""Origins: an exact allow-list for CORS and WebSocket handshakes (never a substring or prefix match).

A request without an ``Origin`` header (curl, a notebook, another service) is not a browser
request and passes; a browser request from an origin outside the list gets 403
``ORIGIN_REFUSED`` and no CORS grant. An allowed origin gets exactly its own origin back in
``Access-Control-Allow-Origin`` (never ``*``), with ``Vary: Origin``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import normalize_origin
from .jsonio import request_id

__all__ = ["CorsMiddleware", "OriginPolicy"]

_METHODS = "GET, POST, OPTIONS"
_HEADERS = ("content-type", "x-request-id", "authorization")


class OriginPolicy:
    """Which browser origins may call this backend; compares normalized origins for equality."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(o for o in (normalize_origin(a) for a in allowed) if o is not None)

    def allows(self, origin: str | None) -> bool:
        """True for no ``Origin`` at all, or one that is exactly in the list."""
        return origin is None or self.match(origin) is not None

    def match(self, origin: str) -> str | None:
        """The normalized ``origin`` if it is in the list, else ``None``."""
        normalized = normalize_origin(origin)
        return normalized if normalized is not None and normalized in self.allowed else None


class CorsMiddleware:
    """Pure ASGI CORS for HTTP requests (WebSocket origins are checked by the endpoint, to answer 403)."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy, *, max_age: int = 600) -> None:
        self.app = app
        self.policy = policy
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not any(name == b"origin" for name, _ in scope["headers"]):  # not a browser: the hot path
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers["origin"]
        granted_origin = self.policy.match(origin)
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if granted_origin is None:
            await _refuse(scope, send)
            return
        if preflight:
            requested = [h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")]
            granted = [h for h in requested if h in _HEADERS]
            await _respond(
                send,
                204,
                b"",
                [
                    (b"access-control-allow-origin", granted_origin.encode()),
                    (b"access-control-allow-methods", _METHODS.encode()),
                    (b"access-control-allow-headers", ", ".join(granted or _HEADERS).encode()),
                    (b"access-control-max-age", str(self.max_age).encode()),
                    (b"vary", b"Origin"),
                ],
            )
            return

        async def send_with_grant(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["access-control-allow-origin"] = granted_origin
                out["access-control-expose-headers"] = "X-Request-ID"
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_grant)


async def _refuse(scope: Scope, send: Send) -> None:
    body = {"error": "Origin not allowed", "code": "ORIGIN_REFUSED"}
    rid = request_id(scope)
    if rid:
        body["requestId"] = rid
    await _respond(
        send,
        403,
        json.dumps(body).encode(),
        [
            (b"content-type", b"application/json"),
            (b"vary", b"Origin"),
        ],
    )


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
