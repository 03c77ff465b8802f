"""The one exception tree of labsession.

::

    LabSessionError
    ├── ConfigError            a variable is missing or malformed (names the variable)
    ├── RedisUnavailable       the store cannot be reached or refused us (``cause`` says why)
    ├── EmbeddedRedisError     an embedded redis-server could not start or stop
    └── SessionError           something about one session
        ├── InvalidSessionId   not a session id; never sent to Redis
        ├── SessionNotFound    no such key (never existed, expired by TTL, evicted)
        ├── SessionEnded       the session was ended (``status: "destroyed"``)
        ├── SessionNotActive   the session exists but cannot be changed (expired, creating…)
        ├── CorruptSession     the stored value is not a session (reported, never deleted)
        └── InvalidExtension   ``minutes`` is not a positive, bounded whole number

Every message is safe to print: it never carries a password (URLs are masked at the
source, and :func:`labsession.masking.mask_text` runs over every message as a backstop).
"""

from __future__ import annotations

from enum import StrEnum

from .masking import log_id, mask_text

__all__ = [
    "ConfigError",
    "CorruptSession",
    "EmbeddedRedisError",
    "InvalidExtension",
    "InvalidSessionId",
    "LabSessionError",
    "RedisCause",
    "RedisUnavailable",
    "SessionEnded",
    "SessionError",
    "SessionNotActive",
    "SessionNotFound",
]


class LabSessionError(Exception):
    """Root of every error labsession raises on purpose."""

    def __init__(self, message: str) -> None:
        self.message = mask_text(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ConfigError(LabSessionError):
    """A configuration variable is missing or malformed.

    ``variable`` names it; ``example`` is a masked example of a good value.
    """

    def __init__(self, variable: str, problem: str, example: str | None = None) -> None:
        self.variable = variable
        self.example = example
        text = f"{variable} {problem}"
        if example:
            text += f" (for example {variable}={example})"
        super().__init__(text)


class RedisCause(StrEnum):
    """Why the store could not be used; stable codes for runbooks and dashboards."""

    DNS_FAILURE = "DNS_FAILURE"
    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    TIMEOUT = "TIMEOUT"
    TLS_REQUIRED = "TLS_REQUIRED"
    TLS_VERIFY_FAILED = "TLS_VERIFY_FAILED"
    AUTH_FAILED = "AUTH_FAILED"
    MAX_CONNECTIONS = "MAX_CONNECTIONS"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    READ_ONLY = "READ_ONLY"
    CONNECTION_LOST = "CONNECTION_LOST"
    TLS_NOT_SPOKEN = "TLS_NOT_SPOKEN"
    SOCKET_NOT_FOUND = "SOCKET_NOT_FOUND"
    DB_OUT_OF_RANGE = "DB_OUT_OF_RANGE"
    NOT_A_CLUSTER = "NOT_A_CLUSTER"
    CLUSTER_REQUIRED = "CLUSTER_REQUIRED"
    # Topology: the endpoint answers, but it is no place for a backend's session writes.
    ENDPOINT_IS_REPLICA = "ENDPOINT_IS_REPLICA"
    # Which certificate problem made TLS verification fail (the runbook reads the certificate).
    TLS_CERT_EXPIRED = "TLS_CERT_EXPIRED"
    TLS_CERT_NOT_YET_VALID = "TLS_CERT_NOT_YET_VALID"
    TLS_HOSTNAME_MISMATCH = "TLS_HOSTNAME_MISMATCH"
    TLS_UNTRUSTED_ISSUER = "TLS_UNTRUSTED_ISSUER"
    TLS_SELF_SIGNED = "TLS_SELF_SIGNED"
    # Upstash's plan limits, each from its own error text.
    DAILY_LIMIT_EXCEEDED = "DAILY_LIMIT_EXCEEDED"
    MONTHLY_LIMIT_EXCEEDED = "MONTHLY_LIMIT_EXCEEDED"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    DB_CAPACITY_EXCEEDED = "DB_CAPACITY_EXCEEDED"
    UNKNOWN = "UNKNOWN"


class RedisUnavailable(LabSessionError):
    """The store cannot be used right now.

    ``cause`` is a :class:`RedisCause`; ``endpoint`` is ``host:port`` (never a password);
    the message is one sentence saying what happened and what to do.
    """

    def __init__(self, cause: RedisCause, endpoint: str, detail: str) -> None:
        self.cause = cause
        self.endpoint = endpoint
        self.detail = mask_text(detail)
        super().__init__(f"Redis at {endpoint} is unavailable ({cause.value}): {self.detail}")


class EmbeddedRedisError(LabSessionError):
    """An embedded ``redis-server`` could not be found, started or stopped."""


class SessionError(LabSessionError):
    """Something about one session; ``session_id`` is the id as given (already validated or not).

    Messages name a session by :func:`~labsession.masking.log_id` (8 characters): a whole id opens
    its terminal, and messages end up in logs, notebook outputs and reports.
    """

    def __init__(self, session_id: str, message: str) -> None:
        self.session_id = session_id
        super().__init__(message)


class InvalidSessionId(SessionError, ValueError):
    """The id is not a well-formed session id; it was never sent to Redis."""

    def __init__(self, session_id: str) -> None:
        shown = session_id if len(session_id) <= 64 else session_id[:61] + "..."
        super().__init__(session_id, f"not a session id (1 to 128 letters, digits, '.', '_' or '-'): {shown!r}")


class SessionNotFound(SessionError):
    """No session is stored under that id."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id, f"session {log_id(session_id)} not found or expired")


class SessionEnded(SessionError):
    """The session was ended; it cannot be extended or revived."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id, f"session {log_id(session_id)} has ended")


class SessionNotActive(SessionError):
    """The session exists but its status does not allow the change."""

    def __init__(self, session_id: str, status: str) -> None:
        self.status = status
        super().__init__(session_id, f"session {log_id(session_id)} is not active (status {status!r})")


class CorruptSession(SessionError):
    """The stored value is not a session record; it is left in place for inspection."""

    def __init__(self, session_id: str, reason: str) -> None:
        self.reason = reason
        super().__init__(session_id, f"session {log_id(session_id)} holds a corrupt value: {reason}")


class InvalidExtension(SessionError, ValueError):
    """``minutes`` for an extension is not a whole number within the allowed range."""

    def __init__(self, session_id: str, minutes: object, maximum: int) -> None:
        self.minutes = minutes
        self.maximum = maximum
        super().__init__(
            session_id,
            f"minutes must be a whole number from 1 to {maximum}, got {minutes!r}",
        )
