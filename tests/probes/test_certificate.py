"""Certificate facts and the order problems are named in, on certificates made for the purpose."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from labsession.errors import RedisCause
from labsession.probes.certificate import CertificateFacts, certificate_problem, parse_certificate

from support.tlscerts import OTHER_HOST, make_problem_certs


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertificateFacts]:
    files, _ = make_problem_certs(tmp_path_factory.mktemp("certs"))
    return {kind: parse_certificate(_der(f.cert)) for kind, f in files.items()}


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


def test_facts_name_subject_issuer_dates_and_every_host(facts: dict[str, CertificateFacts]) -> None:
    good = facts["untrusted_issuer"]
    assert good.subject == "CN=localhost" and good.issuer == "CN=rogue-ca" and not good.self_signed
    assert good.names == ("localhost", "127.0.0.1")
    assert good.covers("LOCALHOST.") and good.covers("127.0.0.1") and not good.covers("127.1")
    assert facts["self_signed"].self_signed
    assert facts["wrong_host"].names == (OTHER_HOST,) and not facts["wrong_host"].covers("localhost")
    assert facts["expired"].not_after < dt.datetime.now(dt.UTC) < facts["not_yet_valid"].not_before


def test_a_wildcard_covers_one_label_only() -> None:
    now = dt.datetime.now(dt.UTC)
    wild = CertificateFacts("CN=*.upstash.io", "CN=ca", now, now, ("*.upstash.io",), False)
    assert wild.covers("eu1-x.upstash.io")
    assert not wild.covers("a.b.upstash.io") and not wild.covers("upstash.io")


def test_dates_come_before_trust_and_trust_before_the_host_name(facts: dict[str, CertificateFacts]) -> None:
    trusted = "the system's CAs"
    # Expired and from an unknown issuer: the dates are named first, they need a new certificate anyway.
    expired = certificate_problem(facts["expired"], "other.test", verify_code=20, trusted=trusted)
    assert expired is not None and expired.cause is RedisCause.TLS_CERT_EXPIRED
    assert f"expired on {facts['expired'].not_after:%Y-%m-%d %H:%M} UTC" in expired.evidence
    early = certificate_problem(facts["not_yet_valid"], "localhost", verify_code=9, trusted=trusted)
    assert early is not None and early.cause is RedisCause.TLS_CERT_NOT_YET_VALID
    own = certificate_problem(facts["self_signed"], "localhost", verify_code=18, trusted=trusted)
    assert own is not None and own.cause is RedisCause.TLS_SELF_SIGNED and trusted in own.evidence
    rogue = certificate_problem(facts["untrusted_issuer"], "elsewhere", verify_code=20, trusted=trusted)
    assert rogue is not None and rogue.cause is RedisCause.TLS_UNTRUSTED_ISSUER and "CN=rogue-ca" in rogue.evidence
    host = certificate_problem(facts["wrong_host"], "localhost", verify_code=62, trusted=trusted)
    assert host is not None and host.cause is RedisCause.TLS_HOSTNAME_MISMATCH
    assert host.evidence.endswith(f"names {OTHER_HOST}, not 'localhost'")
    # A certificate with none of these problems explains nothing: the caller keeps TLS_VERIFY_FAILED.
    assert certificate_problem(facts["untrusted_issuer"], "localhost", verify_code=None, trusted=trusted) is None


# -- the rules on facts already read, at their edges ------------------------------------------------

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _facts(
    names: tuple[str, ...] = ("localhost",), *, days_left: float = 30, subject: str = "CN=localhost"
) -> CertificateFacts:
    return CertificateFacts(subject, "CN=ca", NOW - 30 * DAY, NOW + days_left * DAY, names, False)


def _cause(
    facts: CertificateFacts, code: int | None, host: str = "localhost", now: dt.datetime = NOW
) -> RedisCause | None:
    problem = certificate_problem(facts, host, verify_code=code, trusted="the system's CAs", now=now)
    return None if problem is None else problem.cause


def test_an_address_is_covered_in_any_spelling_and_only_itself() -> None:
    six = _facts(("::1",))
    assert six.covers("0:0:0:0:0:0:0:1") and six.covers("::1")
    assert not six.covers("::2") and not six.covers("::") and not six.covers("localhost")


def test_a_wildcard_covers_its_own_domain_only() -> None:
    wild = _facts(("*.upstash.io",))
    assert not wild.covers("eu1-x.zpstash.io") and not wild.covers("eu1-x.apstash.io")


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (2, RedisCause.TLS_UNTRUSTED_ISSUER),  # unable to get issuer certificate
        (19, RedisCause.TLS_UNTRUSTED_ISSUER),  # self-signed certificate in chain
        (20, RedisCause.TLS_UNTRUSTED_ISSUER),  # unable to get local issuer certificate
        (21, RedisCause.TLS_UNTRUSTED_ISSUER),  # unable to verify the first certificate
        (18, RedisCause.TLS_SELF_SIGNED),  # depth zero self-signed certificate
        (62, RedisCause.TLS_HOSTNAME_MISMATCH),  # hostname mismatch
        (64, RedisCause.TLS_HOSTNAME_MISMATCH),  # IP address mismatch
        (1, None),
        (3, None),
        (22, None),
        (61, None),
        (63, None),
        (65, None),
        (None, None),
    ],
)
def test_each_openssl_verify_code_names_its_problem_and_no_other_does(
    code: int | None, cause: RedisCause | None
) -> None:
    assert _cause(_facts(), code) is cause


def test_a_host_the_certificate_does_not_name_is_a_mismatch_without_a_verify_code() -> None:
    assert _cause(_facts(), None, host="elsewhere") is RedisCause.TLS_HOSTNAME_MISMATCH


def test_validity_holds_from_its_first_moment_to_its_last() -> None:
    facts = _facts()
    assert _cause(facts, None, now=facts.not_before) is None
    assert _cause(facts, None, now=facts.not_after) is None
    assert _cause(facts, None, now=facts.not_after + dt.timedelta(seconds=1)) is RedisCause.TLS_CERT_EXPIRED
    assert _cause(facts, None, now=facts.not_before - dt.timedelta(seconds=1)) is RedisCause.TLS_CERT_NOT_YET_VALID


@pytest.mark.parametrize(("days", "said"), [(0.5, "0 days ago"), (1.5, "1 day ago"), (2.5, "2 days ago")])
def test_days_are_whole_and_one_is_singular(days: float, said: str) -> None:
    problem = certificate_problem(_facts(days_left=-days), "localhost", verify_code=None, trusted="x", now=NOW)
    assert problem is not None and problem.evidence == (
        f"the certificate CN=localhost expired on {_facts(days_left=-days).not_after:%Y-%m-%d %H:%M} UTC, {said}"
    )


def test_a_certificate_without_a_subject_is_named_as_such() -> None:
    problem = certificate_problem(_facts(subject=""), "elsewhere", verify_code=None, trusted="x", now=NOW)
    assert problem is not None and problem.evidence == "the certificate (no subject) names localhost, not 'elsewhere'"


def test_without_a_subject_alternative_name_the_common_name_is_the_host_name() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "redis.internal")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .sign(key, hashes.SHA256())
    )
    facts = parse_certificate(cert.public_bytes(serialization.Encoding.DER))
    assert facts.names == ("redis.internal",) and facts.self_signed and facts.covers("redis.internal")
