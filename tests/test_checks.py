"""checks: the verdict of a report and the one exit-code rule every command shares."""

from __future__ import annotations

import pytest

from labsession.checks import (
    EXIT_COULD_NOT_RUN,
    EXIT_FAILED,
    EXIT_OK,
    TIMING_MARK,
    CheckFailed,
    CheckResult,
    Report,
    Status,
    exit_code,
    worst,
)


@pytest.mark.parametrize(
    ("verdict", "code"),
    [
        (Status.PASS, EXIT_OK),
        (Status.SKIP, EXIT_OK),
        (Status.WARN, EXIT_OK),
        (Status.FAIL, EXIT_FAILED),
        (Status.ERROR, EXIT_COULD_NOT_RUN),
    ],
)
def test_exit_codes_are_zero_one_two(verdict: Status, code: int) -> None:
    assert exit_code(verdict) == code
    assert (EXIT_OK, EXIT_FAILED, EXIT_COULD_NOT_RUN) == (0, 1, 2)


def test_a_skip_never_makes_a_passing_report_worse() -> None:
    report = Report("r")
    report.check("a", Status.PASS, "fine")
    report.check("b", Status.SKIP, "read-only")
    assert report.verdict is Status.PASS
    report.check("c", Status.WARN, "slow")
    assert report.verdict is Status.WARN
    assert worst([Status.WARN, Status.ERROR, Status.FAIL]) is Status.ERROR


ORDER = [Status.PASS, Status.WARN, Status.FAIL, Status.ERROR]  # SKIP ranks with PASS


def test_ranks_order_the_statuses_from_best_to_worst() -> None:
    assert [s.rank for s in Status] == [0, 0, 1, 2, 3]  # PASS, SKIP, WARN, FAIL, ERROR


@pytest.mark.parametrize("a", list(Status))
@pytest.mark.parametrize("b", list(Status))
def test_worst_of_two_is_the_later_in_the_order_whichever_comes_first(a: Status, b: Status) -> None:
    def place(s: Status) -> int:
        return ORDER.index(Status.PASS if s is Status.SKIP else s)

    expected = max(a, b, key=place)
    expected = Status.PASS if expected is Status.SKIP else expected
    assert worst([a, b]) is expected
    assert worst([b, a]) is expected
    assert worst(iter([a, Status.PASS, b])) is expected


def test_worst_of_nothing_or_of_skips_is_pass() -> None:
    assert worst([]) is Status.PASS
    assert worst([Status.SKIP]) is Status.PASS
    assert worst([Status.SKIP, Status.PASS, Status.SKIP]) is Status.PASS


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        ([], Status.PASS),
        ([Status.SKIP], Status.PASS),
        ([Status.PASS, Status.WARN, Status.PASS], Status.WARN),
        ([Status.ERROR, Status.FAIL], Status.ERROR),
        ([Status.FAIL, Status.ERROR, Status.WARN], Status.ERROR),
        ([Status.WARN, Status.FAIL, Status.SKIP], Status.FAIL),
    ],
)
def test_the_verdict_is_the_worst_status_and_sets_the_exit_code(statuses: list[Status], verdict: Status) -> None:
    report = Report("r")
    for i, status in enumerate(statuses):
        report.check(f"c{i}", status, "evidence")
    assert report.verdict is verdict
    assert report.to_dict()["verdict"] == verdict.value
    assert exit_code(report.verdict) == {Status.FAIL: 1, Status.ERROR: 2}.get(verdict, 0)


def test_a_timing_only_warn_is_shown_and_counted_but_never_decides_the_verdict() -> None:
    report = Report("r")
    report.check("a", Status.PASS, "fine")
    slow = report.add(CheckResult("ping", Status.WARN, "PING took 80 ms", timing="p99 above 50 ms"))
    assert report.verdict is Status.PASS
    assert report.counts()["WARN"] == 1
    assert slow.evidence == "PING took 80 ms [timing: p99 above 50 ms]"
    report.check("b", Status.WARN, "a real warning")
    assert report.verdict is Status.WARN
    report.add(CheckResult("late", Status.WARN, "late", timing="1 s"))
    report.check("c", Status.FAIL, "broken")
    assert report.verdict is Status.FAIL


def test_the_timing_mark_is_added_once() -> None:
    marked = CheckResult("x", Status.WARN, f"slow {TIMING_MARK}5 ms]", timing="5 ms")
    assert marked.evidence == "slow [timing: 5 ms]"
    plain = CheckResult("x", "WARN", "slow")
    assert plain.evidence == "slow" and plain.status is Status.WARN and not plain.timing


@pytest.mark.parametrize("status", [Status.PASS, Status.SKIP, Status.FAIL, Status.ERROR])
def test_only_a_warn_can_be_timing_only(status: Status) -> None:
    with pytest.raises(ValueError, match=f"only a WARN can be timing-only, not a {status.value}"):
        CheckResult("x", status, "e", timing="5 ms")


@pytest.mark.parametrize(
    ("status", "raises"),
    [
        (Status.PASS, False),
        (Status.SKIP, False),
        (Status.WARN, False),
        (Status.FAIL, True),
        (Status.ERROR, True),
    ],
)
def test_raise_for_failures_raises_for_fail_and_error_only(status: Status, raises: bool) -> None:
    report = Report("r")
    report.check("a", Status.PASS, "fine")
    report.check("b", status, "what happened")
    if raises:
        with pytest.raises(CheckFailed, match=f"r: {status.value} \\(b: {status.value} - what happened\\)"):
            report.raise_for_failures()
    else:
        report.raise_for_failures()
