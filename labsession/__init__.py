"""labsession: run and diagnose Redis-backed lab WebSocket sessions.

The public names are re-exported here; each module's ``__all__`` says what it offers and
``tests/test_exports.py`` checks that the two agree.
"""

from __future__ import annotations

from .checks import CHECKS_META, REPORT_MIME, TIMING_MARK, CheckFailed, CheckResult, Report, Status, worst
from .embedded.redis_server import EmbeddedRedis, TlsFiles, find_redis_server
from .errors import (
    ConfigError,
    CorruptSession,
    EmbeddedRedisError,
    InvalidExtension,
    InvalidSessionId,
    LabSessionError,
    RedisCause,
    RedisUnavailable,
    SessionEnded,
    SessionError,
    SessionNotActive,
    SessionNotFound,
)
from .masking import MaskingFilter, log_id, mask_text, mask_url, redact
from .sessions.model import LabSession, SessionStatus, check_session_id
from .sessions.service import (
    ENDED_TTL_SECONDS,
    MAX_EXTEND_MINUTES,
    KeyFacts,
    LabSessionService,
    SessionRecord,
    ValidationReason,
    ValidationResult,
    check_extension_minutes,
)
from .settings import Settings
from .store.service import RedisHealth, RedisService, StoreIdentity
from .version import __version__

__all__ = [
    "CHECKS_META",
    "ENDED_TTL_SECONDS",
    "REPORT_MIME",
    "TIMING_MARK",
    "CheckFailed",
    "CheckResult",
    "ConfigError",
    "CorruptSession",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "InvalidExtension",
    "InvalidSessionId",
    "KeyFacts",
    "LabSession",
    "LabSessionError",
    "LabSessionService",
    "MAX_EXTEND_MINUTES",
    "MaskingFilter",
    "RedisCause",
    "RedisHealth",
    "RedisService",
    "RedisUnavailable",
    "Report",
    "SessionEnded",
    "SessionError",
    "SessionNotActive",
    "SessionNotFound",
    "SessionRecord",
    "SessionStatus",
    "Settings",
    "Status",
    "StoreIdentity",
    "TlsFiles",
    "ValidationReason",
    "ValidationResult",
    "__version__",
    "check_extension_minutes",
    "check_session_id",
    "find_redis_server",
    "log_id",
    "mask_text",
    "mask_url",
    "redact",
    "worst",
]
