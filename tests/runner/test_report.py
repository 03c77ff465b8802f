"""The report's own rules: one root cause, human-readable times (pure functions over real run results)."""

from __future__ import annotations

from typing import Any

from labsession.checks import Report, Status
from labsession.runner.report import find_root_cause, human_duration, human_time
from labsession.runner.results import NotebookOutcome, RunSummary


def outcome(
    name: str, *checks: tuple[str, Status, str, dict[str, Any]], facts: dict[str, Any] | None = None
) -> NotebookOutcome:
    report = Report(name, facts=facts or {})
    for check_name, status, evidence, data in checks:
        report.check(check_name, status, evidence, **data)
    return NotebookOutcome(name, f"{name}.ipynb", report.verdict, [report.to_dict()])


def test_many_checks_failing_for_one_reason_make_one_root_cause() -> None:
    refused = "Redis at db:6379 is unavailable (CONNECTION_REFUSED): nothing listens"
    summary = RunSummary(
        {},
        [
            outcome(
                "a",
                ("tcp", Status.FAIL, "TCP connect failed (CONNECTION_REFUSED)", {"cause": "CONNECTION_REFUSED"}),
                ("auth", Status.FAIL, refused, {"cause": "CONNECTION_REFUSED"}),
            ),
            outcome(
                "b",
                (
                    "cause",
                    Status.FAIL,
                    "STORE_UNREACHABLE (CONNECTION_REFUSED: nothing listens)",
                    {"cause": "STORE_UNREACHABLE"},
                ),
                facts={"cause": "STORE_UNREACHABLE", "remedy": "start Redis"},
            ),
            outcome("c", ("tls", Status.FAIL, "certificate expired", {})),
        ],
        "2026-01-01T00:00:00+00:00",
    )
    cause = find_root_cause(summary)
    assert cause is not None and cause.code == "CONNECTION_REFUSED"
    assert cause.checks == (("a", "tcp"), ("a", "auth"), ("b", "cause"))
    assert cause.notebooks == ["a", "b"] and "check the port" in cause.remedy
    assert cause.evidence == "TCP connect failed (CONNECTION_REFUSED)"
    assert not cause.explains({"notebook": "c", "name": "tls"})


def test_a_runbook_cause_shared_by_two_checks_takes_the_runbook_remedy() -> None:
    summary = RunSummary(
        {},
        [
            outcome(
                "x",
                ("cause", Status.FAIL, "SESSION_EVICTED: gone", {"cause": "SESSION_EVICTED"}),
                facts={"cause": "SESSION_EVICTED", "remedy": "use noeviction"},
            ),
            outcome("y", ("eviction", Status.FAIL, "evicted", {"cause": "SESSION_EVICTED"})),
        ],
        "",
    )
    cause = find_root_cause(summary)
    assert cause is not None and cause.code == "SESSION_EVICTED" and cause.remedy == "use noeviction"


def test_one_failure_or_none_names_no_root_cause() -> None:
    one = RunSummary(
        {}, [outcome("a", ("tcp", Status.FAIL, "x (CONNECTION_REFUSED)", {}), ("dns", Status.PASS, "ok", {}))], ""
    )
    assert find_root_cause(one) is None
    healthy = RunSummary({}, [outcome("a", ("cause", Status.PASS, "OK: fine", {"cause": "OK"}))], "")
    assert find_root_cause(healthy) is None


def test_times_read_as_people_say_them() -> None:
    assert human_duration(0.42) == "0.4 s" and human_duration(12.34) == "12.3 s"
    assert human_duration(245) == "4 min 5 s" and human_duration(120) == "2 min"
    assert human_duration(7380) == "2 h 3 min"
    assert human_time(0) == "1970-01-01 00:00:00 UTC"
