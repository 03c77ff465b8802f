"""The session record, byte-compatible with the TypeScript backend's JSON.

Stored under ``session:{sessionId}`` as one JSON object with camelCase fields; times are
milliseconds since the epoch. Fields this module does not know are kept in ``extra`` and
written back unchanged, so a read-modify-write never drops what the other backend added.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import CorruptSession, InvalidSessionId
from ..masking import redact
from .codec import decode_json, encode_json

__all__ = ["LabSession", "SessionStatus", "check_session_id"]

#: A session id as any backend may have stored it: the TypeScript backend makes UUIDs, but its own
#: test scripts (and a peer) may write others (``test-session-1796197253000``). 1 to 128 letters,
#: digits, ``.``, ``_`` or ``-``, starting with a letter or digit: such an id can address no key but
#: its own (no ``:`` namespace, no path) and is no SCAN/KEYS glob (no ``*?[]\``).
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_session_id(session_id: object) -> str:
    """Return ``session_id`` if it is a well-formed session id (see :data:`_SESSION_ID`; every
    UUID is one), else raise :class:`InvalidSessionId` without anything reaching Redis."""
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise InvalidSessionId(session_id if isinstance(session_id, str) else repr(session_id))
    return session_id


class SessionStatus(StrEnum):
    """The statuses the TypeScript backend writes; others may appear (e.g. while creating)."""

    ACTIVE = "active"
    EXPIRED = "expired"
    DESTROYED = "destroyed"


# camelCase JSON name -> attribute name, in the TypeScript backend's field order.
_FIELDS: dict[str, str] = {
    "sessionId": "session_id",
    "userId": "user_id",
    "labId": "lab_id",
    "purchaseId": "purchase_id",
    "startedAt": "started_at",
    "createdAt": "created_at",
    "expiresAt": "expires_at",
    "status": "status",
    "terminalPort": "terminal_port",
    "webSocketUrl": "web_socket_url",
    "sandboxAccount": "sandbox_account",
}
_REQUIRED = ("sessionId", "expiresAt", "status")
_KNOWN = frozenset(_FIELDS)  # a frozenset: ``keys() <= _KNOWN`` takes half the time of a keys view


@dataclass(slots=True)
class LabSession:
    """One lab session. Times (``*_at``) are milliseconds since the epoch."""

    session_id: str
    user_id: str
    lab_id: str
    purchase_id: str
    started_at: int
    created_at: int
    expires_at: int
    status: str = SessionStatus.ACTIVE.value
    terminal_port: int | None = None
    web_socket_url: str = ""
    sandbox_account: dict[str, Any] | None = None
    #: Fields written by someone else, kept verbatim for the next write.
    extra: dict[str, Any] = field(default_factory=dict)

    # -- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The camelCase JSON object, known fields first, then ``extra`` in its own order."""
        out: dict[str, Any] = {json_name: getattr(self, attr) for json_name, attr in _FIELDS.items()}
        for name, value in self.extra.items():
            out.setdefault(name, value)
        return out

    def to_json(self) -> str:
        return encode_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, session_id: str | None = None) -> LabSession:
        """Build from the stored JSON object; raises :class:`CorruptSession` if it is not one."""
        # Hot path (every get, every scanned key): plain dict lookups, no per-field loops.
        get = data.get
        expires_at = get("expiresAt")
        created_at = get("createdAt", expires_at)
        started_at = get("startedAt", created_at)
        status = get("status")
        if (
            type(expires_at) is not int
            or type(created_at) is not int
            or type(started_at) is not int
            or type(status) is not str
            or "sessionId" not in data
        ):
            cls._check(data, session_id)  # raises with the precise reason
            expires_at, created_at, started_at = (
                int(expires_at),  # type: ignore[arg-type]
                int(created_at),  # type: ignore[arg-type]
                int(started_at),  # type: ignore[arg-type]
            )
        extra = {} if data.keys() <= _KNOWN else {k: v for k, v in data.items() if k not in _KNOWN}
        # Positional, in field order: a third of the cost of the same call with keywords.
        return cls(
            data["sessionId"],
            get("userId", ""),
            get("labId", ""),
            get("purchaseId", ""),
            started_at,
            created_at,
            expires_at,
            status,  # type: ignore[arg-type]
            get("terminalPort"),
            get("webSocketUrl", ""),
            get("sandboxAccount"),
            extra,
        )

    @staticmethod
    def _check(data: dict[str, Any], session_id: str | None) -> None:
        """Raise :class:`CorruptSession` saying what is wrong with ``data``; return if it is
        acceptable after all (times stored as floats, as JavaScript may write them)."""
        sid = session_id or str(data.get("sessionId", "?"))  # the id asked for names the error
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise CorruptSession(sid, f"missing field(s) {', '.join(missing)}")
        for name in ("expiresAt", "createdAt", "startedAt"):
            value = data.get(name, data["expiresAt"])
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise CorruptSession(sid, f"{name} is not a number of milliseconds")
        if not isinstance(data["status"], str):
            raise CorruptSession(sid, "status is not a string")

    @classmethod
    def from_json(cls, raw: str | bytes, *, session_id: str | None = None) -> LabSession:
        """Parse a stored value; raises :class:`CorruptSession` (never deletes anything)."""
        sid = session_id or "?"
        try:
            data = decode_json(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptSession(sid, f"not JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise CorruptSession(sid, f"JSON {type(data).__name__}, not an object")
        return cls.from_dict(data, session_id=session_id)

    # -- views ---------------------------------------------------------------------------------

    def redacted(self) -> dict[str, Any]:
        """The JSON object with every secret-named field masked at any depth: safe to show."""
        out: dict[str, Any] = redact(self.to_dict())
        return out

    def expires_in(self, now_ms: int) -> int:
        """Whole seconds left until ``expires_at`` (0 once it has passed)."""
        return max(0, (self.expires_at - now_ms) // 1000)

    def ttl_seconds(self, now_ms: int) -> int:
        """The TTL the TypeScript backend sets: ``ceil((expiresAt - now) / 1000)``, at least 1."""
        return max(1, -((now_ms - self.expires_at) // 1000))

    def __repr__(self) -> str:
        return (
            f"LabSession(session_id={self.session_id!r}, user_id={self.user_id!r}, "
            f"lab_id={self.lab_id!r}, status={self.status!r}, expires_at={self.expires_at}, "
            f"sandbox_account={'<redacted>' if self.sandbox_account else None})"
        )
