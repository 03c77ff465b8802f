"""Lab sessions: the stored JSON (:mod:`.model`) and the service that reads and writes them with
the TypeScript backend's keys and TTLs (:mod:`.service`)."""

from __future__ import annotations

from .model import LabSession, SessionStatus, check_session_id
from .service import (
    ENDED_TTL_SECONDS,
    MAX_EXTEND_MINUTES,
    KeyFacts,
    LabSessionService,
    SessionRecord,
    ValidationReason,
    ValidationResult,
    check_extension_minutes,
)

__all__ = [
    "ENDED_TTL_SECONDS",
    "MAX_EXTEND_MINUTES",
    "KeyFacts",
    "LabSession",
    "LabSessionService",
    "SessionRecord",
    "SessionStatus",
    "ValidationReason",
    "ValidationResult",
    "check_extension_minutes",
    "check_session_id",
]
