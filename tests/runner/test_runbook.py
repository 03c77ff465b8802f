"""``labsession runbook``: the runbook notebooks run headless through papermill, real kernels.

Each test stages a cause for real, runs the CLI as a user would (a subprocess, the Redis URL
in an environment variable) and checks the exit code, the printed cause and ``summary.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_server import free_port
from labsession.runner.runbook import parse_value

from support import CANARY

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def runbook(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.pop("REDIS_URL", None)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "labsession", "runbook", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def every_file_text(directory: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())


def test_connection_refused_names_the_cause_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = runbook("redis_connectivity", "--out", str(out), env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cause:  CONNECTION_REFUSED" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cause"] == "CONNECTION_REFUSED"
    assert summary["verdict"] == "FAIL"
    assert (out / "redis_connectivity.ipynb").exists()


async def test_an_ended_session_behind_a_password_never_leaks_the_canary(
    redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = redis_factory(password=CANARY)
    async with RedisService(Settings.from_url(server.url)) as redis:
        sessions = LabSessionService(redis)
        session = await sessions.create(
            "u", "lab", "p", base_url="ws://x", sandbox_account={"iamSecretAccessKey": CANARY}
        )
        await sessions.end(session.session_id)
    out = tmp_path / "out"
    done = runbook(
        "invalid_session",
        "-p",
        "session_id",
        session.session_id,
        "-p",
        "redis_url_env",
        "LAB_REDIS",
        "--out",
        str(out),
        env={"LAB_REDIS": server.url},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cause"] == "SESSION_ENDED"
    assert "start a new session" in summary["remedy"]
    assert CANARY not in done.stdout + done.stderr
    assert CANARY not in every_file_text(out)


def test_a_wrong_password_is_auth_failed_without_showing_it(
    redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = redis_factory(password="the-right-one-1234")
    out = tmp_path / "out"
    done = runbook(
        "redis_connectivity",
        "--out",
        str(out),
        env={"REDIS_URL": f"redis://default:{CANARY}@127.0.0.1:{server.port}/0"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads((out / "summary.json").read_text())["cause"] == "AUTH_FAILED"
    assert CANARY not in done.stdout + done.stderr
    assert CANARY not in every_file_text(out)


def test_a_bad_session_id_parameter_cannot_run(embedded_redis: EmbeddedRedis) -> None:
    done = runbook("invalid_session", "-p", "session_id", "session:*", env={"REDIS_URL": embedded_redis.url})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "session_id" in done.stdout
    assert "could not run" in done.stdout


def test_a_healthy_store_exits_0(embedded_redis: EmbeddedRedis) -> None:
    done = runbook("invalid_session", "-p", "session_id", "", "--json", env={"REDIS_URL": embedded_redis.url})
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["cause"] == "NO_FAULT_FOUND"
    visibility = next(c for c in summary["checks"] if c["name"] == "visibility")
    assert visibility["status"] == "SKIP"  # read_only by default against a real target


def test_unknown_runbook_is_refused() -> None:
    done = runbook(f"nope_{uuid.uuid4().hex[:6]}")
    assert done.returncode == 2
    assert "invalid_session" in done.stderr


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("5", 5), ('["http://a:1"]', ["http://a:1"]), ("True", True), ("abc", "abc"), ("", "")],
)
def test_parameter_values(raw: str, value: object) -> None:
    assert parse_value(raw) == value


def test_a_misspelled_parameter_stops_the_run_and_names_the_real_ones(tmp_path: Path) -> None:
    done = runbook("invalid_session", "--embedded", "-p", "sesion_id", "3f0c3a8e-6d47-4a53-9d7e-2f1b8f0e6c11")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'sesion_id'" in done.stderr and "session_id" in done.stderr.split("parameters are:")[1]
    assert "NO_FAULT_FOUND" not in done.stdout


def test_a_parameter_name_is_never_run_as_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f'x = 1; import pathlib; pathlib.Path("{marker}").touch(); y'
    done = runbook("redis_connectivity", "--embedded", "-p", hostile, "1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert not marker.exists()
    assert "is not a parameter of redis_connectivity.ipynb" in done.stderr


def test_latency_memory_on_a_healthy_store_exits_0_and_reads_no_admin_command(embedded_redis: EmbeddedRedis) -> None:
    done = runbook("redis_latency_memory", "--json", env={"REDIS_URL": embedded_redis.url})
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["cause"] == "NO_FAULT_FOUND" and summary["healthy"] is True
    slowlog = next(c for c in summary["checks"] if c["name"] == "slowlog")
    assert slowlog["status"] == "SKIP" and "read-only run" in slowlog["evidence"]  # read_only by default


async def test_latency_memory_names_keys_without_ttl_behind_a_password_without_leaking_it(
    redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = redis_factory(password=CANARY)
    async with RedisService(Settings.from_url(server.url)) as redis:
        await LabSessionService(redis).create(
            "u", "lab", "p", base_url="ws://x", sandbox_account={"iamSecretAccessKey": CANARY}
        )
        pipe = redis.client.pipeline(transaction=False)
        for i in range(300):
            pipe.set(f"cache:{i}", CANARY)
        await pipe.execute()
    out = tmp_path / "out"
    done = runbook(
        "redis_latency_memory", "-p", "max_keys_without_ttl", "100", "--out", str(out), env={"REDIS_URL": server.url}
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cause:  KEYS_WITHOUT_TTL" in done.stdout and "cache:* 300" in done.stdout
    assert CANARY not in done.stdout + done.stderr
    assert CANARY not in every_file_text(out)


# -- terminal_disconnects ------------------------------------------------------------------------


async def test_terminal_disconnects_on_a_healthy_backend_exits_0_and_never_leaks_the_canary(
    redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = redis_factory(password=CANARY)
    with BackendProcess(server.url, instance_id="instance-a") as backend:
        async with RedisService(Settings.from_url(server.url)) as redis:
            session = await LabSessionService(redis).create("u", "lab", "p", base_url=backend.ws_url)
        out = tmp_path / "out"
        done = runbook(
            "terminal_disconnects",
            "-p",
            "session_id",
            session.session_id,
            "-p",
            "backend_urls",
            json.dumps([backend.url]),
            "-p",
            "ping_seconds",
            "1",
            "-p",
            "ping_every_seconds",
            "0.2",
            "-p",
            "idle_seconds",
            "1",
            "--out",
            str(out),
            env={"REDIS_URL": server.url},
        )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cause"] == "NO_FAULT_FOUND"
    assert {c["name"]: c["status"] for c in summary["checks"]}["idle hold"] == "PASS"
    assert CANARY not in done.stdout + done.stderr
    assert CANARY not in every_file_text(out)
    # the id opens the terminal: what the runbook prints and reports shows its first characters only
    # (the executed notebook keeps the parameter papermill was given, as every runbook's does)
    assert session.session_id not in done.stdout + done.stderr + (out / "summary.json").read_text()


def test_terminal_disconnects_with_an_unknown_session_names_it_and_exits_1(embedded_redis: EmbeddedRedis) -> None:
    with BackendProcess(embedded_redis.url, instance_id="instance-a") as backend:
        done = runbook(
            "terminal_disconnects",
            "-p",
            "session_id",
            str(uuid.uuid4()),
            "-p",
            "backend_urls",
            json.dumps([backend.url]),
            "--json",
            env={"REDIS_URL": embedded_redis.url},
        )
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["cause"] == "SESSION_NOT_VALID"
    assert "invalid_session" in summary["remedy"]
