"""Settings: one typed dataclass, read from the environment or a URL.

The URL scheme decides TLS: ``rediss://`` is TLS, ``redis://`` is plain (except for an
Upstash host, which is upgraded to TLS with a warning), ``unix://`` is a local socket.
The password stays inside the URL, which no repr, str or log line ever shows unmasked.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import ConfigError
from .masking import get_logger, mask_url, register_secret

__all__ = ["Settings", "default_client_name"]

log = get_logger(__name__)

_EXAMPLE_URL = "rediss://default:****@your-endpoint.upstash.io:6379"
_SCHEMES = ("redis", "rediss", "unix")
_TRUE = {"1", "true", "yes", "on"}
# attribute -> (environment variable, a good example value): every ConfigError names the
# variable a user can actually set and shows what a valid value looks like.
_VARIABLES: dict[str, tuple[str, str]] = {
    "redis_url": ("REDIS_URL", _EXAMPLE_URL),
    "lab_timeout_minutes": ("LAB_TIMEOUT_MINUTES", "120"),
    "key_prefix": ("SESSION_KEY_PREFIX", "session:"),
    "grace_seconds": ("SESSION_GRACE_SECONDS", "10"),
    "ca_cert": ("REDIS_CA_CERT", "/etc/ssl/certs/my-redis-ca.pem"),
    "tls_verify": ("REDIS_TLS_VERIFY", "true"),
    "connect_timeout": ("REDIS_CONNECT_TIMEOUT", "3"),
    "socket_timeout": ("REDIS_SOCKET_TIMEOUT", "3"),
    "operation_timeout": ("REDIS_OPERATION_TIMEOUT", "5"),
    "retry_attempts": ("REDIS_RETRY_ATTEMPTS", "10"),
    "client_name": ("REDIS_CLIENT_NAME", "labsession-web-1"),
    "cluster": ("REDIS_CLUSTER", "false"),
    "retry_base": ("retry_base", "0.02"),
    "retry_cap": ("retry_cap", "0.5"),
    "health_check_interval": ("health_check_interval", "30"),
    "max_connections": ("max_connections", "64"),
}


def _bad(attr: str, problem: str) -> ConfigError:
    variable, example = _VARIABLES[attr]
    return ConfigError(variable, problem, example)


_FALSE = {"0", "false", "no", "off", ""}


def default_client_name() -> str:
    """``labsession-<host>-<pid>``: what ``CLIENT LIST`` shows for our connections."""
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
    return f"labsession-{host or 'host'}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything needed to reach the store and to shape sessions like the TypeScript backend.

    Times are in seconds unless the name says minutes.
    """

    redis_url: str = field(repr=False)
    lab_timeout_minutes: int = 120
    key_prefix: str = "session:"
    grace_seconds: float = 10.0
    ca_cert: str | None = None
    #: Verify the server certificate and host name; turning it off logs a warning.
    tls_verify: bool = True
    #: Seconds to open a TCP (and TLS) connection.
    connect_timeout: float = 3.0
    #: Seconds to wait for one reply on an open connection.
    socket_timeout: float = 3.0
    #: Attempts per operation (the first try included) on connection errors and timeouts.
    retry_attempts: int = 10
    #: Backoff between attempts: exponential from ``retry_base`` seconds, capped, with jitter.
    retry_base: float = 0.02
    retry_cap: float = 0.5
    #: Upper bound in seconds on one whole operation, retries included.
    operation_timeout: float = 5.0
    #: Seconds of idleness after which a connection is PINGed before use (Upstash drops idle ones).
    health_check_interval: float = 30.0
    max_connections: int = 64
    client_name: str = field(default_factory=default_client_name)
    cluster: bool = False

    def __post_init__(self) -> None:
        _check_url(self.redis_url)
        register_secret(urlsplit(self.redis_url).password)
        for name in ("connect_timeout", "socket_timeout", "operation_timeout", "retry_cap"):
            if getattr(self, name) <= 0:
                raise _bad(name, f"must be a positive number of seconds, got {getattr(self, name)!r}")
        if self.grace_seconds < 0:
            raise _bad("grace_seconds", f"must not be negative, got {self.grace_seconds!r}")
        if self.retry_base < 0:
            raise _bad("retry_base", f"must not be negative, got {self.retry_base!r}")
        if self.retry_attempts < 1:
            raise _bad("retry_attempts", f"must be at least 1, got {self.retry_attempts!r}")
        if self.max_connections < 1:
            raise _bad("max_connections", f"must be at least 1, got {self.max_connections!r}")
        if self.lab_timeout_minutes < 1:
            raise _bad("lab_timeout_minutes", f"must be at least 1, got {self.lab_timeout_minutes!r}")
        if not self.key_prefix:
            raise _bad("key_prefix", "must not be empty")

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Settings:
        """Settings for ``url``; ``?cluster=true`` in the URL turns on cluster mode."""
        query = _query(url)
        if "cluster" in query and "cluster" not in overrides:
            overrides["cluster"] = query["cluster"][-1].lower() in _TRUE
        return cls(redis_url=url, **overrides)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``REDIS_URL`` and friends; ``overrides`` win over the environment.

        Raises :class:`ConfigError` naming the variable when one is missing or malformed.
        """
        env = os.environ if env is None else env
        url = env.get("REDIS_URL", "").strip()
        if not url and "redis_url" not in overrides:
            raise ConfigError("REDIS_URL", "is not set", _EXAMPLE_URL)
        values: dict[str, Any] = {"redis_url": url}
        readers: list[tuple[str, str, Any]] = [
            ("LAB_TIMEOUT_MINUTES", "lab_timeout_minutes", _int),
            ("SESSION_KEY_PREFIX", "key_prefix", str),
            ("SESSION_GRACE_SECONDS", "grace_seconds", _float),
            ("REDIS_CA_CERT", "ca_cert", str),
            ("REDIS_TLS_VERIFY", "tls_verify", _bool),
            ("REDIS_CONNECT_TIMEOUT", "connect_timeout", _float),
            ("REDIS_SOCKET_TIMEOUT", "socket_timeout", _float),
            ("REDIS_OPERATION_TIMEOUT", "operation_timeout", _float),
            ("REDIS_RETRY_ATTEMPTS", "retry_attempts", _int),
            ("REDIS_CLIENT_NAME", "client_name", str),
            ("REDIS_CLUSTER", "cluster", _bool),
        ]
        for variable, name, parse in readers:
            raw = env.get(variable)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[name] = parse(raw.strip())
            except ValueError as exc:
                raise _bad(name, f"is malformed: {exc}") from None
        if "cluster" not in values and url:
            query = _query(url)
            if "cluster" in query:
                values["cluster"] = query["cluster"][-1].lower() in _TRUE
        values.update(overrides)
        if values.get("ca_cert") and not os.path.isfile(values["ca_cert"]):
            raise _bad("ca_cert", f"names no readable file: {values['ca_cert']!r}")
        return cls(**values)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    # -- derived views -------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return urlsplit(self.redis_url).scheme.lower()

    @property
    def host(self) -> str:
        return urlsplit(self.redis_url).hostname or ""

    @property
    def port(self) -> int | None:
        return urlsplit(self.redis_url).port if self.scheme != "unix" else None

    @property
    def db(self) -> int:
        """The database number the URL selects (``/N`` in the path or ``?db=N``), as redis-py reads it; 0 by default."""
        parts = urlsplit(self.redis_url)
        query = parse_qs(parts.query)
        raw = query["db"][-1] if "db" in query else ("" if self.scheme == "unix" else parts.path.strip("/"))
        try:
            return int(raw) if raw else 0
        except ValueError:
            return 0

    @property
    def is_upstash(self) -> bool:
        return self.host.endswith(".upstash.io")

    @property
    def tls(self) -> bool:
        """True when connections use TLS (``rediss://``, or an upgraded Upstash ``redis://``)."""
        return self.scheme == "rediss" or (self.scheme == "redis" and self.is_upstash)

    @property
    def tls_upgraded(self) -> bool:
        """True when a plain ``redis://`` URL was upgraded to TLS because the host needs it."""
        return self.scheme == "redis" and self.is_upstash

    @property
    def masked_url(self) -> str:
        return mask_url(self.redis_url)

    @property
    def endpoint(self) -> str:
        """``host:port`` or the socket path: where the store is, with nothing secret in it."""
        if self.scheme == "unix":
            return urlsplit(self.redis_url).path
        return f"{self.host}:{self.port or 6379}"

    @property
    def session_ttl_seconds(self) -> int:
        return self.lab_timeout_minutes * 60

    def __repr__(self) -> str:
        return (
            f"Settings(redis_url={self.masked_url!r}, tls={self.tls}, "
            f"lab_timeout_minutes={self.lab_timeout_minutes}, key_prefix={self.key_prefix!r}, "
            f"grace_seconds={self.grace_seconds}, cluster={self.cluster})"
        )

    __str__ = __repr__


#: Why a URL may not parse (never quoted: the parser's message names the part it choked on,
#: which is often a piece of a password).
_UNESCAPED = "a password holding '#', '/' or '?' must be percent-encoded as %23, %2F or %3F"


def _query(url: str) -> dict[str, list[str]]:
    """The URL's query parameters; ``{}`` for a URL that does not parse (:func:`_check_url` then
    refuses it with the variable named, quoting nothing of it)."""
    if "://" not in url:
        return {}
    try:
        return parse_qs(urlsplit(url).query)
    except ValueError:
        return {}


def _check_url(url: str) -> None:
    if not url:
        raise ConfigError("REDIS_URL", "is empty", _EXAMPLE_URL)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError("REDIS_URL", f"is not a valid URL; {_UNESCAPED}", _EXAMPLE_URL) from None
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        # 'redis://:pa#ss@host' reads as host 'pa' and a fragment: the host would be a password.
        raise ConfigError("REDIS_URL", f"has an '@' after its host; {_UNESCAPED}", _EXAMPLE_URL)
    if parts.scheme.lower() not in _SCHEMES:
        # Only a scheme written as one ('http://') is named; 'pass:word@host' has none to name.
        shown = f", not {parts.scheme}://" if parts.scheme and url.startswith(f"{parts.scheme}://") else ""
        raise ConfigError("REDIS_URL", f"must start with redis://, rediss:// or unix://{shown}", _EXAMPLE_URL)
    if parts.scheme.lower() == "unix":
        if not parts.path:
            raise ConfigError("REDIS_URL", "has no socket path", "unix:///run/redis/redis.sock")
        return
    if not parts.hostname:
        raise ConfigError("REDIS_URL", "has no host name", _EXAMPLE_URL)
    if port == 0:
        raise ConfigError("REDIS_URL", "has port 0", _EXAMPLE_URL)


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"expected a whole number, got {raw!r}") from None


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")
