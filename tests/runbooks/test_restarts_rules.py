"""The ``instances`` step of the terminal-disconnects runbook on uptimes already read
(:func:`judge_restarts`), without a backend (tests/runbooks/test_terminal_disconnects.py restarts
a real one mid-connection). Times are seconds on the ``time.monotonic()`` clock."""

from __future__ import annotations

import pytest

from labsession.checks import Status
from labsession.runbooks.restarts import START_TOLERANCE_SECONDS, UptimeSample, judge_restarts

BEGAN = 100.0


def up(instance: str | None, at: float, uptime: float | None, url: str = "http://a") -> UptimeSample:
    return UptimeSample(url, at, instance, uptime)


def failed(error: str, at: float = 101.0) -> UptimeSample:
    return UptimeSample("http://a", at, None, None, error)


def test_the_start_is_the_time_of_the_question_minus_the_uptime() -> None:
    assert up("a", 105.0, 2.5).started_at == 102.5
    assert up("a", 105.0, None).started_at is None


@pytest.mark.parametrize(
    ("uptime", "restarted"),
    [(0.5, True), (0.75, False), (1.0, False), (4.0, False)],
    ids=["0.5s-after-the-start", "at-the-tolerance", "at-the-start", "before-the-start"],
)
def test_an_instance_started_past_the_tolerance_after_the_run_began_is_a_restart(
    uptime: float, restarted: bool
) -> None:
    # answered at 101.0: started at 100.5, 100.25 (the tolerance exactly), 100.0 or 97.0
    assert START_TOLERANCE_SECONDS == 0.25
    check, found = judge_restarts([up("a", 99.0, 10.0)], [up("a", 101.0, uptime)], BEGAN)
    assert found is restarted
    assert check.status is (Status.FAIL if restarted else Status.PASS), check


def test_a_restart_names_the_new_instance_its_uptime_and_the_instances_before() -> None:
    before = [up("a", 99.0, 10.0), up("b", 99.0, 20.0)]
    after = [up("c", 107.0, 3.46), up("a", 107.0, 18.0)]
    check, found = judge_restarts(before, after, BEGAN)
    assert found and check.name == "instances"
    assert check.evidence == "an instance started during the run: c (up 3.5 s); instances before: a, b"
    assert check.data == {"before": ["a", "b"], "after": ["a", "c"], "uptimes": {"a": 18.0, "b": 20.0, "c": 3.5}}
    # an instance that says no id is '?'; no instance answered before the run: 'none'
    check, found = judge_restarts([failed("refused", 99.0)], [up(None, 107.0, 2.0)], BEGAN)
    assert found and check.evidence == "an instance started during the run: ? (up 2 s); instances before: none"
    # an instance that answers in its first instant has an uptime of 0, not an unknown one
    check, found = judge_restarts([up("a", 99.0, 10.0)], [up("b", 101.0, 0.0)], BEGAN)
    assert found and check.evidence == "an instance started during the run: b (up 0 s); instances before: a"


def test_nothing_answered_is_a_warning_with_the_first_error() -> None:
    check, found = judge_restarts([failed("connection refused")], [failed("timed out")], BEGAN)
    assert (check.status, found) == (Status.WARN, False)
    assert check.evidence == "no instance answered its diagnostics route: connection refused"
    check, found = judge_restarts([], [], BEGAN)
    assert (check.status, found) == (Status.WARN, False)
    assert check.evidence == "no instance answered its diagnostics route: no backend URL"


def test_instances_that_report_no_uptime_are_a_skip_saying_where_to_look() -> None:
    check, found = judge_restarts([up("a", 99.0, None)], [up("a", 101.0, None)], BEGAN)
    assert (check.status, found) == (Status.SKIP, False)
    assert "App Runner" in check.evidence
    # one instance with an uptime is enough to judge
    check, found = judge_restarts([up("a", 99.0, None)], [up("b", 101.0, 50.0)], BEGAN)
    assert (check.status, found) == (Status.PASS, False)


def test_answers_failing_after_the_run_are_a_warning_not_a_restart() -> None:
    check, found = judge_restarts([up("a", 99.0, 10.0)], [failed("timed out"), failed("reset")], BEGAN)
    assert (check.status, found) == (Status.WARN, False)
    assert check.evidence == "no restart seen (a (up 10 s)), but 2 answer(s) after the run failed: timed out"
    # a failure before the run is not one after it
    check, found = judge_restarts([failed("timed out", 99.0), up("a", 99.0, 10.0)], [up("a", 101.0, 12.0)], BEGAN)
    assert (check.status, found) == (Status.PASS, False)
    assert check.evidence == "no instance started during the run (a)"
