"""Throwaway PEM files for TLS tests: a CA, a server certificate for localhost, a stranger CA, and
server certificates with one problem each (:func:`make_problem_certs`)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from labsession.embedded.redis_server import TlsFiles


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, path


def _leaf(
    directory: Path,
    name: str,
    *,
    signer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    valid: tuple[dt.timedelta, dt.timedelta] = (dt.timedelta(days=-1), dt.timedelta(days=30)),
) -> tuple[Path, Path]:
    """A server certificate and key for ``hosts`` (names or IP addresses), signed by ``signer``
    (issuer name, key) or by itself when ``None``, valid from now + ``valid[0]`` to now + ``valid[1]``."""
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    issuer, signing_key = signer if signer is not None else (subject, key)
    alt: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid[0])
        .not_valid_after(now + valid[1])
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(signing_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


#: The kinds :func:`make_problem_certs` makes, each with the one problem its name says.
PROBLEMS = ("expired", "not_yet_valid", "wrong_host", "self_signed", "untrusted_issuer")
#: The one host name the ``wrong_host`` certificate carries.
OTHER_HOST = "redis.elsewhere.test"


def make_problem_certs(directory: Path) -> tuple[dict[str, TlsFiles], Path]:
    """Server files for each of :data:`PROBLEMS`, and the CA file a client should trust. Each
    has exactly its one problem for a client of ``localhost`` that trusts that CA: ``expired``
    (ended 30 days ago), ``not_yet_valid`` (starts in 30 days), ``wrong_host`` (names only
    :data:`OTHER_HOST`), ``self_signed`` (its own issuer), ``untrusted_issuer`` (signed by a
    CA the client does not have)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key, ca_path = _ca(directory, "problem-test-ca")
    rogue_cert, rogue_key, _ = _ca(directory, "rogue-ca")
    trusted = (ca_cert.subject, ca_key)
    day = dt.timedelta(days=1)
    made = {
        "expired": _leaf(directory, "expired", signer=trusted, valid=(-60 * day, -30 * day)),
        "not_yet_valid": _leaf(directory, "not_yet_valid", signer=trusted, valid=(30 * day, 60 * day)),
        "wrong_host": _leaf(directory, "wrong_host", signer=trusted, hosts=(OTHER_HOST,)),
        "self_signed": _leaf(directory, "self_signed", signer=None),
        "untrusted_issuer": _leaf(directory, "untrusted_issuer", signer=(rogue_cert.subject, rogue_key)),
    }
    return {kind: TlsFiles(cert=cert, key=key, ca=ca_path) for kind, (cert, key) in made.items()}, ca_path


def make_expiring_cert(directory: Path, days: int) -> tuple[TlsFiles, Path]:
    """Server files for ``localhost`` signed by a test CA, ending ``days`` days from now, and that CA's file."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key, ca_path = _ca(directory, "expiring-test-ca")
    cert, key = _leaf(
        directory, "expiring", signer=(ca_cert.subject, ca_key), valid=(-dt.timedelta(days=1), dt.timedelta(days=days))
    )
    return TlsFiles(cert=cert, key=key, ca=ca_path), ca_path


def make_tls_files(directory: Path) -> tuple[TlsFiles, Path]:
    """Server files signed by a test CA (valid for ``localhost`` and 127.0.0.1), plus a
    second, unrelated CA's file for verification-failure tests."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key, ca_path = _ca(directory, "labsession-test-ca")
    _, _, stranger_path = _ca(directory, "stranger-ca")
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return TlsFiles(cert=cert_path, key=key_path, ca=ca_path), stranger_path
