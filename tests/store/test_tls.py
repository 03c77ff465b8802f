"""TLS against a real redis-server: verification on by default, a CA from REDIS_CA_CERT."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labsession import EmbeddedRedis, RedisCause, RedisService, RedisUnavailable, Settings
from labsession.embedded.redis_server import TlsFiles

from support import CANARY


async def test_rediss_with_the_right_ca_connects(tls_redis: EmbeddedRedis, tls_files: tuple[TlsFiles, Path]) -> None:
    files, _ = tls_files
    settings = Settings.from_url(tls_redis.tls_url, ca_cert=str(files.ca), retry_attempts=2)
    async with RedisService(settings) as redis:
        health = await redis.health()
    assert health.tls is True
    assert health.version is not None


async def test_untrusted_certificate_fails_fast_with_a_masked_message(
    tls_redis: EmbeddedRedis, tls_files: tuple[TlsFiles, Path], captured_logs: pytest.LogCaptureFixture
) -> None:
    _, stranger = tls_files
    settings = Settings.from_url(tls_redis.tls_url, ca_cert=str(stranger), retry_attempts=3)
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as caught:
        async with RedisService(settings):
            pass
    assert time.monotonic() - started < 2  # not retried: a certificate does not fix itself
    assert caught.value.cause is RedisCause.TLS_VERIFY_FAILED
    assert "REDIS_CA_CERT" in str(caught.value)
    assert CANARY not in str(caught.value) and CANARY not in repr(caught.value)
    assert CANARY not in captured_logs.text


async def test_system_trust_store_does_not_know_the_test_ca(tls_redis: EmbeddedRedis) -> None:
    settings = Settings.from_url(tls_redis.tls_url, retry_attempts=2)
    with pytest.raises(RedisUnavailable) as caught:
        async with RedisService(settings):
            pass
    assert caught.value.cause is RedisCause.TLS_VERIFY_FAILED


async def test_verification_off_connects_and_warns(
    tls_redis: EmbeddedRedis, captured_logs: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_url(tls_redis.tls_url, tls_verify=False, retry_attempts=2)
    async with RedisService(settings) as redis:
        assert await redis.ping() > 0
    assert any("verification is OFF" in r.getMessage() for r in captured_logs.records)
    assert CANARY not in captured_logs.text


async def test_plain_redis_url_against_the_tls_port_says_tls_required(tls_redis: EmbeddedRedis) -> None:
    url = tls_redis.tls_url.replace("rediss://", "redis://")
    settings = Settings.from_url(url, retry_attempts=2, connect_timeout=1, socket_timeout=1, operation_timeout=3)
    with pytest.raises(RedisUnavailable) as caught:
        async with RedisService(settings):
            pass
    assert caught.value.cause is RedisCause.TLS_REQUIRED, str(caught.value)
    assert "rediss://" in str(caught.value)
    assert CANARY not in str(caught.value)
