"""The connectivity runbook's renewal warning on a handshake already made: how many days left
make a verified certificate a WARN (tests/runbooks/test_diagnosis.py serves a real one that ends
in five days)."""

from __future__ import annotations

import ssl

import pytest

from labsession import Settings
from labsession.checks import Report, Status
from labsession.embedded.redis_server import free_port
from labsession.probes.connection import TlsResult
from labsession.runbooks.redis_connectivity import RENEWAL_WARNING_DAYS, _certificate_step, _renewal_due


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


async def test_a_certificate_that_cannot_be_read_again_unverified_is_a_skip() -> None:
    # Verification refused the certificate; by the unverified read the port no longer answers.
    port = free_port()
    settings = Settings.from_url(f"rediss://127.0.0.1:{port}", connect_timeout=1.0)
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    report = Report("connectivity")
    assert await _certificate_step(report, settings, refused) is None
    (check,) = report.checks
    assert (check.name, check.status) == ("certificate", Status.SKIP)
    assert check.evidence.startswith("the certificate could not be read unverified ("), check.evidence
