"""Certificate facts and the order problems are named in, on certificates made for the purpose."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

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
