"""The embedded target: one embedded Redis and N reference backend instances, for offline runs.

A runner (``labsession health --embedded``, the notebook test session) starts it once and hands
it to notebook kernels through two environment variables (:func:`embedded_env`); a notebook
run alone in JupyterLab may start its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

__all__ = ["EMBEDDED_BACKENDS_ENV", "EMBEDDED_REDIS_URL_ENV", "embedded_env", "start_embedded_target"]

#: Environment variable holding the Redis URL of an embedded target a runner started for us.
EMBEDDED_REDIS_URL_ENV = "LABSESSION_EMBEDDED_REDIS_URL"
#: Environment variable holding that embedded target's backend base URLs, separated by spaces.
EMBEDDED_BACKENDS_ENV = "LABSESSION_EMBEDDED_BACKEND_URLS"


def embedded_env(redis_url: str, backend_urls: Sequence[str]) -> dict[str, str]:
    """The environment variables through which a runner hands its embedded target to notebooks."""
    return {EMBEDDED_REDIS_URL_ENV: redis_url, EMBEDDED_BACKENDS_ENV: " ".join(backend_urls)}


def start_embedded_target(
    backends: int = 2, *, password: str | None = None
) -> tuple[str, list[str], Callable[[], None]]:
    """Start an embedded Redis and ``backends`` reference backend instances on it (in parallel).

    Returns ``(redis_url, backend_urls, stop)``; the URL carries the password when there is
    one (hand it on through the environment only). With no reference backend in this build
    the backend list is empty. Raises :class:`~labsession.errors.EmbeddedRedisError`.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .redis_server import EmbeddedRedis

    server = EmbeddedRedis(password=password).start()
    started: list[Any] = []

    def stop() -> None:
        for backend in reversed(started):
            with suppress(Exception):
                backend.close()
        server.close()

    try:
        from .backends import BackendProcess
    except ImportError:
        return server.url, [], stop
    try:
        processes = [BackendProcess(server.url, instance_id=f"embedded-{i + 1}") for i in range(backends)]
        started.extend(processes)
        with ThreadPoolExecutor(max_workers=max(1, backends)) as pool:
            list(pool.map(lambda p: p.start(), processes))
    except BaseException:
        stop()
        raise
    return server.url, [str(p.url).rstrip("/") for p in processes], stop
