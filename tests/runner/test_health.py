"""``labsession health`` end to end: real redis-servers, real backends, real kernels, the real CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from labsession import EmbeddedRedis
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_server import free_port
from labsession.runner.registry import DEFAULT_NOTEBOOKS

from support import CANARY

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(300)]

MINE = [arg for n in DEFAULT_NOTEBOOKS for arg in ("--only", n.name)]
WRITE_COMMANDS = {
    "set",
    "setex",
    "psetex",
    "setnx",
    "del",
    "unlink",
    "expire",
    "pexpire",
    "expireat",
    "getdel",
    "getex",
    "incr",
    "hset",
    "lpush",
    "rpush",
    "sadd",
    "zadd",
    "eval",
    "evalsha",
    "fcall",
    "multi",
    "exec",
    "rename",
    "flushdb",
    "flushall",
    "persist",
}


def health(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``labsession health`` in a child process with a clean environment plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_") and k != "REDIS_URL"}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "labsession", "health", *args],
        capture_output=True,
        text=True,
        timeout=280,
        env=clean,
        check=False,
    )


def external_resources(page: str) -> list[str]:
    """What ``page`` would load from the network: scripts, styles, images, frames (not plain links)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for name, value in attrs:
                if value and name in ("src", "href") and (tag != "a") and re.match(r"(https?:)?//", value):
                    found.append(f"{tag} {name}={value}")

    Parser().feed(page)
    found += re.findall(r"@import|url\(\s*['\"]?(?:https?:)?//", page)
    return found


def summary_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "latest" / "summary.json").read_text())
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
    suites = ET.parse(out / "latest" / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == names
    assert sum(len(s.findall("testcase")) for s in suites) == len(summary["checks"])
    for name in names:
        assert (out / "latest" / "notebooks" / f"{name}.ipynb").exists()
        page = (out / "latest" / "html" / f"{name}.html").read_text()
        assert "await run.finish()" not in page  # rendered without code inputs
    report = (out / "latest" / "report.html").read_text()
    assert f"labsession health: {summary['verdict']}" in report and "html/connection_check.html" in report
    assert f"class='banner s-{summary['verdict']}'" in report
    assert report.count("<img alt=") >= 2 and "TTL histogram" in report  # the key plots, inline
    for page in [report, *((out / "latest" / "html" / f"{name}.html").read_text() for name in names)]:
        assert not external_resources(page)  # opens offline
    assert result.stderr.strip() == ""  # quiet when not a terminal


def test_read_write_with_embedded_says_it_changes_nothing() -> None:
    result = health("--embedded", "--read-write", "--only", "connection_check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--read-write changes nothing with --embedded" in result.stderr
    assert "without encryption" not in result.stderr


def test_missing_redis_url_is_an_error_not_a_switch_to_embedded(tmp_path: Path) -> None:
    result = health("--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "REDIS_URL is not set" in result.stderr and "--embedded" in result.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


def test_redis_down_fails_with_one_root_cause_and_no_crash(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = health("--out", str(out), "--timeout", "1", env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert result.returncode == 1, result.stdout + result.stderr
    summary = summary_of(out)
    assert summary["verdict"] == "FAIL" and summary["counts"]["ERROR"] == 0
    checks = statuses(summary)
    assert checks[("connection_check", "tcp")] == "FAIL"
    failed = [c for c in summary["checks"] if c["status"] == "FAIL"]
    assert any("CONNECTION_REFUSED" in c["evidence"] for c in failed)
    # The root cause is stated once, at the top, instead of once per check.
    lines = result.stdout.splitlines()
    assert lines[1].startswith("root cause: CONNECTION_REFUSED: nothing listens on that port")
    assert result.stdout.count("nothing listens on that port") == 1, result.stdout
    assert "Connect call failed" not in result.stdout
    report = (out / "latest" / "report.html").read_text()
    top = report.split("<details>")[0]
    assert top.count("Root cause: <code>CONNECTION_REFUSED</code>") == 1
    assert "Connect call failed" in top and top.count("Connect call failed") == 1
    # Each failing check links to the cell that showed it, in a page without papermill's crash banner.
    links = re.findall(r"href='html/([a-z_]+)\.html#cell-id=([0-9a-zA-Z_-]+)'", top)
    assert {name for name, _ in links} == {n["name"] for n in summary["notebooks"]}
    for name, cell in links:
        page = (out / "latest" / "html" / f"{name}.html").read_text()
        assert f"id='cell-id={cell}'" in page
        assert "An Exception was encountered" not in page and "CheckFailed" not in page and "Traceback" not in page


def test_findings_name_the_exact_key_only_when_asked(
    tmp_path: Path, redis_factory: Callable[..., EmbeddedRedis]
) -> None:
    import uuid

    server = redis_factory()
    leak = f"session:{uuid.uuid4()}"
    client = sync_redis.Redis.from_url(server.url)
    client.set(
        leak,
        json.dumps(
            {"sessionId": leak[8:], "userId": "u", "labId": "l", "status": "active", "createdAt": 1, "expiresAt": 2}
        ),
    )  # no TTL: it never expires
    client.close()
    for flag, out in (("", tmp_path / "masked"), ("--show-session-ids", tmp_path / "named")):
        result = health(
            "--only", "ttl_inspection", "--out", str(out), *([flag] if flag else []), env={"REDIS_URL": server.url}
        )
        assert result.returncode == 1, result.stdout + result.stderr
        finding = next(c for c in summary_of(out)["checks"] if c["name"] == "ttl: no_ttl")
        written = "".join(p.read_text() for p in out.rglob("*") if p.suffix in (".json", ".html", ".xml", ".ipynb"))
        if flag:
            assert finding["evidence"].endswith(f": {leak}") and leak in result.stdout
            assert "names whole session ids" in (out / "latest" / "report.html").read_text()
        else:
            assert finding["evidence"].endswith(f": {leak[:16]}~")
            assert leak not in written and leak not in result.stdout


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
    admin.execute_command(
        "ACL",
        "SETUSER",
        "reader",
        "on",
        ">reader-pw-1234",
        "~*",
        "&*",
        "+@read",
        "+@connection",
        "+info",
        "+scan",
        "+acl|whoami",
        "-@write",
    )
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
    for write_step in [
        ("session_lifecycle", "lifecycle"),
        ("session_lifecycle", "visibility lag"),
        ("websocket_probe", "valid session"),
    ]:
        assert checks[write_step] == "SKIP", write_step
    assert checks[("connection_check", "auth")] == "PASS"
    assert checks[("ttl_inspection", "scan")] == "PASS"
    denied = [e for e in admin.acl_log(count=1000) if e.get("username") == "reader"]
    assert not {str(e.get("object")).lower() for e in denied} & WRITE_COMMANDS
    stats = admin.info("commandstats")
    assert not {name.removeprefix("cmdstat_") for name in stats} & WRITE_COMMANDS, sorted(stats)
    admin.close()


def test_papermill_runs_a_notebook_with_parameters(
    tmp_path: Path, embedded_redis: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from labsession.checks import REPORT_MIME

    monkeypatch.setenv("MY_STORE_URL", embedded_redis.url)  # the kernel inherits it
    notebook = str(DEFAULT_NOTEBOOKS[0].file)
    output = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        notebook,
        str(output),
        kernel_name="python3",
        progress_bar=False,
        parameters={"redis_url_env": "MY_STORE_URL", "embedded": False, "ping_samples": 5},
    )
    executed = nbformat.read(str(output), as_version=4)
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "MY_STORE_URL" in injected.source and embedded_redis.url not in injected.source
    reports = [
        o["data"][REPORT_MIME]
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.outputs
        if REPORT_MIME in o.get("data", {})
    ]
    assert len(reports) == 1 and reports[0]["verdict"] == "PASS"
    assert next(c for c in reports[0]["checks"] if c["name"] == "ping latency")["data"]["n"] == 5
    with pytest.raises(PapermillExecutionError) as caught:
        papermill.execute_notebook(
            notebook,
            str(tmp_path / "bad.ipynb"),
            kernel_name="python3",
            progress_bar=False,
            parameters={"redis_url_env": "MY_STORE_URL", "timeout_seconds": "fast"},
        )
    assert caught.value.ename == "ConfigError" and "timeout_seconds" in caught.value.evalue


# -- the budget is a hard bound --------------------------------------------------------------

BUDGET = 8.0
#: ``labsession health`` may run this long past its budget, from process start to exit (seconds).
GRACE = 5.0
_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(path: Path, *cells: str, parameters: str = "") -> Path:
    """A notebook of code ``cells`` (after a tagged ``parameters`` cell when given)."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    if parameters:
        notebook.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    notebook.cells.extend(nbformat.v4.new_code_cell(source) for source in cells)
    notebook.metadata["kernelspec"] = _KERNELSPEC
    nbformat.write(notebook, str(path))
    return path


def sleeper(tmp_path: Path) -> Path:
    """Records its kernel's pid in ``pid_file``, then sleeps for ten minutes (cell 4 of 5 once parameterized)."""
    return write_notebook(
        tmp_path / "sleeper.ipynb",
        "import os, pathlib, time\npathlib.Path(pid_file).write_text(str(os.getpid()))",
        "time.sleep(600)",
        "print('never')",
        parameters='pid_file = ""',
    )


def quick(tmp_path: Path) -> Path:
    """Shows a one-check PASS report at once."""
    return write_notebook(
        tmp_path / "quick.ipynb",
        "from labsession.checks import Report, Status\nfrom labsession.notebook import show_report\n"
        "report = Report('quick')\nreport.check('answer', Status.PASS, 'right away')\nshow_report(report)",
    )


def processes_marked(mark: str) -> list[Any]:
    """Live processes (not zombies) whose environment holds ``LABSESSION_TEST_MARK=mark``: kernels inherit it."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("LABSESSION_TEST_MARK") == mark and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:  # gone, a zombie, or not ours to read
            continue
    return found


@pytest.fixture
def mark() -> Iterator[str]:
    """A unique environment marker; whatever still carries it afterwards is killed (the test has failed then)."""
    import uuid

    value = uuid.uuid4().hex
    yield value
    for process in processes_marked(value):
        process.kill()


def test_budget_is_a_hard_bound_and_leaves_no_kernel(tmp_path: Path, mark: str) -> None:
    import time

    out = tmp_path / "out"
    pid_file = tmp_path / "kernel.pid"
    register = (
        "import sys\n"
        "from labsession.runner.registry import HealthNotebook, register\n"
        "register(HealthNotebook('sleeper', sys.argv[1], {'pid_file': sys.argv[2]}))\n"
        "register(HealthNotebook('quick', sys.argv[3]))\n"
        "from labsession.cli import main\n"
        "raise SystemExit(main(sys.argv[4:]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_")}
    env.update(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", LABSESSION_TEST_MARK=mark)  # neither notebook uses it
    began = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            register,
            str(sleeper(tmp_path)),
            str(pid_file),
            str(quick(tmp_path)),
            "health",
            "--only",
            "sleeper",
            "--only",
            "quick",
            "--jobs",
            "2",
            "--budget",
            f"{BUDGET:g}",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=BUDGET + GRACE + 30,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - began
    left = processes_marked(mark)  # at once: nothing may be left to exit by itself later
    assert elapsed < BUDGET + GRACE, (elapsed, result.stdout, result.stderr)
    assert not left, [(p.pid, p.cmdline()) for p in left]
    assert pid_file.exists()  # the kernel did run the notebook up to its sleep
    assert result.returncode == 1, result.stdout + result.stderr
    message = f"did not finish within the budget of {BUDGET:g} s (it was on cell 4 of 5)"
    assert message in result.stdout and "exit 1" in result.stdout
    summary = summary_of(out)
    assert summary["verdict"] == "FAIL" and summary["exitCode"] == 1
    verdicts = {n["name"]: n["verdict"] for n in summary["notebooks"]}
    assert verdicts == {"sleeper": "FAIL", "quick": "PASS"}
    assert statuses(summary) == {("sleeper", "finished within the budget"): "FAIL", ("quick", "answer"): "PASS"}
    assert [c["evidence"] for c in summary["checks"] if c["notebook"] == "sleeper"] == [message]
    suites = {s.get("name"): s for s in ET.parse(out / "latest" / "junit.xml").getroot().findall("testsuite")}
    failure = suites["sleeper"].find("testcase/failure")
    assert failure is not None and failure.get("message") == message
    assert message in (out / "latest" / "report.html").read_text()
    assert [n["stoppedAtBudget"] for n in summary["notebooks"]] == [True, False]
    assert (out / "latest" / "notebooks" / "sleeper.ipynb").exists()  # saved as far as it ran, but not rendered
    assert (out / "latest" / "html" / "quick.html").exists()
    assert not (out / "latest" / "html" / "sleeper.html").exists()


def test_a_notebook_that_raises_a_non_check_error_is_an_error_verdict_and_exit_2(tmp_path: Path) -> None:
    # An ERROR (the notebook could not do its job) must not read as a FAIL (the target is faulty):
    # exit 2, not 1, and the notebook's verdict ERROR with the exception named.
    out = tmp_path / "out"
    broken = write_notebook(tmp_path / "broken.ipynb", "x = 1", "raise RuntimeError('the probe itself broke')")
    register = (
        "import sys\n"
        "from labsession.runner.registry import HealthNotebook, register\n"
        "register(HealthNotebook('broken', sys.argv[1]))\n"
        "register(HealthNotebook('quick', sys.argv[2]))\n"
        "from labsession.cli import main\n"
        "raise SystemExit(main(sys.argv[3:]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_")}
    env.update(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # neither notebook uses it
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            register,
            str(broken),
            str(quick(tmp_path)),
            "health",
            "--only",
            "broken",
            "--only",
            "quick",
            "--jobs",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "verdict: ERROR" in result.stdout and "exit 2)" in result.stdout, result.stdout
    assert "RuntimeError: the probe itself broke" in result.stdout
    summary = summary_of(out)
    assert summary["verdict"] == "ERROR" and summary["exitCode"] == 2
    assert {n["name"]: n["verdict"] for n in summary["notebooks"]} == {"broken": "ERROR", "quick": "PASS"}
    # A real error keeps papermill's banner and the traceback: that one is a crash.
    page = (out / "latest" / "html" / "broken.html").read_text()
    assert "An Exception was encountered" in page and "the probe itself broke" in page


def test_notebooks_still_waiting_at_the_budget_never_start(
    tmp_path: Path, mark: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    from labsession.runner.health import run_health
    from labsession.runner.registry import HealthNotebook

    monkeypatch.setenv("LABSESSION_TEST_MARK", mark)
    entries = [
        HealthNotebook("sleeper", str(sleeper(tmp_path)), {"pid_file": str(tmp_path / "kernel.pid")}),
        HealthNotebook("quick", str(quick(tmp_path))),
    ]
    budget = 6.0
    summary = run_health(
        entries, {}, tmp_path / "out", jobs=1, cell_timeout=120, budget=budget, target={"description": "none"}
    )
    assert summary.elapsed_seconds < budget + 3.0  # it waits 2 s for the killed notebook's thread at most
    kernel = int((tmp_path / "kernel.pid").read_text())
    assert kernel not in {p.pid for p in psutil.Process().children(recursive=True)}  # killed and reaped
    assert not processes_marked(mark)
    by_name = {o.name: o for o in summary.outcomes}
    assert by_name["sleeper"].error == "did not finish within the budget of 6 s (it was on cell 4 of 5)"
    assert by_name["quick"].error == "did not finish within the budget of 6 s (it never started: every worker was busy)"
    assert summary.verdict.value == "FAIL"


# -- unattended safety: signals, children, probe sessions --------------------------------------


def _registering(*notebooks: tuple[str, Path, dict[str, Any]]) -> list[str]:
    """``python -c`` argv that registers ``notebooks`` and runs ``labsession`` with the arguments after it."""
    script = (
        "import sys\nfrom labsession.runner.registry import HealthNotebook, register\n"
        f"for name, path, parameters in {[(n, str(p), k) for n, p, k in notebooks]!r}:\n"
        "    register(HealthNotebook(name, path, parameters))\n"
        "from labsession.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    )
    return [sys.executable, "-c", script]


def _wait_for(condition: Callable[[], object], what: str, within: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"waited {within:g} s for {what}"
        time.sleep(0.05)


def test_sigterm_stops_the_run_with_a_partial_report_and_verdict_error(tmp_path: Path, mark: str) -> None:
    import signal

    from labsession.runner.history import History

    out, store, pid_file = tmp_path / "out", tmp_path / "history.sqlite", tmp_path / "kernel.pid"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_")}
    env.update(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", LABSESSION_TEST_MARK=mark)
    argv = [
        *_registering(("sleeper", sleeper(tmp_path), {"pid_file": str(pid_file)}), ("quick", quick(tmp_path), {})),
        "health",
        "--only",
        "sleeper",
        "--only",
        "quick",
        "--jobs",
        "2",
        "--out",
        str(out),
        "--history",
        str(store),
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as run:
        _wait_for(lambda: pid_file.exists() and list(out.glob("*/html/quick.html")), "the sleeper to sleep")
        run.send_signal(signal.SIGTERM)
        stdout, stderr = run.communicate(timeout=30)  # bounds a hang; the run itself stops in a few seconds
    assert run.returncode == 2, stdout + stderr
    assert "stopped by SIGTERM: notebooks still running were stopped; the report is partial" in stdout
    assert not processes_marked(mark)  # the sleeping kernel went with it
    summary = summary_of(out)
    assert summary["verdict"] == "ERROR" and summary["stoppedBy"] == "SIGTERM" and summary["exitCode"] == 2
    assert statuses(summary) == {("sleeper", "finished"): "ERROR", ("quick", "answer"): "PASS"}
    assert [c["evidence"] for c in summary["checks"] if c["notebook"] == "sleeper"] == [
        "stopped by SIGTERM before it finished (it was on cell 4 of 5)"
    ]
    assert "ERROR — stopped by SIGTERM: partial report" in (out / "latest" / "report.html").read_text()
    with History(store, readonly=True) as history:
        (recorded,) = history.runs(5)
        assert recorded.verdict == "ERROR" and recorded.stopped_by == "SIGTERM"


def test_sigkill_leaves_no_redis_backend_or_kernel_behind(tmp_path: Path, mark: str) -> None:
    import signal

    pid_file = tmp_path / "kernel.pid"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_")}
    env.update(LABSESSION_TEST_MARK=mark)
    argv = [
        *_registering(("sleeper", sleeper(tmp_path), {"pid_file": str(pid_file)})),
        "health",
        "--embedded",
        "--only",
        "sleeper",
        "--no-history",
    ]
    import psutil

    def alive(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) as run:
        _wait_for(pid_file.exists, "the kernel to start")
        children = psutil.Process(run.pid).children(recursive=True)
        names = [" ".join(c.cmdline()[:4]) for c in children]
        assert sum("redis-server" in n for n in names) == 1, names  # all three kinds were running
        assert sum("labsession serve" in n for n in names) == 2 and any("ipykernel" in n for n in names), names
        run.send_signal(signal.SIGKILL)  # no cleanup runs at all
        run.wait(30)
    _wait_for(lambda: not any(alive(c) for c in children), "every child to die with its parent", within=15)
    assert not processes_marked(mark)


def test_probe_sessions_of_a_killed_read_write_run_expire_within_two_minutes(
    tmp_path: Path, redis_factory: Callable[..., EmbeddedRedis], two_backends: Callable[[str], list[str]], mark: str
) -> None:
    import signal

    server = redis_factory()
    backends = two_backends(server.url)
    client = sync_redis.Redis.from_url(server.url)

    def probe_keys() -> list[bytes]:
        return [k for k in client.scan_iter("session:*") if b'"labsession-probe"' in (client.get(k) or b"")]

    env = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_")}
    env.update(REDIS_URL=server.url, LABSESSION_TEST_MARK=mark)
    argv = [
        sys.executable,
        "-m",
        "labsession",
        "health",
        "--read-write",
        "--only",
        "session_lifecycle",
        "--only",
        "websocket_probe",
        "--no-history",
    ]
    for url in backends:
        argv += ["--backend-url", url]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) as run:
        _wait_for(probe_keys, "a probe session")
        run.send_signal(signal.SIGKILL)
        run.wait(30)
    _wait_for(lambda: not processes_marked(mark), "the kernels to die with their parent", within=15)
    left = probe_keys() + list(client.scan_iter("labsession:probe:*"))
    assert left  # killed halfway: something was left behind, and it must go by itself soon
    for key in left:
        assert 0 < client.ttl(key) <= 120, (key, client.ttl(key), client.get(key))
    client.close()
