"""Which certificate problem makes a TLS client refuse a Redis endpoint, with its dates and names.

:func:`read_certificate` makes one handshake without verification (the only way to see a
certificate a client refuses: ``getpeercert()`` is empty then) and parses its binary form;
:func:`certificate_problem` compares it with the clock, the host name and the issuer and names
the problem as a :class:`~labsession.errors.RedisCause`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass

from ..errors import RedisCause

__all__ = ["CertificateFacts", "CertificateProblem", "certificate_problem", "parse_certificate", "read_certificate"]

# OpenSSL's verify codes (X509_V_ERR_*) that say who is not trusted.
_SELF_SIGNED_CODES = frozenset({18})  # DEPTH_ZERO_SELF_SIGNED_CERT
_UNTRUSTED_CODES = frozenset({2, 19, 20, 21})  # no issuer certificate, self-signed CA in chain, ...
_HOST_CODES = frozenset({62, 64})  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """The server's own (leaf) certificate: names as RFC 4514 strings, validity in UTC, the host
    names and addresses it covers (its subjectAltName, else its common name)."""

    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    names: tuple[str, ...]
    self_signed: bool

    def covers(self, host: str) -> bool:
        """True when the certificate names ``host`` (a name or an IP address); ``*.`` covers one label."""
        host = host.lower().rstrip(".")
        for name in (n.lower().rstrip(".") for n in self.names):
            if name == host or (name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]):
                return True
            if _same_address(name, host):
                return True
        return False


@dataclass(frozen=True, slots=True)
class CertificateProblem:
    """One named problem: the cause code and one sentence with the dates and names involved."""

    cause: RedisCause
    evidence: str


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def parse_certificate(der: bytes) -> CertificateFacts:
    """The facts of a DER-encoded certificate; raises ``ValueError`` when it is not one."""
    # Imported here: only a refused certificate is parsed, and the import costs every command ~20 ms.
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*alt.get_values_for_type(x509.DNSName), *(str(ip) for ip in alt.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return CertificateFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        names=tuple(names),
        self_signed=cert.issuer == cert.subject,
    )


async def read_certificate(host: str, port: int, *, timeout: float = 3.0) -> CertificateFacts:
    """The certificate ``host:port`` presents, read in one handshake that verifies nothing
    (bounded by ``timeout`` seconds). Raises ``OSError``/``ssl.SSLError``/``TimeoutError`` when the
    handshake fails, ``ValueError`` when what came is no certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with asyncio.timeout(timeout):
        _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.transport.abort()  # nothing was sent; no close_notify to wait for
    if not der:
        raise ValueError("the server sent no certificate")
    return parse_certificate(der)


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _days(delta: dt.timedelta) -> str:
    """A positive ``delta`` in whole days."""
    return f"{delta.days} day{'s' if delta.days != 1 else ''}"


def certificate_problem(
    facts: CertificateFacts,
    host: str,
    *,
    verify_code: int | None,
    trusted: str,
    now: dt.datetime | None = None,
) -> CertificateProblem | None:
    """The first problem of ``facts`` for a client of ``host``, in the order a fix is needed: its
    validity dates against ``now`` (default: this machine's clock), then its issuer (``verify_code``
    is OpenSSL's, from the refused handshake; ``trusted`` says which CAs were asked, for the
    sentence), then its names. ``None`` when none of these explains the refusal."""
    now = now or dt.datetime.now(dt.UTC)
    subject = facts.subject or "(no subject)"
    if now < facts.not_before:
        return CertificateProblem(
            RedisCause.TLS_CERT_NOT_YET_VALID,
            f"the certificate {subject} is valid only from {_when(facts.not_before)}, "
            f"{_days(facts.not_before - now)} after this machine's clock ({_when(now)})",
        )
    if now > facts.not_after:
        return CertificateProblem(
            RedisCause.TLS_CERT_EXPIRED,
            f"the certificate {subject} expired on {_when(facts.not_after)}, {_days(now - facts.not_after)} ago",
        )
    if verify_code in _SELF_SIGNED_CODES or (facts.self_signed and verify_code in _UNTRUSTED_CODES):
        return CertificateProblem(
            RedisCause.TLS_SELF_SIGNED,
            f"the certificate {subject} is self-signed (its issuer is itself) and {trusted} do not include it",
        )
    if verify_code in _UNTRUSTED_CODES:
        return CertificateProblem(
            RedisCause.TLS_UNTRUSTED_ISSUER,
            f"the certificate {subject} was issued by {facts.issuer or '(no issuer)'}, which {trusted} do not include",
        )
    if verify_code in _HOST_CODES or not facts.covers(host):
        return CertificateProblem(
            RedisCause.TLS_HOSTNAME_MISMATCH,
            f"the certificate {subject} names {', '.join(facts.names) or 'no host'}, not {host!r}",
        )
    return None
