"""Run history, run folders and the run lock, through the real command line against real servers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labsession.embedded.redis_server import free_port
from labsession.runner.executor import execute
from labsession.runner.history import History, RunInProgress, RunLock
from labsession.runner.rundirs import LATEST, RUN_ID, new_run_id, point_latest, prune_runs, run_dirs

from support import CANARY, REPO

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(400)]

QUICK = ["--only", "connection_check", "--only", "ttl_inspection"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_") and k != "REDIS_URL"}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "labsession", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean,
        check=False,
    )


def test_every_run_is_recorded_and_history_says_what_changed(tmp_path: Path) -> None:
    store, out = tmp_path / "state" / "history.sqlite", tmp_path / "out"
    common = [*QUICK, "--history", str(store), "--out", str(out), "--keep", "2"]
    assert cli("health", "--embedded", *common).returncode == 0
    assert cli("health", "--embedded", *common).returncode == 0
    down = cli(
        "health", *common, "--timeout", "1", env={"REDIS_URL": f"redis://default:{CANARY}@127.0.0.1:{free_port()}/0"}
    )
    assert down.returncode == 1, down.stdout + down.stderr

    # Each run in its own dated folder, the newest behind "latest", two kept.
    folders = run_dirs(out)
    assert len(folders) == 2 and all(RUN_ID.match(f.name) for f in folders)
    assert (out / LATEST).resolve() == folders[-1].resolve()
    latest = json.loads((out / LATEST / "summary.json").read_text())
    assert latest["runId"] == folders[-1].name and latest["verdict"] == "FAIL"

    with History(store, readonly=True) as history:
        runs = history.runs(10)
        assert [r.verdict for r in runs] == ["FAIL", "PASS", "PASS"] and history.count() == 3
        newest = runs[0]
        assert newest.run_id == latest["runId"] and newest.out_dir == str(folders[-1])
        assert newest.endpoint.startswith("127.0.0.1:") and "read-only" in newest.target
        assert newest.parameters["timeout_seconds"] == 1.0 and newest.exit_code == 1
        assert newest.finished_at >= newest.started_at + newest.elapsed_seconds - 1
        checks = {(c.notebook, c.name): c for c in history.checks(newest.run_id)}
        assert checks[("connection_check", "tcp")].status == "FAIL"
        assert checks[("connection_check", "tcp")].data == {"cause": "CONNECTION_REFUSED"}
        numbers = history.metrics(runs[1].run_id)
        assert numbers["labsession_health_success"] == 1.0
        assert 0 < numbers["labsession_redis_ping_p99_seconds"] < 5
        assert numbers["labsession_sessions_active"] >= 1  # the notebook's demo sessions
        assert len(history.series("labsession_health_success")) == 3
    assert CANARY.encode() not in store.read_bytes()

    shown = cli("history", "--history", str(store))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"history: {store} (3 runs)"
    assert [line.split()[0] for line in lines[2:5]] == [r.run_id for r in runs]
    assert f"changes from {runs[1].run_id} (PASS) to {runs[0].run_id} (FAIL):" in shown.stdout
    assert "verdict" in shown.stdout and "PASS → FAIL" in shown.stdout
    assert any(line.split()[:4] == ["connection_check:", "tcp", "PASS", "→"] for line in lines), shown.stdout
    as_json = json.loads(cli("history", "--history", str(store), "--json", "--limit", "2").stdout)
    assert as_json["runs"] == 3 and len(as_json["shown"]) == 2
    assert {"kind": "verdict", "what": "verdict", "before": "PASS", "after": "FAIL", "evidence": ""} in as_json[
        "changes"
    ]["items"]
    assert CANARY not in shown.stdout + shown.stderr

    missing = cli("history", "--history", str(tmp_path / "nothing.sqlite"))
    assert missing.returncode == 2 and "no history at" in missing.stderr

    # notebooks/06 plots the trends of this very history.
    trends = REPO / "notebooks" / "06_health_history.ipynb"
    done = execute(trends, tmp_path / "06.ipynb", {"history_path": str(store)}, cell_timeout=120)
    assert done.error is None, done.error  # a WARN verdict raises nothing
    (report,) = done.reports
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["history"]["status"] == "PASS" and checks["history"]["evidence"].startswith("3 runs from ")
    assert checks["latest run"]["status"] == "WARN" and f"{runs[0].run_id}" in checks["latest run"]["evidence"]
    assert checks["on schedule"]["status"] == "PASS" and checks["evictions"]["status"] == "PASS"
    assert report["verdict"] == "WARN"
    book = json.loads((tmp_path / "06.ipynb").read_text())
    plots = [o for c in book["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(plots) == 5  # verdicts, PING, active sessions, TTL anomalies, evictions


def test_a_second_run_on_the_same_history_does_not_start(tmp_path: Path) -> None:
    store = tmp_path / "history.sqlite"
    lock = store.with_name("history.sqlite.lock")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_")}
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labsession",
            "health",
            "--embedded",
            "--only",
            "connection_check",
            "--history",
            str(store),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean,
    )
    try:
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().startswith("pid ")):
            assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        began = time.monotonic()
        second = cli("health", "--embedded", "--only", "connection_check", "--history", str(store), "--lock-wait", "1")
        waited = time.monotonic() - began
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"another labsession health run (pid {first.pid}, started " in second.stderr
        assert "not starting after waiting 1 s" in second.stderr and second.stdout == ""
        assert waited < 60  # it stopped instead of queueing behind the first run
    finally:
        first.communicate(timeout=120)
    assert first.returncode == 0
    with History(store, readonly=True) as history:
        assert history.count() == 1  # only the run that ran


def test_run_lock_is_exclusive_and_released_with_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "h.lock"
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\n"
            "from labsession.runner.history import RunLock\n"
            "RunLock(Path(sys.argv[1])).acquire()\nprint('held', flush=True)\ntime.sleep(600)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            with pytest.raises(RunInProgress, match=rf"pid {holder.pid}"):
                RunLock(path).acquire()
        finally:
            holder.kill()  # SIGKILL: no chance to clean up
            holder.wait(10)
    with RunLock(path, wait=5):  # the kernel released it with the process
        pass


def test_run_folders_rotate_and_latest_moves_atomically(tmp_path: Path) -> None:
    ids = [new_run_id(1_700_000_000 + i) for i in range(5)]
    assert all(RUN_ID.match(i) for i in ids) and ids == sorted(ids)
    for run_id in ids:
        (tmp_path / run_id).mkdir()
    (tmp_path / "notes").mkdir()  # not a run: never touched
    (tmp_path / "20240101T000000Z-zzzzzz").mkdir()  # not a run id either
    point_latest(tmp_path, tmp_path / ids[-1])
    removed = prune_runs(tmp_path, 2, current=tmp_path / ids[-1])
    assert [p.name for p in removed] == ids[:3]
    assert [p.name for p in run_dirs(tmp_path)] == ids[3:]
    assert (tmp_path / "notes").is_dir() and (tmp_path / "20240101T000000Z-zzzzzz").is_dir()
    assert os.readlink(tmp_path / LATEST) == ids[-1]
    assert prune_runs(tmp_path, 0) == []


def test_a_broken_history_file_does_not_lose_the_run(tmp_path: Path) -> None:
    store = tmp_path / "history.sqlite"
    store.write_bytes(b"this is not a database" * 100)
    out = tmp_path / "out"
    result = cli("health", "--embedded", "--only", "connection_check", "--history", str(store), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"could not record the run in {store}" in result.stderr
    assert json.loads((out / LATEST / "summary.json").read_text())["verdict"] == "PASS"
    with pytest.raises(sqlite3.DatabaseError):
        History(store, readonly=True).count()


def test_the_history_forgets_runs_older_than_asked(tmp_path: Path) -> None:
    from labsession.checks import Report, Status
    from labsession.runner.results import NotebookOutcome, RunSummary

    report = Report("n")
    report.check("ping latency", Status.PASS, "fine", p50Ms=0.1, p99Ms=0.5)
    outcome = NotebookOutcome("connection_check", "n.ipynb", Status.PASS, [report.to_dict()])
    now = time.time()
    with History(tmp_path / "h.sqlite") as history:
        for days_ago in (100, 40, 0):
            summary = RunSummary(
                {"description": "x", "endpoint": "db:6379"},
                [outcome],
                "",
                1.0,
                run_id=f"run-{days_ago}",
                started_at=now - days_ago * 86400,
                finished_at=now - days_ago * 86400 + 1,
            )
            history.record(summary, keep_days=90)
        assert [r.run_id for r in history.runs()] == ["run-0", "run-40"]
        assert history.metrics("run-100") == {} and history.checks("run-100") == []  # nothing of it is left
        assert history.metrics("run-0")["labsession_redis_ping_p99_seconds"] == 0.0005
