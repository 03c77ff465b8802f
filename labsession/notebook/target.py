"""What a notebook diagnoses (:class:`Target`): the Redis its ``redis_url_env`` names, or an
embedded one, and the backend URLs; who started it and whether writes are allowed."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..embedded.target import EMBEDDED_BACKENDS_ENV, EMBEDDED_REDIS_URL_ENV, start_embedded_target
from ..errors import ConfigError
from ..masking import get_logger
from ..settings import Settings

__all__ = ["INTERACTIVE_ENV", "Target", "resolve_target"]

log = get_logger(__name__)


@dataclass(slots=True)
class Target:
    """What a notebook diagnoses: a Redis (``settings``) and zero or more backend base URLs.

    ``settings`` is ``None`` only when the Redis URL could not be resolved (``problem`` says
    why). ``embedded`` is True for a throwaway embedded store; ``origin`` says who started it.
    """

    settings: Settings | None
    backend_urls: list[str]
    embedded: bool
    origin: str
    read_only: bool
    problem: str | None = None
    #: Said loudly at the top of the notebook: an offline default a person should not miss.
    notice: str | None = None
    _stoppers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def writes_allowed(self) -> bool:
        """Probe sessions may be written: the target is embedded, or ``read_only`` is False."""
        return self.embedded or not self.read_only

    @property
    def write_refusal(self) -> str:
        """Why writes are not allowed (the SKIP evidence), or ``""``."""
        if self.writes_allowed:
            return ""
        return "read_only=True: no probe session is written to a real target (set read_only=False to allow)"

    @property
    def ws_urls(self) -> list[str]:
        """The backends' WebSocket base URLs (``ws://host:port``)."""
        return [
            ("wss://" + u[len("https://") :]) if u.startswith("https://") else "ws://" + u.split("://", 1)[1]
            for u in self.backend_urls
        ]

    def describe(self) -> str:
        """One sentence, safe to show: which store and backends, who started them, write policy."""
        store = f"Redis at {self.settings.endpoint} (tls={self.settings.tls})" if self.settings else "no Redis"
        backends = ", ".join(self.backend_urls) if self.backend_urls else "no backend URL"
        writes = (
            "probe sessions allowed (throwaway embedded store)"
            if self.embedded
            else "probe sessions allowed (read_only=False)"
            if not self.read_only
            else "read-only: no writes"
        )
        return f"{self.origin}: {store}; backends: {backends}; {writes}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "embedded": self.embedded,
            "redis": self.settings.endpoint if self.settings else None,
            "tls": self.settings.tls if self.settings else None,
            "backends": list(self.backend_urls),
            "writesAllowed": self.writes_allowed,
            "problem": self.problem,
        }

    def close(self) -> None:
        """Stop whatever this notebook started (backends first, then Redis); safe to call twice."""
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception as exc:  # stopping must not hide the verdict
                log.warning("could not stop part of the embedded target: %s", type(exc).__name__)


def _settings_for(url: str, key_prefix: str, timeout: float, env_name: str) -> Settings:
    try:
        return Settings.from_url(
            url,
            key_prefix=key_prefix,
            connect_timeout=timeout,
            socket_timeout=timeout,
            operation_timeout=timeout,
            retry_attempts=2,
        )
    except ConfigError as exc:
        raise ConfigError(env_name, exc.message.removeprefix("REDIS_URL ")) from None


def _start_own_embedded(key_prefix: str, timeout: float, backends: int) -> Target:
    url, backend_urls, stop = start_embedded_target(backends)
    target = Target(
        _settings_for(url, key_prefix, timeout, "embedded Redis"),
        backend_urls,
        True,
        "embedded target started by this notebook",
        read_only=True,
    )
    target._stoppers.append(stop)
    if not backend_urls and backends:
        target.problem = "the reference backend is not available in this build: backend checks SKIP"
    return target


#: Set by Jupyter Server for a kernel a person opened a notebook with (JupyterLab, Notebook):
#: how a kernel tells an interactive session from a headless one (papermill, nbval, a scheduler).
INTERACTIVE_ENV = "JPY_SESSION_NAME"


def resolve_target(params: Mapping[str, Any], env: Mapping[str, str] | None = None, *, backends: int = 2) -> Target:
    """The target for validated ``params``.

    ``embedded`` True: an embedded target (the runner's, handed over in
    ``LABSESSION_EMBEDDED_*``, else one of its own); False: the Redis that ``redis_url_env``
    names. ``None`` (the default) decides by who runs the notebook: the runner's embedded target
    when one was handed over; in JupyterLab an embedded target of its own, said loudly at the top
    (an offline default for a person); headless (papermill, a scheduler) the Redis that
    ``redis_url_env`` names, never an embedded one.

    Raises :class:`ConfigError` in one sentence when that variable is unset or malformed.
    """
    env = os.environ if env is None else env
    prefix = str(params.get("key_prefix") or "session:")
    timeout = float(params.get("timeout_seconds") or 5.0)
    backend_urls = [u.rstrip("/") for u in params.get("backend_urls") or []]
    read_only = bool(params.get("read_only", True))
    embedded = params.get("embedded")
    shared = env.get(EMBEDDED_REDIS_URL_ENV, "").strip()
    notice = None
    if embedded is None and not backend_urls:
        if shared:
            embedded = True
        elif env.get(INTERACTIVE_ENV):
            embedded = True
            notice = (
                f"Offline demo: embedded=None in JupyterLab runs against an embedded Redis. Set embedded=False "
                f"to diagnose the Redis that ${params.get('redis_url_env') or 'REDIS_URL'} names."
            )
    if embedded and not backend_urls:
        if shared:
            urls = env.get(EMBEDDED_BACKENDS_ENV, "").split()
            return Target(
                _settings_for(shared, prefix, timeout, EMBEDDED_REDIS_URL_ENV),
                [u.rstrip("/") for u in urls],
                True,
                "embedded target provided by the runner",
                read_only,
            )
        target = _start_own_embedded(prefix, timeout, backends)
        target.read_only = read_only
        target.notice = notice
        return target
    name = str(params.get("redis_url_env") or "REDIS_URL")
    url = env.get(name, "").strip()
    if not url:
        raise ConfigError(
            name,
            "is not set: a headless run diagnoses the Redis it names and never switches to an "
            "embedded one (pass -p embedded True for an offline demo)",
            "rediss://default:****@your-endpoint.upstash.io:6379",
        )
    return Target(_settings_for(url, prefix, timeout, name), backend_urls, False, f"target from ${name}", read_only)
