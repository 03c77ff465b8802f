"""Masking: passwords and secret-looking fields never reach a log, repr or output.

Masking happens at the source (URLs are masked before they are formatted) and again
as a backstop (:class:`MaskingFilter` on the ``labsession`` logger, :func:`mask_text`
in every exception message).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "MASK",
    "MaskingFilter",
    "is_secret_name",
    "mask_text",
    "mask_url",
    "redact",
    "register_secret",
    "get_logger",
    "log_id",
]

MASK = "****"

#: A field is secret when its name contains one of these words (case-insensitive). Broad on
#: purpose: ``iamAccessKeyId`` and ``credentials`` are masked too; a false positive costs nothing.
_SECRET_NAME = re.compile(r"secret|passw(or)?d|pwd|token|credential|private|auth|key", re.IGNORECASE)
# user:password@ inside any URL-ish text (redis://, rediss://, http://, unix://...). The
# password runs to the *last* '@' of the authority: people paste passwords with '@' unescaped.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^\s/?#]+)@")
# AUTH <password> / requirepass <password> in command echoes.
_AUTH_WORD = re.compile(r"(?i)\b(auth|requirepass|masterauth)(\s+)(\S+)(\s+\S+)?")

_known_secrets: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value so :func:`mask_text` removes it wherever it appears.

    Short values (under 4 characters) are not registered: masking them would mangle text.
    """
    if value and len(value) >= 4:
        with _known_lock:
            _known_secrets.add(value)


def log_id(session_id: str) -> str:
    """The first 8 characters of a session id, for logs: enough to follow a session, useless as
    the credential a full id is (it opens ``/terminal/{id}``). Untrusted text is made printable."""
    return "".join(c if c.isalnum() or c == "-" else "?" for c in session_id[:8]) + "~"


def is_secret_name(name: str) -> bool:
    """True when a field called ``name`` should be treated as a secret."""
    return bool(_SECRET_NAME.search(name))


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``****``; the rest is kept for diagnosis.

    ``redis://user:pw@host`` keeps the user; a lone ``redis://pw@host`` is masked whole,
    since people paste a bare password there as often as a user name.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    netloc = parts.netloc
    query = _mask_query(parts.query)
    if "@" not in netloc and query == parts.query:
        return mask_text(url)
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if has_password else f"{MASK}@{hostport}"
    masked = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    if not netloc and url.startswith(f"{parts.scheme}:///"):
        masked = masked.replace(f"{parts.scheme}:", f"{parts.scheme}://", 1)
    return mask_text(masked)


def _mask_query(query: str) -> str:
    if not query:
        return query
    out = []
    for pair in query.split("&"):
        name, sep, _ = pair.partition("=")
        out.append(f"{name}={MASK}" if sep and is_secret_name(name) else pair)
    return "&".join(out)


def mask_text(text: str) -> str:
    """Mask URL passwords, ``AUTH x`` arguments and every registered secret in ``text``."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _AUTH_WORD.sub(lambda m: f"{m[1]}{m[2]}{MASK}{MASK if m[4] else ''}", text)
    with _known_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(value: Any) -> Any:
    """Deep copy of ``value`` with every secret-named field's value replaced by ``****``.

    Dicts, lists and tuples are walked at any depth; strings are passed through
    :func:`mask_text` so a URL with a password inside a value is masked too.
    """
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and is_secret_name(k) and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


_FORMATTER = logging.Formatter()


class MaskingFilter(logging.Filter):
    """A logging filter that masks secrets in every record's final message.

    It formats the record once, masks the result and freezes it (``args`` cleared), so
    handlers further down never see the unmasked text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # A traceback's last line repeats the exception message, URL and all: format it
            # here, masked, and drop exc_info so no handler formats it again unmasked.
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` with a :class:`MaskingFilter` attached (idempotent).

    Logger filters are not inherited by child loggers, so every labsession module takes
    its logger from here rather than from :func:`logging.getLogger`.
    """
    logger = logging.getLogger(name)
    if not any(isinstance(f, MaskingFilter) for f in logger.filters):
        logger.addFilter(MaskingFilter())
    return logger
