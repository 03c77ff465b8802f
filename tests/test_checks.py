"""checks: the verdict of a report and the one exit-code rule every command shares."""

from __future__ import annotations

import pytest

from labsession.checks import EXIT_COULD_NOT_RUN, EXIT_FAILED, EXIT_OK, Report, Status, exit_code, worst


@pytest.mark.parametrize(("verdict", "code"), [
    (Status.PASS, EXIT_OK), (Status.SKIP, EXIT_OK), (Status.WARN, EXIT_OK),
    (Status.FAIL, EXIT_FAILED), (Status.ERROR, EXIT_COULD_NOT_RUN),
])
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
