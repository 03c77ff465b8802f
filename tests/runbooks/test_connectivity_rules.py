"""The connectivity runbook's renewal warning on a handshake already made: how many days left
make a verified certificate a WARN (tests/runbooks/test_diagnosis.py serves a real one that ends
in five days)."""

from __future__ import annotations

import pytest

from labsession.probes.connection import TlsResult
from labsession.runbooks.redis_connectivity import RENEWAL_WARNING_DAYS, _renewal_due


def handshake(days: int | None) -> TlsResult:
    return TlsResult("h", 6380, 1.0, True, True, not_after="2026-01-15T00:00:00+00:00", days_to_expiry=days)


@pytest.mark.parametrize(
    ("days", "warning"),
    [
        (None, ""),
        (14, ""),
        (
            13,
            "; it expires in 13 days (2026-01-15T00:00:00+00:00): renew it before then, "
            "or every connection fails from that moment",
        ),
        (
            1,
            "; it expires in 1 day (2026-01-15T00:00:00+00:00): renew it before then, "
            "or every connection fails from that moment",
        ),
        (
            0,
            "; it expires in 0 days (2026-01-15T00:00:00+00:00): renew it before then, "
            "or every connection fails from that moment",
        ),
    ],
)
def test_a_certificate_with_under_two_weeks_left_is_due_for_renewal(days: int | None, warning: str) -> None:
    assert RENEWAL_WARNING_DAYS == 14
    assert _renewal_due(handshake(days)) == warning
