"""The ``labsession`` command line as a user runs it: subprocesses, exit codes, printed lines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from labsession import EmbeddedRedis, Settings, Status
from labsession.embedded.redis_server import free_port
from labsession.runner.check import run_checks

from support import CANARY

CLI = [sys.executable, "-m", "labsession"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "LAB_", "SESSION_"))}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})}, check=False
    )


def test_check_embedded_passes() -> None:
    done = run_cli("check", "--embedded")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in ("ping", "server", "create", "validate", "extend", "end"):
        assert any(re.match(rf"PASS\s+{name}\b", line) for line in lines), done.stdout
    assert lines[-1] == "verdict: PASS" or lines[-1] == "verdict: WARN"


def test_python_dash_m_labsession_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "labsession", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for command in ("health", "check", "serve", "redis", "runbook"):
        assert command in done.stdout


def test_check_without_redis_url_exits_2_with_one_line() -> None:
    done = run_cli("check")
    assert done.returncode == 2
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "REDIS_URL is not set" in message and "for example REDIS_URL=rediss://" in message
    assert "Traceback" not in done.stderr


def test_check_against_a_refused_port_exits_1_masked() -> None:
    url = f"redis://default:{CANARY}@127.0.0.1:{free_port()}/0"
    done = run_cli("check", env={"REDIS_URL": url, "REDIS_RETRY_ATTEMPTS": "2"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"FAIL\s+connect\s+.*CONNECTION_REFUSED", done.stdout)
    assert CANARY not in done.stdout + done.stderr


def test_check_read_only_by_default(embedded_redis: EmbeddedRedis) -> None:
    done = run_cli("check", env={"REDIS_URL": embedded_redis.url})
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"SKIP\s+lifecycle", done.stdout)
    assert redis.Redis.from_url(embedded_redis.url).dbsize() == 0


def test_check_reads_another_variable(embedded_redis: EmbeddedRedis) -> None:
    done = run_cli("check", "--redis-url-env", "MY_REDIS", "--write", env={"MY_REDIS": embedded_redis.url})
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"PASS\s+end", done.stdout)
    assert redis.Redis.from_url(embedded_redis.url).dbsize() == 0  # the probe session was cleaned up


async def test_run_checks_in_process(embedded_redis: EmbeddedRedis) -> None:
    report = await run_checks(Settings.from_url(embedded_redis.url), write=True)
    assert report.verdict in (Status.PASS, Status.WARN)
    assert {c.name for c in report} >= {
        "ping",
        "server",
        "eviction policy",
        "evictions",
        "create",
        "validate",
        "extend",
        "end",
    }


def test_no_command_prints_help_and_exits_2() -> None:
    done = run_cli()
    assert done.returncode == 2 and "check" in done.stdout


def test_redis_subcommand_prints_a_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env["LABSESSION_TEST_PW"] = CANARY
    process = subprocess.Popen(
        [*CLI, "redis", "--password-env", "LABSESSION_TEST_PW", "--aof-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        text = "\n".join(lines)
        match = re.search(r"export REDIS_URL=redis://:\*\*\*\*@127\.0\.0\.1:(\d+)/0", text)
        assert match, text
        assert CANARY not in text
        pid = int(re.search(r"pid (\d+)", text)[1])  # type: ignore[index]
        client = redis.Redis(host="127.0.0.1", port=int(match[1]), password=CANARY)
        assert client.ping() is True
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert CANARY not in out + err
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize(
    "argv",
    [
        ["health", "--budget", "NaN"],
        ["health", "--timeout", "inf"],
        ["health", "--cell-timeout", "-1"],
        ["health", "--jobs", "nan"],
        ["runbook", "redis_connectivity", "--cell-timeout", "nan"],
    ],
)
def test_nan_infinity_and_out_of_range_numbers_are_refused_with_the_option_named(argv: list[str]) -> None:
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert argv[-2] in done.stderr and "Traceback" not in done.stderr
