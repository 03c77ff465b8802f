"""Shared fixtures: real redis-servers on free loopback ports, a canary password, TLS files.

Timing: ``MS`` is one millisecond scaled by ``LABSESSION_TEST_TIME_SCALE`` (default 1), so
a slow machine can stretch every wait in one place instead of sprinkling sleeps. A test that
needs another task or process to have got somewhere waits on that state (an event, or
:func:`wait_until`), never a fixed sleep that a slow task outlasts unseen.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.embedded import TlsFiles, find_redis_server
from labsession.errors import EmbeddedRedisError

MS = 0.001 * float(os.environ.get("LABSESSION_TEST_TIME_SCALE", "1"))
#: A password that must never appear in any output; tests grep for it.
CANARY = "canary-Pw-9f8e7d6c5b"
IN_CI = bool(os.environ.get("CI"))


async def wait_until(
    condition: Callable[[], object | Awaitable[object]], what: str, *, within: float = 5000 * MS,
    every: float = 2 * MS,
) -> None:
    """Poll ``condition`` (a function, or a coroutine function) until it returns something true;
    fail the test naming ``what`` if that takes more than ``within`` seconds.

    For a test that needs another task or process to have reached a state before it goes on: a
    fixed sleep passes unseen when that task is slow, and then the test tests nothing.
    """
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"waited {within:.2f} s for {what}")
        await asyncio.sleep(every)


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., EmbeddedRedis]]:
    """Start embedded redis-servers with any options; all are stopped after the test."""
    started: list[EmbeddedRedis] = []

    def start(**options: object) -> EmbeddedRedis:
        server = EmbeddedRedis(**options)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()


@pytest.fixture
def embedded_redis(redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    """A fresh, empty redis-server for this test alone."""
    return redis_factory()


@pytest.fixture
def settings(embedded_redis: EmbeddedRedis) -> Settings:
    return Settings.from_url(embedded_redis.url, retry_attempts=3, operation_timeout=2.0)


@pytest.fixture
async def redis_service(settings: Settings) -> AsyncIterator[RedisService]:
    async with RedisService(settings) as service:
        yield service


@pytest.fixture
async def sessions(redis_service: RedisService) -> LabSessionService:
    return LabSessionService(redis_service)


@pytest.fixture(scope="session")
def tls_binary() -> Path:
    """A TLS-capable redis-server; skips on a laptop without one, fails under CI."""
    try:
        return find_redis_server(need_tls=True)
    except EmbeddedRedisError as exc:
        if IN_CI:
            pytest.fail(f"CI must have a TLS-capable redis-server: {exc}")
        pytest.skip(f"no TLS-capable redis-server here: {exc}")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, Path]:
    """(server TLS files signed by a test CA, path of an unrelated CA)."""
    from tlscerts import make_tls_files

    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_redis(
    tls_binary: Path, tls_files: tuple[TlsFiles, Path], redis_factory: Callable[..., EmbeddedRedis]
) -> EmbeddedRedis:
    """A redis-server with a TLS port (``tls_url``) and the canary password."""
    files, _ = tls_files
    return redis_factory(tls=files, binary=tls_binary, password=CANARY)


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every labsession log record at DEBUG and above."""
    caplog.set_level(logging.DEBUG, logger="labsession")
    return caplog
