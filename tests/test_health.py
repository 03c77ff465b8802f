"""``labsession health`` end to end: real redis-servers, real backends, real kernels, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from labsession import EmbeddedRedis
from labsession.backend.launch import BackendProcess
from labsession.embedded import free_port
from labsession.health_registry import DEFAULT_NOTEBOOKS

from conftest import CANARY

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(300)]

MINE = [arg for n in DEFAULT_NOTEBOOKS for arg in ("--only", n.name)]
WRITE_COMMANDS = {"set", "setex", "psetex", "setnx", "del", "unlink", "expire", "pexpire", "expireat", "getdel",
                  "getex", "incr", "hset", "lpush", "rpush", "sadd", "zadd", "eval", "evalsha", "fcall", "multi",
                  "exec", "rename", "flushdb", "flushall", "persist"}


def health(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``labsession health`` in a child process with a clean environment plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_") and k != "REDIS_URL"}
    clean.update(env or {})
    return subprocess.run([sys.executable, "-m", "labsession.cli", "health", *args], capture_output=True,
                          text=True, timeout=280, env=clean, check=False)


def summary_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return data


def statuses(summary: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(c["notebook"], c["name"]): c["status"] for c in summary["checks"]}


@pytest.fixture
def two_backends() -> Iterator[Callable[[str], list[str]]]:
    started: list[BackendProcess] = []

    def start(redis_url: str) -> list[str]:
        procs = [BackendProcess(redis_url, instance_id=f"health-{i}") for i in (1, 2)]
        started.extend(procs)
        for proc in procs:
            proc.start()
        return [p.url for p in procs]

    yield start
    for proc in started:
        proc.close()


def test_embedded_run_writes_every_output_and_passes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = health("--embedded", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: PASS" in result.stdout or "verdict: WARN" in result.stdout
    summary = summary_of(out)
    assert summary["exitCode"] == 0 and summary["verdict"] in ("PASS", "WARN")
    names = [n["name"] for n in summary["notebooks"]]
    assert names[:4] == [n.name for n in DEFAULT_NOTEBOOKS]
    assert all(c["status"] and c["evidence"] for c in summary["checks"])
    assert len(summary["checks"]) > 40
    # The embedded target allows probe sessions, so the write steps ran.
    checks = statuses(summary)
    assert checks[("session_lifecycle", "cleanup")] == "PASS"
    assert checks[("session_lifecycle", "visibility lag")] == "PASS"
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == names
    assert sum(len(s.findall("testcase")) for s in suites) == len(summary["checks"])
    for name in names:
        assert (out / "notebooks" / f"{name}.ipynb").exists()
        page = (out / "html" / f"{name}.html").read_text()
        assert "await run.finish()" not in page  # rendered without code inputs
    report = (out / "report.html").read_text()
    assert f"labsession health: {summary['verdict']}" in report and "html/connection_check.html" in report
    assert result.stderr.strip() == ""  # quiet when not a terminal


def test_missing_redis_url_is_an_error_not_a_switch_to_embedded(tmp_path: Path) -> None:
    result = health("--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "REDIS_URL is not set" in result.stderr and "--embedded" in result.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


def test_redis_down_fails_with_the_cause_named(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = health(*MINE, "--out", str(out), "--timeout", "1", env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert result.returncode == 1, result.stdout + result.stderr
    summary = summary_of(out)
    assert summary["verdict"] == "FAIL" and summary["counts"]["ERROR"] == 0
    checks = statuses(summary)
    assert checks[("connection_check", "tcp")] == "FAIL"
    failed = [c for c in summary["checks"] if c["status"] == "FAIL"]
    assert any("CONNECTION_REFUSED" in c["evidence"] for c in failed)
    assert "CONNECTION_REFUSED" in result.stdout


def test_canary_password_appears_in_no_output(
    tmp_path: Path, redis_factory: Callable[..., EmbeddedRedis], two_backends: Callable[[str], list[str]]
) -> None:
    server = redis_factory(password=CANARY)
    backends = two_backends(server.url)
    out = tmp_path / "out"
    args = [*MINE, "--read-write", "--out", str(out)]
    for url in backends:
        args += ["--backend-url", url]
    result = health(*args, env={"REDIS_URL": server.url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert statuses(summary_of(out))[("session_lifecycle", "cleanup")] == "PASS"  # writes ran
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) >= 4 * 2 + 3
    for path in written:
        assert CANARY.encode() not in path.read_bytes(), path
    assert CANARY not in result.stdout + result.stderr


def test_read_only_acl_user_passes_and_writes_nothing(
    tmp_path: Path, redis_factory: Callable[..., EmbeddedRedis], two_backends: Callable[[str], list[str]]
) -> None:
    server = redis_factory()
    admin = sync_redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "reader", "on", ">reader-pw-1234", "~*", "&*", "+@read", "+@connection",
                          "+info", "+scan", "+acl|whoami", "-@write")
    backends = two_backends(server.url)
    admin.config_resetstat()
    admin.execute_command("ACL", "LOG", "RESET")
    out = tmp_path / "out"
    args = [*MINE, "--out", str(out)]
    for url in backends:
        args += ["--backend-url", url]
    result = health(*args, env={"REDIS_URL": f"redis://reader:reader-pw-1234@127.0.0.1:{server.port}/0"})
    assert result.returncode == 0, result.stdout + result.stderr
    checks = statuses(summary_of(out))
    for write_step in [("session_lifecycle", "lifecycle"), ("session_lifecycle", "visibility lag"),
                       ("websocket_probe", "valid session")]:
        assert checks[write_step] == "SKIP", write_step
    assert checks[("connection_check", "auth")] == "PASS"
    assert checks[("ttl_inspection", "scan")] == "PASS"
    denied = [e for e in admin.acl_log(count=1000) if e.get("username") == "reader"]
    assert not {str(e.get("object")).lower() for e in denied} & WRITE_COMMANDS
    stats = admin.info("commandstats")
    assert not {name.removeprefix("cmdstat_") for name in stats} & WRITE_COMMANDS, sorted(stats)
    admin.close()


def test_papermill_runs_a_notebook_with_parameters(tmp_path: Path, embedded_redis: EmbeddedRedis,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from labsession.checks import REPORT_MIME

    monkeypatch.setenv("MY_STORE_URL", embedded_redis.url)  # the kernel inherits it
    notebook = str(DEFAULT_NOTEBOOKS[0].file)
    output = tmp_path / "out.ipynb"
    papermill.execute_notebook(notebook, str(output), kernel_name="python3", progress_bar=False,
                               parameters={"redis_url_env": "MY_STORE_URL", "embedded": False, "ping_samples": 5})
    executed = nbformat.read(str(output), as_version=4)
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "MY_STORE_URL" in injected.source and embedded_redis.url not in injected.source
    reports = [o["data"][REPORT_MIME] for c in executed.cells if c.cell_type == "code" for o in c.outputs
               if REPORT_MIME in o.get("data", {})]
    assert len(reports) == 1 and reports[0]["verdict"] == "PASS"
    assert next(c for c in reports[0]["checks"] if c["name"] == "ping latency")["data"]["n"] == 5
    with pytest.raises(PapermillExecutionError) as caught:
        papermill.execute_notebook(notebook, str(tmp_path / "bad.ipynb"), kernel_name="python3", progress_bar=False,
                                   parameters={"redis_url_env": "MY_STORE_URL", "timeout_seconds": "fast"})
    assert caught.value.ename == "ConfigError" and "timeout_seconds" in caught.value.evalue
