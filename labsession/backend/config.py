"""BackendConfig: how one ``labsession serve`` instance listens and behaves, read from the environment.

Times are in seconds, sizes in bytes. The store itself is configured by :class:`~labsession.Settings`
(``REDIS_URL`` and friends); :func:`store_settings` applies the backend's fail-fast defaults to it.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..settings import Settings

__all__ = [
    "DEFAULT_ALLOWED_ORIGINS",
    "LOOKUP_DELAYS",
    "STORE_DEFAULTS",
    "BackendConfig",
    "normalize_origin",
    "parse_origins",
    "store_settings",
]

#: Origins allowed when ``ALLOWED_ORIGINS`` is not set: a frontend dev server on this machine.
DEFAULT_ALLOWED_ORIGINS: tuple[str, ...] = ("http://localhost:3000", "http://127.0.0.1:3000")
#: Delays in seconds before each WebSocket session lookup, as in the TypeScript backend (cross-instance lag).
LOOKUP_DELAYS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4)

#: Store settings the backend uses unless the environment says otherwise: a request must fail
#: fast (503) while Redis is down instead of hanging for the library's patient defaults
#: (10 attempts, 5 s). With Redis refused, an operation fails in tens of milliseconds; with Redis
#: frozen, within ``operation_timeout``. The client reconnects on the next request either way.
STORE_DEFAULTS: dict[str, tuple[str, Any]] = {
    "REDIS_RETRY_ATTEMPTS": ("retry_attempts", 2),
    "REDIS_OPERATION_TIMEOUT": ("operation_timeout", 1.0),
    "REDIS_CONNECT_TIMEOUT": ("connect_timeout", 1.0),
    "REDIS_SOCKET_TIMEOUT": ("socket_timeout", 1.0),
}

_INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def store_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """:class:`Settings` from ``env`` with :data:`STORE_DEFAULTS` where a variable is unset.

    Raises :class:`ConfigError` (naming ``REDIS_URL``) when the URL is missing or malformed.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for variable, (name, default) in STORE_DEFAULTS.items():
        if not env.get(variable, "").strip():
            values[name] = default
    values.update(overrides)
    return Settings.from_env(env, **values)


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or ``None`` if ``origin`` is not one.

    Browsers send exactly this form; comparing normalized strings for equality is the whole
    allow-list check (never a substring or prefix match).
    """
    origin = origin.strip()
    if not origin or len(origin) > 255 or any(c in origin for c in " \t\r\n\\"):
        return None
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 80 if scheme == "http" else 443
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """One backend instance's listening and behaviour settings.

    Times are seconds; sizes are bytes.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    #: Exact origins (normalized) allowed for CORS and WebSocket handshakes.
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    #: ``ws(s)://host[:port]`` put in front of ``/terminal/{id}`` in ``webSocketUrl``; ``None``:
    #: ``ws://`` plus the address this instance listens on.
    public_ws_base: str | None = None
    #: A name for this instance in diagnostics and logs.
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()[:40]}-{secrets.token_hex(3)}")
    #: Protocol-level WebSocket pings every this many seconds (``None``: off).
    ws_ping_interval: float | None = 30.0
    #: Close a connection whose ping is not answered within this many seconds.
    ws_ping_timeout: float | None = 20.0
    #: Close a WebSocket after this many seconds without an application message from the client.
    idle_timeout: float = 900.0
    #: Largest WebSocket message accepted, bytes (bigger ones close the connection with 1009).
    max_message_size: int = 64 * 1024
    #: Largest HTTP request body accepted, bytes (bigger ones get 413).
    max_body_size: int = 16 * 1024
    #: Delays before each WebSocket session lookup, seconds.
    lookup_delays: tuple[float, ...] = LOOKUP_DELAYS
    #: How often open WebSockets' sessions are re-read to notice one ended elsewhere, seconds.
    session_poll_interval: float = 1.0
    #: How often the store is PINGed for ``/health``, seconds.
    store_check_interval: float = 1.0
    #: Seconds allowed for a graceful shutdown before remaining work is cancelled.
    shutdown_timeout: float = 5.0
    #: Seconds a client has to send a request's head (line and headers) before it is closed.
    header_timeout: float = 5.0
    #: ``debug``, ``info``, ``warning``…: this backend's event log level.
    log_level: str = "info"
    #: One line per HTTP request (at ``info``; see :mod:`labsession.backend.accesslog`).
    access_log: bool = True
    #: Keep one in every this many access lines of requests answered below 400 (1: all).
    access_log_sample: int = 1
    #: The event loop: ``asyncio`` (the standard library's) or ``uvloop``.
    loop: str = "asyncio"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("PORT", f"must be a TCP port from 0 to 65535, got {self.port!r}")
        if not _INSTANCE_ID.fullmatch(self.instance_id):
            raise ConfigError("INSTANCE_ID", "must be 1-64 letters, digits, '.', '_' or '-'")
        for name in (
            "idle_timeout",
            "session_poll_interval",
            "store_check_interval",
            "shutdown_timeout",
            "header_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(name.upper(), f"must be a positive number of seconds, got {getattr(self, name)!r}")
        if self.max_message_size < 128 or self.max_body_size < 128:
            raise ConfigError("WS_MAX_MESSAGE_SIZE", "sizes must be at least 128 bytes")
        if self.loop not in ("asyncio", "uvloop"):
            raise ConfigError("LOOP", f"must be asyncio or uvloop, got {self.loop!r}")
        if self.access_log_sample < 1:
            raise ConfigError("ACCESS_LOG_SAMPLE", f"must be 1 or more, got {self.access_log_sample!r}")
        if not self.lookup_delays or any(d < 0 for d in self.lookup_delays):
            raise ConfigError("WS_LOOKUP_DELAYS_MS", "must be one or more non-negative delays")
        if self.public_ws_base is not None:
            parts = urlsplit(self.public_ws_base)
            if parts.scheme not in ("ws", "wss") or not parts.netloc or "@" in parts.netloc:
                raise ConfigError(
                    "PUBLIC_WS_BASE", "must be ws://host[:port] or wss://host[:port]", "wss://labs.example.com"
                )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> BackendConfig:
        """Read ``HOST``, ``PORT``, ``ALLOWED_ORIGINS`` (comma-separated), ``PUBLIC_WS_BASE``,
        ``INSTANCE_ID``, ``WS_PING_INTERVAL``, ``WS_PING_TIMEOUT``, ``WS_IDLE_TIMEOUT``,
        ``WS_MAX_MESSAGE_SIZE``, ``MAX_BODY_SIZE``, ``WS_LOOKUP_DELAYS_MS`` (comma-separated ms),
        ``SESSION_POLL_INTERVAL``, ``STORE_CHECK_INTERVAL``, ``SHUTDOWN_TIMEOUT``, ``HEADER_TIMEOUT``, ``LOG_LEVEL``,
        ``ACCESS_LOG`` (``on``/``off``), ``ACCESS_LOG_SAMPLE``, ``LOOP``.

        ``overrides`` (already typed) win; raises :class:`ConfigError` naming a malformed variable.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}

        def read(variable: str, name: str, parse: Any) -> None:
            raw = env.get(variable, "").strip()
            if raw:
                try:
                    values[name] = parse(raw)
                except ValueError as exc:
                    raise ConfigError(variable, f"is malformed: {exc}") from None

        read("HOST", "host", str)
        read("PORT", "port", int)
        read("ALLOWED_ORIGINS", "allowed_origins", parse_origins)
        read("PUBLIC_WS_BASE", "public_ws_base", lambda raw: raw.rstrip("/"))
        read("INSTANCE_ID", "instance_id", str)
        read("WS_PING_INTERVAL", "ws_ping_interval", _optional_seconds)
        read("WS_PING_TIMEOUT", "ws_ping_timeout", _optional_seconds)
        read("WS_IDLE_TIMEOUT", "idle_timeout", float)
        read("WS_MAX_MESSAGE_SIZE", "max_message_size", int)
        read("MAX_BODY_SIZE", "max_body_size", int)
        read("WS_LOOKUP_DELAYS_MS", "lookup_delays", lambda raw: tuple(float(x) / 1000 for x in raw.split(",")))
        read("SESSION_POLL_INTERVAL", "session_poll_interval", float)
        read("STORE_CHECK_INTERVAL", "store_check_interval", float)
        read("SHUTDOWN_TIMEOUT", "shutdown_timeout", float)
        read("HEADER_TIMEOUT", "header_timeout", float)
        read("LOG_LEVEL", "log_level", str.lower)
        read("ACCESS_LOG", "access_log", _switch)
        read("ACCESS_LOG_SAMPLE", "access_log_sample", int)
        read("LOOP", "loop", str.lower)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_changes(self, **changes: Any) -> BackendConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


def parse_origins(raw: str) -> tuple[str, ...]:
    """Comma-separated origins, each normalized; raises ``ValueError`` naming a bad one."""
    out: list[str] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        origin = normalize_origin(item)
        if origin is None:
            raise ValueError(f"{item.strip()!r} is not an origin like https://app.example.com")
        out.append(origin)
    return tuple(dict.fromkeys(out))


def _optional_seconds(raw: str) -> float | None:
    value = float(raw)
    return None if value <= 0 else value


def _switch(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ValueError(f"expected on or off, got {raw!r}")
