"""Monitoring by its conventions: the Prometheus textfile (checked by promtool), the Nagios plugin line and
exit codes, and alerts POSTed to a real local HTTP receiver when the verdict changes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from labsession.embedded.redis_server import free_port

from support import CANARY

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(400)]

ONE = ["--only", "connection_check"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_") and k != "REDIS_URL"}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "labsession", *args], capture_output=True, text=True, timeout=280, env=clean, check=False
    )


def registered(*notebooks: tuple[str, Path], args: list[str]) -> subprocess.CompletedProcess[str]:
    """``labsession health`` with these notebooks registered (and only these run)."""
    script = (
        "import sys\nfrom labsession.runner.registry import HealthNotebook, register\n"
        f"for name, path in {[(n, str(p)) for n, p in notebooks]!r}:\n"
        "    register(HealthNotebook(name, path))\n"
        "from labsession.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    )
    only = [a for name, _ in notebooks for a in ("--only", name)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_")}
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # these notebooks do not use it
    return subprocess.run(
        [sys.executable, "-c", script, "health", *only, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def reporting(path: Path, *checks: str) -> Path:
    """A notebook that shows one report with ``checks`` (Python expressions adding to ``report``)."""
    import nbformat

    source = (
        "from labsession.checks import CheckResult, Report, Status\nfrom labsession.notebook import show_report\n"
        "report = Report('staged')\n" + "\n".join(checks) + "\nshow_report(report)"
    )
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, str(path))
    return path


def unbalanced(page: str) -> list[str]:
    """Block tags of ``page`` left open or closed out of order (empty for well-formed markup)."""
    from html.parser import HTMLParser

    watched = ("table", "tr", "td", "div", "p", "h2", "pre")
    opened: list[str] = []
    wrong: list[str] = []

    class Balance(HTMLParser):
        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag in watched:
                opened.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if tag in watched and (not opened or opened.pop() != tag):
                wrong.append(f"</{tag}>")

    Balance().feed(page)
    return wrong + opened


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` → value of every sample line; fails on a sample with a timestamp."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        parts = line.rsplit(" ", 1)
        assert len(parts) == 2 and " " not in parts[0].split("}")[-1], f"a timestamp or a bad line: {line!r}"
        out[parts[0]] = float(parts[1])
    return out


def test_passing_run_writes_a_valid_textfile_and_one_ok_line(tmp_path: Path, promtool: Path) -> None:
    prom = tmp_path / "textfile" / "labsession.prom"
    result = cli(
        "health",
        "--embedded",
        *ONE,
        "--only",
        "ttl_inspection",
        "--prometheus",
        str(prom),
        "--format",
        "nagios",
        "--no-history",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert re.match(
        r"LABSESSION OK - all \d+ checks passed \(1 skipped\) \[embedded\] \| duration=[\d.]+s;;;0 "
        r"checks=\d+;;;0 failed=0;;;0 warnings=0;;;0 ping_p50=[\d.]+s;;;0 ping_p99=[\d.]+s;;;0 ",
        lines[0],
    ), lines[0]
    assert "active_sessions=" in lines[0] and "evicted_keys=0c;;;0" in lines[0]
    checked = subprocess.run(
        [str(promtool), "check", "metrics"],
        input=prom.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = prom.read_text()
    values = samples(text)
    assert all(name.startswith("labsession_") for name in values)
    assert values["labsession_health_success"] == 1 and values['labsession_health_verdict{verdict="PASS"}'] == 1
    assert 0 < values["labsession_health_run_duration_seconds"] < 300
    assert 0 < values["labsession_redis_ping_p99_seconds"] < 1  # seconds, not milliseconds
    assert values["labsession_redis_evicted_keys_total"] == 0 and values["labsession_sessions_active"] >= 1
    assert values['labsession_ttl_anomalies{kind="no_ttl"}'] == 0
    state = {
        k: v
        for k, v in values.items()
        if k.startswith('labsession_health_check_status{notebook="connection_check",check="tcp"')
    }
    assert (
        len(state) == 5
        and state['labsession_health_check_status{notebook="connection_check",check="tcp",status="PASS"}'] == 1
        and sum(state.values()) == 1
    )
    assert "# TYPE labsession_redis_evicted_keys_total counter" in text
    assert sorted(p.name for p in prom.parent.iterdir()) == ["labsession.prom"]  # no temporary file left
    before = prom.stat().st_ino

    down = cli(
        "health",
        *ONE,
        "--prometheus",
        str(prom),
        "--format",
        "nagios",
        "--no-history",
        "--timeout",
        "1",
        env={"REDIS_URL": f"redis://default:{CANARY}@127.0.0.1:{free_port()}/0"},
    )
    assert down.returncode == 2, down.stdout + down.stderr  # CRITICAL
    assert down.stdout.startswith("LABSESSION CRITICAL - 2 checks failed, root cause CONNECTION_REFUSED: ")
    assert len(down.stdout.splitlines()) == 1
    assert prom.stat().st_ino != before  # replaced by a rename, never rewritten in place
    values = samples(prom.read_text())
    assert values["labsession_health_success"] == 0 and values['labsession_health_verdict{verdict="FAIL"}'] == 1
    assert "labsession_redis_ping_p99_seconds" not in values  # not measured: no sample, not a zero
    assert CANARY not in prom.read_text() + down.stdout + down.stderr
    assert (
        subprocess.run(
            [str(promtool), "check", "metrics"],
            input=prom.read_text(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).returncode
        == 0
    )

    unknown = cli("health", *ONE, "--prometheus", str(prom), "--format", "nagios", "--no-history")
    assert unknown.returncode == 3 and unknown.stdout.startswith("LABSESSION UNKNOWN - REDIS_URL is not set")
    assert len(unknown.stdout.splitlines()) == 1


def test_nagios_codes_follow_the_verdict(tmp_path: Path) -> None:
    warn = reporting(tmp_path / "warn.ipynb", "report.check('policy', Status.WARN, 'may evict sessions')")
    slow = reporting(
        tmp_path / "slow.ipynb", "report.add(CheckResult('ping', Status.WARN, 'p99 80 ms', timing='p99 above 50 ms'))"
    )
    broken = reporting(tmp_path / "broken.ipynb", "report.check('probe', Status.ERROR, 'the probe broke')")
    warned = registered(("warn", warn), args=["--format", "nagios", "--no-history"])
    assert warned.returncode == 1, warned.stdout + warned.stderr
    assert warned.stdout.startswith("LABSESSION WARNING - 1 warnings (warn: policy) [127.0.0.1:")
    timing = registered(("slow", slow), args=["--format", "nagios", "--no-history"])
    assert timing.returncode == 0 and timing.stdout.startswith("LABSESSION OK - all 1 checks passed")
    errored = registered(("broken", broken), ("warn", warn), args=["--format", "nagios", "--no-history"])
    assert errored.returncode == 3 and errored.stdout.startswith("LABSESSION UNKNOWN - 1 checks failed")
    text = registered(("broken", broken), args=["--no-history"])
    assert text.returncode == 2  # the one exit-code rule for everything but Nagios


def test_a_command_line_that_does_not_parse_is_unknown_to_nagios_and_could_not_run_otherwise() -> None:
    # A typo in a monitoring configuration is not an outage: 3 UNKNOWN with one line, not argparse's 2 (CRITICAL).
    cases = {
        "labsession health: error: argument --budget": ["--format", "nagios", "--budget", "-5"],
        "labsession: error: unrecognized arguments: --no-such-option": ["--format=nagios", "--no-such-option"],
    }
    for said, argv in cases.items():
        typo = cli("health", *argv)
        assert typo.returncode == 3, typo.stdout + typo.stderr
        assert typo.stdout.startswith(f"LABSESSION UNKNOWN - {said}") and len(typo.stdout.splitlines()) == 1
        assert "usage: labsession" in typo.stderr
    plain = cli("health", "--budget", "-5")
    assert plain.returncode == 2 and plain.stdout == ""
    assert "labsession health: error: argument --budget" in plain.stderr


def test_masking_never_breaks_the_formats_it_writes(tmp_path: Path) -> None:
    # "AUTH <word>" is masked wherever it appears; done on a finished page, JSON text or plugin line it
    # would eat the markup, the quote and comma, or the "|" after it.
    authy = reporting(tmp_path / "authy.ipynb", "report.check('auth', Status.FAIL, 'server said AUTH refused')")
    out = tmp_path / "out"
    done = registered(("authy", authy), args=["--format", "nagios", "--no-history", "--out", str(out)])
    assert done.returncode == 2 and " | duration=" in done.stdout and "refused" not in done.stdout
    summary = json.loads((out / "latest" / "summary.json").read_text())
    assert summary["checks"][0]["evidence"].startswith("server said AUTH ****")
    for page in (out / "latest" / "report.html", out / "latest" / "html" / "authy.html"):
        assert unbalanced(page.read_text()) == [], page.name
        assert "refused" not in page.read_text()


class Receiver:
    """A real HTTP server on 127.0.0.1 (a free port) recording every POST; answers come from ``codes``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.codes: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(
                    {
                        "path": self.path,
                        "type": self.headers.get("Content-Type"),
                        "raw": body.decode(),
                        "json": json.loads(body),
                    }
                )
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/SECRET-TOKEN-4711"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.close()


def test_alerts_on_change_only_and_retry_a_bounded_number_of_times(tmp_path: Path, receiver: Receiver) -> None:
    store = tmp_path / "history.sqlite"
    down_env = {"REDIS_URL": f"redis://default:{CANARY}@127.0.0.1:{free_port()}/0"}
    common = [*ONE, "--history", str(store)]
    first = cli("health", "--embedded", *common, "--notify-url", receiver.url)
    assert first.returncode == 0 and receiver.requests == []  # nothing changed: no alert

    nowhere = f"http://127.0.0.1:{free_port()}/hooks/SECRET-TOKEN-4711"
    lost = cli("health", *common, "--timeout", "1", "--notify-url", nowhere, env=down_env)
    assert lost.returncode == 1  # the run's verdict, whatever became of the alert
    assert (
        f"could not deliver the PASS → FAIL alert to http://127.0.0.1:{nowhere.split(':')[2].split('/')[0]}/… "
        "(ConnectionRefusedError after 3 attempts); the next run tries again"
    ) in lost.stderr, lost.stderr

    receiver.codes = [503]  # the receiver is briefly unwell: the second attempt is delivered
    fired = cli("health", *common, "--timeout", "1", "--notify-url", receiver.url, env=down_env)
    assert fired.returncode == 1 and fired.stderr == "", fired.stderr
    assert len(receiver.requests) == 2 and receiver.requests[0]["raw"] == receiver.requests[1]["raw"]
    event = receiver.requests[-1]["json"]
    assert receiver.requests[-1]["type"] == "application/json" and receiver.requests[-1]["path"].endswith("4711")
    assert event["event"] == "verdict_changed" and event["state"] == "firing"
    assert event["verdict"] == "FAIL" and event["previousVerdict"] == "PASS"
    assert event["rootCause"]["code"] == "CONNECTION_REFUSED" and event["endpoint"].startswith("127.0.0.1:")
    assert {c["check"] for c in event["checks"]} == {"tcp", "auth"}

    again = cli("health", *common, "--timeout", "1", "--notify-url", receiver.url, env=down_env)
    assert again.returncode == 1 and len(receiver.requests) == 2  # still FAIL: no new alert

    # The URL from a variable (a webhook token stays out of the process list) is the same alert.
    resolved = cli("health", "--embedded", *common, "--notify-url-env", "HOOK_URL", env={"HOOK_URL": receiver.url})
    assert resolved.returncode == 0 and len(receiver.requests) == 3
    event = receiver.requests[-1]["json"]
    assert event["state"] == "resolved" and event["verdict"] == "PASS" and event["previousVerdict"] == "FAIL"
    assert event["checks"] == [] and event["rootCause"] is None

    everything = "".join(r["raw"] for r in receiver.requests)
    for result in (first, lost, fired, again, resolved):
        everything += result.stdout + result.stderr
    assert CANARY not in everything and "SECRET-TOKEN" not in everything.replace(receiver.url, "")

    refused = cli("health", "--embedded", *ONE, "--no-history", "--notify-url", receiver.url)
    assert refused.returncode == 2 and "--notify-url needs the history" in refused.stderr
    unset = cli("health", "--embedded", *ONE, "--notify-url-env", "HOOK_URL", "--format", "nagios")
    assert unset.returncode == 3
    assert (
        unset.stdout
        == "LABSESSION UNKNOWN - --notify-url-env names HOOK_URL, which is not set; export the webhook URL in it\n"
    )
