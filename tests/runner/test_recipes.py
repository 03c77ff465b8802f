"""docs/operations.md's recipes work as written: the cron line runs (against a real Redis and backend),
the systemd units pass ``systemd-analyze verify``, the CronJob forbids overlap and bounds its Job, and each
runs a command line labsession accepts, writing the history and the Prometheus file."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from labsession import EmbeddedRedis
from labsession.cli import build_parser
from labsession.embedded.backends import BackendProcess
from labsession.runner.history import History

from support import CANARY, REPO

DOC = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def recipe(name: str) -> str:
    """The fenced block right after ``<!-- recipe: NAME -->``."""
    found = re.search(rf"<!-- recipe: {re.escape(name)} -->\n```[a-z]*\n(.*?)```", DOC, re.DOTALL)
    assert found, f"docs/operations.md has no recipe {name}"
    return found.group(1)


def health_args(argv: list[str]) -> list[str]:
    """The arguments after ``health``, checked by labsession's own parser; they keep history and metrics."""
    args = argv[argv.index("health") :]
    parsed = build_parser("health").parse_args(args)
    assert parsed.history and parsed.prometheus and parsed.out and parsed.keep > 0 and parsed.budget < 300
    assert not parsed.read_write and not parsed.show_session_ids
    return args


@pytest.mark.slow
@pytest.mark.notebook
def test_cron_line_runs_as_written(tmp_path: Path, redis_factory: Callable[..., EmbeddedRedis], promtool: Path) -> None:
    line = recipe("cron").strip()
    fields = line.split(None, 6)
    assert fields[:5] == ["*/5", "*", "*", "*", "*"] and fields[5] == "labsession"
    command = fields[6]
    health_args(shlex.split(command.split("exec ", 1)[1].split(" >>", 1)[0]))
    server = redis_factory(password=CANARY)
    backend = BackendProcess(server.url, instance_id="cron").start()
    try:
        env_file = tmp_path / "health.env"
        env_file.write_text(f"REDIS_URL='{server.url}'\n")
        env_file.chmod(0o600)
        for folder in ("lib", "log", "textfile"):
            (tmp_path / folder).mkdir()
        here = (
            command.replace("/etc/labsession/health.env", str(env_file))
            .replace("/opt/labsession/venv/bin/labsession", str(BIN / "labsession"))
            .replace("https://lab-api.example.com", backend.url)
            .replace("/var/lib/node_exporter/textfile", str(tmp_path / "textfile"))
            .replace("/var/lib/labsession", str(tmp_path / "lib"))
            .replace("/var/log/labsession", str(tmp_path / "log"))
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABSESSION_EMBEDDED_", "REDIS_"))}
        done = subprocess.run(["/bin/sh", "-c", here], env=env, timeout=280, check=False)  # as cron runs it
    finally:
        backend.close()
    log = (tmp_path / "log" / "health.log").read_text()
    assert done.returncode == 0, log
    assert "verdict: PASS" in log or "verdict: WARN" in log
    with History(tmp_path / "lib" / "history.sqlite", readonly=True) as history:
        assert history.count() == 1
    assert (tmp_path / "lib" / "runs" / "latest" / "report.html").exists()
    prom = (tmp_path / "textfile" / "labsession.prom").read_text()
    assert "labsession_health_success 1" in prom
    checked = subprocess.run(
        [str(promtool), "check", "metrics"], input=prom, capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert CANARY not in log + prom


def test_systemd_units_verify(tmp_path: Path) -> None:
    service, timer = recipe("labsession-health.service"), recipe("labsession-health.timer")
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    health_args(shlex.split(exec_start.removeprefix("ExecStart=")))
    assert "Type=oneshot" in service and "KillMode=mixed" in service and "EnvironmentFile=" in service
    assert "Unit=labsession-health.service" in timer and "WantedBy=timers.target" in timer
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (the docs say: checked where it is available)")
    (tmp_path / "labsession-health.service").write_text(
        service.replace("/opt/labsession/venv/bin/labsession", str(BIN / "labsession")).replace(
            "EnvironmentFile=/etc/labsession/health.env", f"EnvironmentFile=-{tmp_path / 'health.env'}"
        )
    )
    (tmp_path / "labsession-health.timer").write_text(timer)
    done = subprocess.run(
        [
            analyze,
            "verify",
            "--man=no",
            str(tmp_path / "labsession-health.service"),
            str(tmp_path / "labsession-health.timer"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not re.search(r"unknown|invalid|error|not found", done.stdout + done.stderr, re.IGNORECASE), (
        done.stdout + done.stderr
    )


def test_kubernetes_cronjob_forbids_overlap_and_bounds_the_job() -> None:
    job = yaml.safe_load(recipe("cronjob.yaml"))
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "CronJob"
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    template = spec["jobTemplate"]["spec"]
    pod = template["template"]["spec"]
    (container,) = pod["containers"]
    args = health_args([str(a) for a in container["args"]])
    budget = build_parser("health").parse_args(args).budget
    # The deadline lets the budget, its 5 s grace and target setup end the run first.
    assert template["activeDeadlineSeconds"] >= budget + 30 and template["backoffLimit"] == 0
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] >= 10
    redis_url = next(e for e in container["env"] if e["name"] == "REDIS_URL")
    assert "value" not in redis_url and redis_url["valueFrom"]["secretKeyRef"]["key"]  # from a Secret only
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    parsed = build_parser("health").parse_args(args)
    assert any(parsed.history.startswith(m) for m in mounts) and any(parsed.prometheus.startswith(m) for m in mounts)
