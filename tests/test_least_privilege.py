"""Read-only means least privilege: every read-only path runs as a read-only Redis ACL user and the
server's ``ACL LOG`` stays empty. On a production Redis each denied command is a security event.

The user may read keys, run INFO, PING, SCAN and the CLIENT subcommands a connection sets itself
up with, and nothing that writes or administers (no CONFIG, no KEYS, no DEBUG, no ROLE).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as sync_redis

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.embedded.backends import BackendProcess
from labsession.notebook.widgets import SessionExplorer

from support import CANARY

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(300)]

READ_ONLY_USER = "labsession-ro"
#: The read-only ACL user the docs describe: categories first, then the few admin reads allowed back.
#: (@connection already holds the CLIENT subcommands a connection sets itself up with: SETNAME, SETINFO.)
READ_ONLY_ACL = [
    "on",
    f">{CANARY}",
    "~*",
    "&*",
    "-@all",
    "+@read",
    "+@connection",
    "-@write",
    "-@dangerous",
    "+info",
    "+ping",
    "+scan",
]


@pytest.fixture
def store(redis_factory: Callable[..., EmbeddedRedis]) -> Iterator[tuple[EmbeddedRedis, sync_redis.Redis, str]]:
    """(server, an admin client, a Redis URL for the read-only user); sessions seeded as admin."""
    server = redis_factory()
    admin = sync_redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", READ_ONLY_USER, *READ_ONLY_ACL)
    admin.execute_command("ACL", "LOG", "RESET")
    yield server, admin, f"redis://{READ_ONLY_USER}:{CANARY}@127.0.0.1:{server.port}/0"
    admin.close()


def denied(admin: sync_redis.Redis) -> list[str]:
    """What the server refused since the last reset: ``reason:object`` per ``ACL LOG`` entry."""
    entries: list[Any] = admin.execute_command("ACL", "LOG")
    out = []
    for entry in entries:
        fields = dict(zip(entry[::2], entry[1::2], strict=True)) if isinstance(entry, list) else entry
        text = {
            k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
            for k, v in fields.items()
        }
        out.append(f"{text.get('reason')}:{text.get('object')}")
    return out


async def seed(server: EmbeddedRedis) -> str:
    async with RedisService(Settings.from_url(server.url)) as redis:
        sessions = LabSessionService(redis)
        first = await sessions.create("ada", "lab-linux", "p-1", base_url="ws://h")
        await sessions.create("bob", "lab-linux", "p-2", base_url="ws://h")
        return first.session_id


def labsession(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_")}
    env["REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, "-m", "labsession", *args], capture_output=True, text=True, timeout=280, env=env, check=False
    )


def test_the_read_only_user_is_really_read_only(store: tuple[EmbeddedRedis, sync_redis.Redis, str]) -> None:
    _, admin, url = store
    reader = sync_redis.Redis.from_url(url)
    with pytest.raises(sync_redis.exceptions.NoPermissionError):
        reader.set("session:x", "{}")
    with pytest.raises(sync_redis.exceptions.NoPermissionError):
        reader.config_get("maxmemory")
    reader.close()
    assert sorted(denied(admin)) == ["command:config|get", "command:set"]  # newest first in the log


async def test_check_health_runbooks_and_explorer_read_only_leave_the_acl_log_empty(
    store: tuple[EmbeddedRedis, sync_redis.Redis, str],
) -> None:
    server, admin, url = store
    session_id = await seed(server)
    admin.execute_command("ACL", "LOG", "RESET")

    check = labsession("check", redis_url=url)
    assert check.returncode in (0, 1), check.stdout + check.stderr
    assert "SKIP" in check.stdout  # the lifecycle step is skipped, not attempted
    assert denied(admin) == [], "labsession check"

    health = labsession("health", "--budget", "120", redis_url=url)
    assert health.returncode in (0, 1), health.stdout + health.stderr
    assert "ttl_inspection" in health.stdout and "runbook_invalid_session" in health.stdout
    assert denied(admin) == [], "labsession health (read-only)"

    for name, extra in (
        ("redis_connectivity", []),
        ("invalid_session", ["-p", "session_id", session_id]),
        ("redis_latency_memory", []),
    ):
        result = labsession("runbook", name, *extra, "--json", redis_url=url)
        assert result.returncode in (0, 1), result.stdout + result.stderr
        assert json.loads(result.stdout)["cause"], result.stdout
        assert denied(admin) == [], f"labsession runbook {name}"

    async with RedisService(Settings.from_url(url)) as redis:
        explorer = SessionExplorer(LabSessionService(redis), read_only=True)
        await explorer.refresh()
        assert len(explorer.rows) == 2
        await explorer.select(session_id)
        explorer.query.value = "ada"
        await explorer.idle()
        assert [r.user_id for r in explorer.rows] == ["ada"]
    assert denied(admin) == [], "session explorer (read-only)"
    for output in (check.stdout, check.stderr, health.stdout, health.stderr):
        assert CANARY not in output


async def test_terminal_disconnects_read_only_leaves_the_acl_log_empty(
    store: tuple[EmbeddedRedis, sync_redis.Redis, str],
) -> None:
    server, admin, url = store
    session_id = await seed(server)
    with BackendProcess(server.url, instance_id="instance-a") as backend:
        admin.execute_command("ACL", "LOG", "RESET")
        result = labsession(
            "runbook",
            "terminal_disconnects",
            "-p",
            "session_id",
            session_id,
            "-p",
            "backend_urls",
            json.dumps([backend.url]),
            "-p",
            "ping_seconds",
            "1",
            "-p",
            "idle_seconds",
            "1",
            "--json",
            redis_url=url,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["cause"] == "NO_FAULT_FOUND"
    assert denied(admin) == [], "labsession runbook terminal_disconnects"
    assert CANARY not in result.stdout + result.stderr
