"""Errors as JSON: every failure the backend answers with has a status, a stable ``code`` and a safe message.

Codes (stable; runbooks and notebooks match on them):

======================  ======  ===============================================================
code                    status  meaning
======================  ======  ===============================================================
BAD_REQUEST             400     the body is not a JSON object
INVALID_FIELD           400     one field is missing or wrong (``field`` names it)
INVALID_SESSION_ID      400     the id in the path is malformed (Redis was not asked)
ORIGIN_REFUSED          403     the ``Origin`` is not in ``ALLOWED_ORIGINS``
NOT_FOUND               404     no such route
SESSION_NOT_FOUND       404     no session under that id (never existed, expired by TTL)
SESSION_EXPIRED         404     the session's time is up
SESSION_ENDED           404/409 the session was ended (409 when asked to change it)
SESSION_NOT_ACTIVE      404/409 the session exists but is not active
SESSION_CORRUPT         404/409 the stored value is not a session (left in place)
METHOD_NOT_ALLOWED      405     wrong HTTP method
REQUEST_TIMEOUT         408     the request head was not finished within ``HEADER_TIMEOUT``
PAYLOAD_TOO_LARGE       413     the body is larger than ``MAX_BODY_SIZE``
URI_TOO_LONG            414     the request line is longer than 8 KiB (see ``limits.py``)
HEADERS_TOO_LARGE       431     a header line over 16 KiB, or a head over 64 KiB in all
STORE_UNAVAILABLE       503     Redis cannot be reached now (``cause`` says why); try again
INTERNAL_ERROR          500     a bug; the body carries only the request id, never a trace
======================  ======  ===============================================================
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    CorruptSession,
    InvalidExtension,
    InvalidSessionId,
    LabSessionError,
    RedisCause,
    RedisUnavailable,
    SessionEnded,
    SessionNotActive,
    SessionNotFound,
)
from ..masking import mask_text, redact
from ..sessions.service import ValidationReason
from ..store.classify import remedy

__all__ = [
    "ApiError",
    "BackendError",
    "error_body",
    "from_library_error",
    "reason_code",
    "store_not_connected",
    "truncate_echo",
]


class BackendError(LabSessionError):
    """The backend (or a :class:`~labsession.embedded.backends.BackendProcess`) could not start or stop."""


class ApiError(Exception):
    """An HTTP answer other than success: ``status``, stable ``code``, a safe ``message`` and extra fields."""

    def __init__(self, http_status: int, code: str, message: str, /, **fields: Any) -> None:
        self.status = http_status
        self.code = code
        self.message = mask_text(message)
        self.fields = fields
        super().__init__(f"{http_status} {code}: {self.message}")


_REASON_CODES: dict[ValidationReason, str] = {
    ValidationReason.NOT_FOUND: "SESSION_NOT_FOUND",
    ValidationReason.EXPIRED: "SESSION_EXPIRED",
    ValidationReason.ENDED: "SESSION_ENDED",
    ValidationReason.NOT_ACTIVE: "SESSION_NOT_ACTIVE",
    ValidationReason.CORRUPT: "SESSION_CORRUPT",
}


def reason_code(reason: ValidationReason) -> str:
    """The stable ``code`` for a session that did not validate (HTTP bodies and WebSocket errors alike)."""
    return _REASON_CODES.get(reason, "SESSION_NOT_FOUND")


def truncate_echo(value: str, limit: int = 64) -> str:
    """Untrusted text (a malformed id, a message type) cut to ``limit`` characters (with ``...``), to echo back."""
    return value if len(value) <= limit else value[: limit - 3] + "..."


def error_body(error: ApiError, request_id: str | None = None) -> dict[str, Any]:
    """The JSON body of ``error``: ``error`` (message), ``code``, extra fields, ``requestId``."""
    body: dict[str, Any] = {"error": error.message, "code": error.code}
    body.update(redact(error.fields))
    if request_id:
        body["requestId"] = request_id
    return body


def from_library_error(exc: LabSessionError, *, changing: bool = False) -> ApiError:
    """The :class:`ApiError` for an error raised by the library.

    ``changing`` is True for requests that change a session (extend, end): a session that
    exists but cannot be changed is then 409, not 404.
    """
    conflict = 409 if changing else 404
    if isinstance(exc, RedisUnavailable):
        return ApiError(
            503, "STORE_UNAVAILABLE", "The session store is unavailable; try again shortly", cause=exc.cause.value
        )
    if isinstance(exc, InvalidSessionId):
        return ApiError(
            400,
            "INVALID_SESSION_ID",
            "Invalid session id (1 to 128 letters, digits, '.', '_' or '-')",
            field="sessionId",
        )
    if isinstance(exc, InvalidExtension):
        return ApiError(
            400, "INVALID_FIELD", f"minutes must be a whole number from 1 to {exc.maximum}", field="minutes"
        )
    if isinstance(exc, SessionNotFound):
        return ApiError(404, "SESSION_NOT_FOUND", "Session not found or expired", sessionId=exc.session_id)
    if isinstance(exc, SessionEnded):
        return ApiError(conflict, "SESSION_ENDED", "Session has ended", sessionId=exc.session_id)
    if isinstance(exc, SessionNotActive):
        code = "SESSION_EXPIRED" if exc.status == "expired" else "SESSION_NOT_ACTIVE"
        return ApiError(conflict, code, "Session is not active", sessionId=exc.session_id, status=exc.status)
    if isinstance(exc, CorruptSession):
        return ApiError(conflict, "SESSION_CORRUPT", "Stored session is unreadable", sessionId=exc.session_id)
    return ApiError(500, "INTERNAL_ERROR", "Internal error")


def store_not_connected(endpoint: str, last_cause: str | None = None) -> RedisUnavailable:
    """The error for a store this process has not reached since it started (it keeps trying).

    ``last_cause`` is the cause its last attempt failed with, so every route names the same
    cause as ``/health/ready`` (a refused password is AUTH_FAILED everywhere, never a guess).
    """
    cause = next((c for c in RedisCause if c.value == last_cause), RedisCause.CONNECTION_REFUSED)
    return RedisUnavailable(cause, endpoint, f"{remedy(cause)}; not connected yet, reconnecting every second")
