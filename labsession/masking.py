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
# Where a URL starts (redis://, rediss://, http://, unix://...). What follows is masked by
# position, never by a pattern of "password characters": people paste passwords unescaped, with
# '@', ':', '/', '?' or '#' in them, so the userinfo runs to the *last* '@' after the scheme.
_URL_START = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
_SPACE = re.compile(r"\s")
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


#: Names about Redis keys, not keys to anything: counts of them (``evicted_keys``, ``keys``,
#: ``max_keys``), a key prefix, the keyspace. Matched whole, so ``accessKeys`` is still a secret.
_REDIS_KEYS_NAME = re.compile(
    r"(?:labsession_redis_)?(?:evicted|expired|max|sampled|scanned)?_?keys(?:_total|_without_ttl)?|key_?prefix|keyspace",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """True when a field called ``name`` should be treated as a secret."""
    return bool(_SECRET_NAME.search(name)) and not _REDIS_KEYS_NAME.fullmatch(name)


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``****``; the rest is kept for diagnosis.

    ``redis://user:pw@host`` keeps the user; a lone ``redis://pw@host`` is masked whole,
    since people paste a bare password there as often as a user name. The userinfo is
    everything from ``//`` to the last ``@`` (a password may hold ``@ : / ? #`` unescaped), so
    an ``@`` further on (in a query, say) masks more than needed, never less. Nothing is parsed,
    so nothing can fail to parse: the URL is cut by position only.
    """
    head = _URL_START.match(url)
    if head is None:
        return mask_text(url)
    start = head.end()
    userinfo, at, rest = url[start:].rpartition("@")
    if at:
        user, has_password, _ = userinfo.partition(":")
        shown = f"{user}:{MASK}" if has_password else MASK
    else:
        shown = ""
    return mask_text(f"{url[:start]}{shown}{at}{_mask_query_of(rest)}")


def _mask_query_of(rest: str) -> str:
    """``host[:port][/path][?query][#fragment]`` with secret-named query values masked."""
    before, question, after = rest.partition("?")
    if not question:
        return rest
    query, hash_sign, fragment = after.partition("#")
    return f"{before}?{_mask_query(query)}{hash_sign}{fragment}"


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
    if "://" in text:
        text = _mask_url_passwords(text)
    text = _AUTH_WORD.sub(lambda m: f"{m[1]}{m[2]}{MASK}{MASK if m[4] else ''}", text)
    with _known_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _mask_url_passwords(text: str) -> str:
    """``scheme://user:password@`` anywhere in ``text`` as ``scheme://user:****@``.

    A URL in free text ends at the first whitespace; its userinfo runs to the last ``@`` before
    that. Only a userinfo with a ``:`` is masked here (``name@host`` may be a plain user name);
    :func:`mask_url`, which knows its input is a URL, masks a lone one too.
    """
    out: list[str] = []
    done = 0
    for head in _URL_START.finditer(text):
        if head.start() < done:  # inside a userinfo already masked (a password holding '://')
            continue
        start = head.end()
        space = _SPACE.search(text, start)
        at = text.rfind("@", start, space.start() if space else len(text))
        if at < 0:
            continue
        user, has_password, _ = text[start:at].partition(":")
        if not has_password:
            continue
        out.append(f"{text[done:start]}{user}:{MASK}")
        done = at
    out.append(text[done:])
    return "".join(out)


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
