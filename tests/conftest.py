"""Shared fixtures: real redis-servers on free loopback ports, a canary password, TLS files.

Constants (``MS``, ``CANARY``, ``IN_CI``) and helpers live in the ``support`` package.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_server import TlsFiles, find_redis_server
from labsession.errors import EmbeddedRedisError

from support import CANARY, IN_CI


@pytest.fixture(autouse=True)
def _own_run_history(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's ``labsession health`` runs record into a history of their own (the default one lives
    under ``$XDG_STATE_HOME``), so none sees another's runs and the notebooks see none at all."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


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
def backend_factory() -> Iterator[Callable[..., BackendProcess]]:
    """Start reference backends (``labsession serve`` as child processes); all are stopped, and
    their log files closed, after the test."""
    started: list[BackendProcess] = []

    def start(redis_url: str, **options: object) -> BackendProcess:
        backend = BackendProcess(redis_url, **options)  # type: ignore[arg-type]
        started.append(backend)
        return backend.start()

    yield start
    for backend in started:
        backend.close()


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
def promtool() -> Path:
    """Prometheus' ``promtool`` (Debian's ``prometheus`` package); skips on a laptop without it, fails under CI."""
    found = shutil.which("promtool")
    if found:
        return Path(found)
    if IN_CI:
        pytest.fail("CI must have promtool (Debian's prometheus package; .ci/run installs it)")
    pytest.skip("no promtool here (Debian: apt install prometheus)")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, Path]:
    """(server TLS files signed by a test CA, path of an unrelated CA)."""
    from support.tlscerts import make_tls_files

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
