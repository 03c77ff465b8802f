"""Small helpers shared by the HTTP routes and the WebSocket: timestamps, bounded JSON bodies, request ids."""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Scope, Send

from .errors import ApiError

__all__ = [
    "REQUEST_ID_KEY",
    "JsonResponse",
    "iso_time",
    "json_bytes",
    "new_request_id",
    "read_json_object",
    "request_id",
    "safe_path",
    "send_json",
]

#: Where the request id lives in the ASGI scope.
REQUEST_ID_KEY = "labsession.request_id"
#: A session id in a path: the segment after ``/session/`` or ``/terminal/`` (any id a peer stored,
#: not only UUIDs), and any UUID elsewhere.
_PATH_ID = re.compile(
    r"(?<=/session/)[^/?#]+|(?<=/terminal/)[^/?#]+|"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_UNSAFE = re.compile(r"[^\x21-\x7e]")


def json_bytes(content: Any) -> bytes:
    """``content`` as Starlette's ``JSONResponse`` renders it (compact UTF-8 JSON), by orjson in
    a fraction of the time; content orjson refuses (non-str keys, integers beyond 64 bits) is
    rendered by Starlette's own code, as before."""
    try:
        return orjson.dumps(content)
    except TypeError:
        return _STARLETTE_JSON.render(content)


class JsonResponse(JSONResponse):
    """Starlette's ``JSONResponse``, rendered by :func:`json_bytes`."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


_STARLETTE_JSON = JSONResponse(None)
_JSON_TYPE = (b"content-type", b"application/json")


async def send_json(send: Send, status: int, content: Any) -> None:
    """Answer ``content`` as JSON with ``status``: the messages (and headers, in their order)
    a :class:`JsonResponse` sends, without building one (for the busiest routes)."""
    body = json_bytes(content)
    headers = [(b"content-length", b"%d" % len(body)), _JSON_TYPE]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def iso_time(seconds: float | None = None) -> str:
    """``seconds`` since the epoch (now when ``None``) as ISO 8601 UTC with milliseconds.

    The same form as JavaScript's ``Date.toISOString()``."""
    seconds = time.time() if seconds is None else seconds
    millis = int(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}Z"


_RID_PREFIX = secrets.token_hex(3)
_RID_COUNTER = itertools.count(1)


def _new_rid_prefix() -> None:
    """A forked worker (``labsession serve --workers``) draws its own prefix: ids stay unique."""
    global _RID_PREFIX, _RID_COUNTER
    _RID_PREFIX = secrets.token_hex(3)
    _RID_COUNTER = itertools.count(1)


os.register_at_fork(after_in_child=_new_rid_prefix)


def new_request_id() -> str:
    """A short id that ties one request's log line to its response (``X-Request-ID``): a random
    per-process prefix and a counter, unique across instances and cheap on the hot path."""
    return f"{_RID_PREFIX}{next(_RID_COUNTER):06x}"


def request_id(scope: Scope) -> str | None:
    value = scope.get(REQUEST_ID_KEY)
    return value if isinstance(value, str) else None


def safe_path(path: str, limit: int = 120) -> str:
    """``path`` for a log line: session ids shortened to 8 characters (they grant a terminal),
    control and non-ASCII characters escaped, cut to ``limit`` characters."""
    path = _PATH_ID.sub(lambda m: m[0][:8] + "~", path)
    path = _UNSAFE.sub(lambda m: f"%{ord(m[0]):02X}" if ord(m[0]) < 256 else "?", path)
    return path if len(path) <= limit else path[: limit - 3] + "..."


async def read_json_object(request: Request, limit: int, *, required: bool) -> dict[str, Any]:
    """The request body as a JSON object, read up to ``limit`` bytes.

    An empty body is ``{}`` unless ``required``. Raises :class:`ApiError` 413 when the body is
    larger than ``limit``, 400 ``BAD_REQUEST`` when it is not a JSON object.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"Request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"Request body larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise ApiError(400, "BAD_REQUEST", "Request body must be a JSON object")
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "BAD_REQUEST", "Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "BAD_REQUEST", "Request body must be a JSON object")
    return data
