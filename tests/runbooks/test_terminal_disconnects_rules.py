"""The terminal-disconnects runbook's judgements on what was already seen: the session, the two
held connections, their pings and closes, and the one cause (tests/runbooks/test_terminal_disconnects.py
stages each cause for real through backends and proxies). Times are seconds, round trips ms."""

from __future__ import annotations

import pytest

from labsession.checks import Report, Status
from labsession.errors import ConfigError
from labsession.probes.websocket import HeldConnection, PingSample
from labsession.runbooks.terminal_disconnects import (
    REMEDIES,
    TerminalDisconnectsCause,
    TerminalDisconnectsInputs,
    _finish,
    judge_closes,
    judge_connect,
    judge_idle,
    judge_pings,
    judge_session,
)
from labsession.sessions.model import LabSession
from labsession.sessions.service import ValidationReason, ValidationResult

C = TerminalDisconnectsCause
R = ValidationReason
NOW = 1_764_000_000_000
SID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
#: A 20 s run (the longer of 10 s pinging and 20 s idle) with a 30 s margin: the session must outlive 50 s.
INPUTS = TerminalDisconnectsInputs(
    session_id=SID, backend_urls=("http://b",), ping_seconds=10, idle_seconds=20, expiry_margin_seconds=30
)


def verdict(
    reason: R = R.OK, *, expires_in_ms: int = 600_000, session: bool = True, detail: str = ""
) -> ValidationResult:
    record = LabSession.from_dict(
        {"sessionId": SID, "status": "active", "createdAt": NOW - 60_000, "expiresAt": NOW + expires_in_ms}
    )
    return ValidationResult(SID, reason, record if session else None, detail=detail)


def ping(at_s: float, protocol_ms: float | None, app_ms: float | None) -> PingSample:
    return PingSample(at_s, protocol_ms, app_ms)


def conn(label: str = "pinging", **kw: object) -> HeldConnection:
    kw.setdefault("connected", True)
    return HeldConnection(label, **kw)  # type: ignore[arg-type]


# -- inputs and the session step -------------------------------------------------------------------


def test_the_run_lasts_the_longer_hold_and_the_bounds_are_inclusive() -> None:
    assert INPUTS.run_seconds == 20
    assert TerminalDisconnectsInputs(ping_seconds=30, idle_seconds=20).run_seconds == 30
    TerminalDisconnectsInputs(ping_seconds=0.5, idle_seconds=900.0, instance_samples=20)  # the edges are allowed
    with pytest.raises(ConfigError, match="'ping_seconds'"):
        TerminalDisconnectsInputs(ping_seconds=0.4)
    with pytest.raises(ConfigError, match="'idle_seconds'"):
        TerminalDisconnectsInputs(idle_seconds=900.5)


def test_a_session_that_is_not_valid_is_named_with_its_reason() -> None:
    check, cause = judge_session(verdict(R.ENDED, detail="status destroyed"), INPUTS, NOW)
    assert (check.name, check.status, cause) == ("session", Status.FAIL, C.SESSION_NOT_VALID)
    assert check.evidence.endswith("is not valid (ended: status destroyed)") and check.data == {"reason": "ended"}
    check, cause = judge_session(verdict(R.NOT_FOUND, session=False), INPUTS, NOW)
    assert cause is C.SESSION_NOT_VALID and check.evidence.endswith("is not valid (not_found)")
    # a verdict without its session cannot be judged for expiry: not valid either
    assert judge_session(verdict(R.OK, session=False), INPUTS, NOW)[1] is C.SESSION_NOT_VALID


@pytest.mark.parametrize(
    ("left_ms", "cause"), [(50_000, C.SESSION_EXPIRING), (51_000, None), (10_000, C.SESSION_EXPIRING)]
)
def test_a_session_expiring_within_the_run_and_the_margin_is_named(left_ms: int, cause: C | None) -> None:
    check, found = judge_session(verdict(expires_in_ms=left_ms), INPUTS, NOW)
    assert found is cause and check.status is (Status.FAIL if cause else Status.PASS), check
    assert check.data == {"reason": "ok", "expires_in_s": left_ms / 1000, "window_s": 50}
    if cause:
        assert f"expires in {left_ms // 1000} s, within the 20 s run and 30 s margin" in check.evidence
    else:
        assert "outlives the 20 s run by more than the 30 s margin" in check.evidence


def test_the_time_left_is_counted_to_the_tenth_from_now() -> None:
    # 50.5 s left against a 50 s window: outlives it (whole seconds would say 50, within it)
    check, found = judge_session(verdict(expires_in_ms=50_540), INPUTS, NOW)
    assert found is None and check.data["expires_in_s"] == 50.5, check
    # validated a moment before and expired since: expiring, not a session with years left
    check, found = judge_session(verdict(expires_in_ms=-1_000), INPUTS, NOW)
    assert found is C.SESSION_EXPIRING and "expires in -1 s" in check.evidence, check


# -- connect ----------------------------------------------------------------------------------------


def test_two_connections_that_said_connected_pass_naming_their_instances() -> None:
    check, cause = judge_connect(conn(instance_id="i-2"), conn("idle", instance_id="i-1"))
    assert (check.status, cause) == (Status.PASS, None)
    assert check.evidence == "2 connection(s) connected (instance i-1, i-2)"
    check, cause = judge_connect(conn(), None)
    assert cause is None and check.evidence == "1 connection(s) connected (instance ?)"


def test_a_connection_that_could_not_open_is_connect_failed() -> None:
    check, cause = judge_connect(conn(), conn("idle", connected=False, error="connection refused"))
    assert (check.status, cause) == (Status.FAIL, C.CONNECT_FAILED)
    assert check.evidence == "idle: connection refused"
    both = judge_connect(conn(connected=False, error="timed out"), conn("idle", connected=False, error="refused"))
    assert both[0].evidence == "pinging: timed out"
    first = conn(connected=False, first_code="SESSION_NOT_FOUND", closed_at_s=0.1, close_code=4000)
    second = conn("idle", connected=False, closed_at_s=0.2, close_code=1011)
    check, cause = judge_connect(first, second)
    assert cause is C.SESSION_NOT_VALID and check.evidence.startswith("pinging: refused with SESSION_NOT_FOUND")


@pytest.mark.parametrize(
    ("first_code", "close_code", "cause"),
    [
        ("SESSION_NOT_FOUND", 1000, C.SESSION_NOT_VALID),
        (None, 4000, C.SESSION_NOT_VALID),
        (None, 1011, C.CONNECT_FAILED),
        (None, None, C.CONNECT_FAILED),
    ],
)
def test_a_connection_refused_after_opening_is_named_by_its_first_message_or_close(
    first_code: str | None, close_code: int | None, cause: C
) -> None:
    refused = conn(connected=False, first_code=first_code, closed_at_s=0.1, close_code=close_code)
    check, found = judge_connect(refused, conn("idle"))
    assert (check.status, found) == (Status.FAIL, cause)
    assert check.evidence.startswith(f"pinging: refused with {first_code or 'an error'}, then ")


# -- pings ------------------------------------------------------------------------------------------


def test_no_ping_sent_is_a_skip() -> None:
    check, cause = judge_pings(conn(), INPUTS)
    assert (check.status, cause) == (Status.SKIP, None)


def test_an_unanswered_ping_is_named_before_the_latency() -> None:
    pings = [ping(0.0, 2000.0, 2000.0), ping(5.0, None, 3.0), ping(10.0, 2.0, 2.0)]
    check, cause = judge_pings(conn(pings=pings), INPUTS)
    assert (check.status, cause) == (Status.FAIL, C.PINGS_UNANSWERED)
    assert check.evidence == "1 of 3 pings got no answer within 5 s (round trip p50 3.0 ms, p99 2000.0 ms)"
    assert check.data["unanswered"] == 1 and check.data["pings"] == 3
    assert check.data["samples"][1] == {"at_s": 5.0, "protocol_ms": None, "message_ms": 3.0}
    check, cause = judge_pings(conn(pings=[ping(0.0, None, None)]), INPUTS)
    assert cause is C.PINGS_UNANSWERED and "(no round trip measured)" in check.evidence


@pytest.mark.parametrize(
    ("rtts", "status", "cause", "p50"),
    [
        ((1001.0, 1001.0, 5.0), Status.FAIL, C.HIGH_PING_LATENCY, 1001.0),  # the median above the 1000 ms threshold
        ((1000.0, 1000.0, 5.0), Status.PASS, None, 1000.0),  # median and tail at it
        ((5.0, 5.0, 1001.0), Status.WARN, None, 5.0),  # only the tail above it
    ],
)
def test_round_trips_are_judged_by_the_median_then_the_tail(
    rtts: tuple[float, ...], status: Status, cause: C | None, p50: float
) -> None:
    pings = [ping(float(i), ms, ms) for i, ms in enumerate(rtts)]
    check, found = judge_pings(conn(pings=pings), INPUTS)
    assert (check.status, found) == (status, cause), check
    assert (check.data["p50_ms"], check.data["p99_ms"]) == (p50, max(rtts))
    if status is Status.PASS:
        assert check.evidence == f"every ping answered within 5 s (round trip p50 {p50:.1f} ms, p99 {max(rtts):.1f} ms)"


def test_the_tail_is_the_99th_percentile_by_nearest_rank() -> None:
    # 100 round trips, 1 to 100 ms: the 99th is 99 ms (the 98th would be 98, the 100th 100)
    pings = [ping(float(i), float(2 * i + 1), float(2 * i + 2)) for i in range(50)]
    check, cause = judge_pings(conn(pings=pings), TerminalDisconnectsInputs(high_latency_ms=98.5))
    assert (check.status, cause) == (Status.WARN, None)
    assert check.data["p50_ms"] == 50.0 and check.data["p99_ms"] == 99.0, check.data
    assert "round trip p50 50.0 ms, p99 99.0 ms" in check.evidence, check.evidence


def test_round_trips_of_zero_ms_are_shown_as_zero() -> None:
    check, _ = judge_pings(conn(pings=[ping(0.0, 0.0, 0.0)]), INPUTS)
    assert (check.data["p50_ms"], check.data["p99_ms"]) == (0.0, 0.0)
    assert check.evidence == "every ping answered within 5 s (round trip p50 0.0 ms, p99 0.0 ms)"


def test_each_ping_is_shown_at_its_time_to_the_hundredth_of_a_second() -> None:
    check, _ = judge_pings(conn(pings=[ping(1.2345, 2.0, 3.0)]), INPUTS)
    assert check.data["samples"] == [{"at_s": 1.23, "protocol_ms": 2.0, "message_ms": 3.0}]
    check, _ = judge_pings(conn(pings=[ping(0.0, 1.2345, 1.2345)]), INPUTS)
    assert (check.data["p50_ms"], check.data["p99_ms"]) == (1.23, 1.23)


# -- idle hold --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("close_code", "error_code", "cut"),
    [(None, None, True), (1000, None, True), (1000, "SESSION_ENDED", False), (1011, None, False)],
)
def test_an_idle_connection_cut_while_the_busy_one_lives_is_an_idle_timeout(
    close_code: int | None, error_code: str | None, cut: bool
) -> None:
    idle = conn("idle", closed_at_s=15.0, close_code=close_code, last_error_code=error_code)
    check, cause = judge_idle(conn(), idle, 20)
    assert (check.status, cause) == ((Status.FAIL, C.IDLE_TIMEOUT_CUTS_CONNECTION) if cut else (Status.WARN, None))
    if cut:
        assert "something cuts connections idle for about 15 s" in check.evidence


@pytest.mark.parametrize(("busy_closed_at", "cut"), [(16.5, True), (16.0, False), (15.5, False), (14.0, False)])
def test_an_idle_connection_cut_with_the_busy_one_was_not_cut_for_idling(busy_closed_at: float, cut: bool) -> None:
    idle = conn("idle", closed_at_s=15.0)
    busy = conn(closed_at_s=busy_closed_at)
    assert (judge_idle(busy, idle, 20)[1] is C.IDLE_TIMEOUT_CUTS_CONNECTION) is cut


def test_an_idle_connection_that_stays_open_must_answer_its_last_ping() -> None:
    check, cause = judge_idle(conn(), conn("idle"), 20)
    assert (check.status, cause) == (Status.FAIL, C.IDLE_TIMEOUT_CUTS_CONNECTION)
    assert check.evidence.startswith("after 20 s of silence the connection looked open but did not answer")
    silent = conn("idle", pings=[ping(20.0, None, None)])
    assert judge_idle(conn(), silent, 20)[1] is C.IDLE_TIMEOUT_CUTS_CONNECTION
    late = conn("idle", pings=[ping(1.0, None, None), ping(20.0, 2.0, 3.5)])
    check, cause = judge_idle(conn(), late, 20)
    assert (check.status, cause) == (Status.PASS, None)
    assert check.evidence == "survived 20 s of silence and then answered a ping in 3.5 ms"
    instant = conn("idle", pings=[ping(20.0, 0.0, 0.0)])
    assert judge_idle(conn(), instant, 20)[0].evidence.endswith("answered a ping in 0.0 ms")
    # the busy connection closing does not matter while the idle one is open and answers
    assert judge_idle(conn(closed_at_s=3.0), late, 20)[1] is None


# -- closes -----------------------------------------------------------------------------------------


def test_no_close_during_the_run_passes() -> None:
    check, causes = judge_closes([conn(), conn("idle"), conn("late", connected=False, closed_at_s=1.0)], None)
    assert (check.status, causes) == (Status.PASS, [])
    assert check.evidence == "no connection was closed during the run"


@pytest.mark.parametrize(
    ("error_code", "after", "expiring", "cause"),
    [
        ("SESSION_ENDED", None, True, C.SESSION_ENDED_MID_CONNECTION),
        (None, R.ENDED, True, C.SESSION_ENDED_MID_CONNECTION),
        ("SESSION_EXPIRED", None, False, C.SESSION_EXPIRING),
        (None, R.EXPIRED, False, C.SESSION_EXPIRING),
        (None, None, True, C.SESSION_EXPIRING),
        (None, R.OK, False, C.SESSION_ENDED_MID_CONNECTION),
        (None, None, False, C.SESSION_ENDED_MID_CONNECTION),
        # a record that no longer parses says neither: the expiry seen before the run decides
        (None, R.CORRUPT, True, C.SESSION_EXPIRING),
        (None, R.CORRUPT, False, C.SESSION_ENDED_MID_CONNECTION),
    ],
)
def test_a_4000_close_is_the_end_or_the_expiry_of_the_session(
    error_code: str | None, after: R | None, expiring: bool, cause: C
) -> None:
    closed = conn(closed_at_s=4.0, close_code=4000, last_error_code=error_code)
    check, causes = judge_closes([closed], None if after is None else verdict(after), expiring=expiring)
    assert (check.status, causes) == (Status.FAIL, [cause])


def test_each_close_points_at_its_cause_by_meaning() -> None:
    closes = [
        conn(closed_at_s=2.0, close_code=1001),
        conn("idle", closed_at_s=3.0, close_code=None),
    ]
    check, causes = judge_closes(closes, None)
    assert (check.status, causes) == (Status.FAIL, [C.SERVER_CLOSES, C.CONNECTION_DROPPED])
    assert check.evidence == (
        "pinging: close 1001 after 2.0 s — going away: the instance shuts down (a deploy or scale-in); "
        "idle: cut without a close frame (1006) after 3.0 s — cut without a close frame"
    )
    # a pinging connection closed normally was closed by the server; an idle one may close normally
    assert judge_closes([conn(closed_at_s=2.0, close_code=1000)], None)[1] == [C.SERVER_CLOSES]
    assert judge_closes([conn("idle", closed_at_s=2.0, close_code=1011)], None)[1] == [C.SERVER_CLOSES]
    check, causes = judge_closes([conn("idle", closed_at_s=2.0, close_code=1000)], None)
    assert (check.status, causes) == (Status.WARN, [])
    assert judge_closes([conn(closed_at_s=2.0, close_code=4321)], None)[0].evidence.endswith("— other")


def test_a_close_already_explained_points_at_nothing_but_is_shown() -> None:
    closes = [conn("idle", closed_at_s=3.0, close_code=None), conn(closed_at_s=9.0, close_code=None)]
    check, causes = judge_closes(closes, None, explained=["idle"])
    assert causes == [C.CONNECTION_DROPPED] and check.evidence.startswith("idle: cut")
    check, causes = judge_closes(closes[:1], None, explained=["idle"])
    assert (check.status, causes) == (Status.WARN, [])


# -- the one cause ----------------------------------------------------------------------------------


def test_the_first_listed_cause_wins_and_a_hint_replaces_only_the_healthy_remedy() -> None:
    found = [C.HIGH_PING_LATENCY, C.SERVER_CLOSES, C.SESSION_EXPIRING, C.INSTANCE_RESTARTED]
    done = _finish(Report("t"), found, hint="a hint")
    assert (done.cause, done.remedy, done.healthy) == ("SESSION_EXPIRING", REMEDIES[C.SESSION_EXPIRING], False)
    done = _finish(Report("t"), [], hint="a hint")
    assert (done.cause, done.remedy, done.healthy) == ("NO_FAULT_FOUND", "a hint", True)
    done = _finish(Report("t"), [])
    assert (done.cause, done.remedy, done.healthy) == ("NO_FAULT_FOUND", REMEDIES[C.NO_FAULT_FOUND], True)
    # causes named before NO_FAULT_FOUND in the alphabet are faults all the same
    for cause in (C.CONNECT_FAILED, C.CONNECTION_DROPPED, C.HIGH_PING_LATENCY):
        done = _finish(Report("t"), [cause], hint="a hint")
        assert (done.cause, done.remedy, done.healthy) == (cause.value, REMEDIES[cause], False)


def test_a_4000_close_is_not_taken_for_an_expiry_unless_the_session_was_seen_expiring() -> None:
    closed = conn(closed_at_s=4.0, close_code=4000)
    assert judge_closes([closed], None)[1] == [C.SESSION_ENDED_MID_CONNECTION]
