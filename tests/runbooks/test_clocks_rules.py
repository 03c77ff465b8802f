"""The ``clocks`` step at its edges: the skew limit plus the Date header's uncertainty, the
reference clock, the direction, and a session's remaining life (test_invalid_session_rules.py
has the common cases; test_invalid_session_instances.py runs backends with shifted clocks).
Times are seconds."""

from __future__ import annotations

import pytest

from labsession.checks import Status
from labsession.runbooks.clocks import DATE_UNCERTAINTY_S, judge_clocks
from labsession.runbooks.instances import InstanceSample


def offsets(**values: float) -> list[InstanceSample]:
    return [InstanceSample(f"http://{k}", k, None, clock_offset_s=v) for k, v in values.items()]


def judge(
    samples: list[InstanceSample], redis_s: float | None = 0.0, expires_in_s: float | None = None
) -> tuple[Status, bool, str, str]:
    check, skewed, short = judge_clocks(samples, redis_s, max_skew_s=10.0, session_expires_in_s=expires_in_s)
    return check.status, skewed, short, check.evidence


def test_the_limit_is_the_skew_plus_the_date_headers_uncertainty() -> None:
    assert DATE_UNCERTAINTY_S == 1.5
    assert judge(offsets(a=11.5))[:2] == (Status.PASS, False)
    assert judge(offsets(a=11.75))[:2] == (Status.FAIL, True)
    assert judge(offsets(a=-11.5))[:2] == (Status.PASS, False)


def test_each_instance_is_judged_against_redis_and_the_effect_follows_the_direction() -> None:
    status, skewed, short, evidence = judge(offsets(a=5.2, b=-8.0), redis_s=5.0)
    assert (status, skewed, short) == (Status.FAIL, True, "b's clock is 13 s behind Redis's")
    assert evidence == (
        "b's clock is 13 s behind Redis's (instances against Redis: a +0.2 s, b -13.0 s; limit 10 s): "
        "it judges sessions alive past their expiresAt"
    )
    status, skewed, short, evidence = judge(offsets(a=-5.0, b=8.0), redis_s=-5.0)
    assert evidence == (
        "b's clock is 13 s ahead of Redis's (instances against Redis: a +0.0 s, b +13.0 s; limit 10 s): "
        "it judges live sessions expired up to that long before their expiresAt"
    )


def test_an_instance_ahead_past_a_sessions_expiry_is_named_the_furthest_first() -> None:
    # 7.5 and 7.2 s ahead once the uncertainty is taken off, past a session 7 s from its end
    status, skewed, short, _ = judge(offsets(a=9.0, b=8.7), expires_in_s=7.0)
    assert (status, skewed) == (Status.FAIL, True)
    assert short == "a's clock is 9 s ahead, past this session's expiresAt (7 s away)"
    assert judge(offsets(a=6.5), expires_in_s=5.0)[:2] == (Status.PASS, False)  # exactly at it
    assert judge(offsets(a=3.0), expires_in_s=1.0)[:2] == (Status.FAIL, True)
    # a session already past its end is the session key step's business
    assert judge(offsets(a=5.0), expires_in_s=0.0)[:2] == (Status.PASS, False)
    assert judge(offsets(a=5.0), expires_in_s=-3.0)[:2] == (Status.PASS, False)


def test_this_machines_own_clock_off_redis_is_a_warning() -> None:
    assert judge(offsets(a=10.0), redis_s=10.0)[0] is Status.PASS
    status, skewed, _, evidence = judge(offsets(a=10.5), redis_s=10.5)
    assert (status, skewed) == (Status.WARN, False)
    assert (
        evidence.endswith(
            "; this machine's clock is 10 s off Redis', so the session key step's times are judged by a wrong clock"
        )
        or "10 s off Redis'" in evidence
    )
    status, skewed, _, evidence = judge(offsets(a=0.2), redis_s=None)
    assert (status, skewed) == (Status.PASS, False)
    assert evidence == "1 instance clock(s) agree with this machine's within 10 s (by their HTTP Date headers, ±1.5 s)"


def test_the_data_rounds_offsets_to_centiseconds_and_redis_to_milliseconds() -> None:
    check, _, _ = judge_clocks(offsets(a=0.123), 0.1234, max_skew_s=10.0)
    assert check.data == {
        "offsets_s": {"a": 0.12},
        "redis_offset_s": 0.123,
        "reference": "Redis",
        "max_skew_s": 10.0,
        "uncertainty_s": 1.5,
    }


@pytest.mark.parametrize("redis_s", [0.0, None])
def test_instances_in_agreement_pass(redis_s: float | None) -> None:
    assert judge(offsets(a=0.2, b=-0.4), redis_s=redis_s)[:2] == (Status.PASS, False)
