"""Connection probes: DNS, TCP, TLS handshake, AUTH, PING latency, server facts, configuration lint.

Each probe returns a small typed result with a ``check()`` (or ``checks()``) method giving
:class:`~labsession.checks.CheckResult`; network waits are bounded by ``timeout`` seconds.
Times are milliseconds unless a name says otherwise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..checks import CheckResult, Status
from ..errors import RedisUnavailable
from ..masking import get_logger
from ..sessions.eviction import judge_eviction
from ..settings import Settings
from ..store.classify import classify
from ..store.service import RedisHealth, RedisService
from .stats import percentile

__all__ = [
    "DnsResult",
    "LatencySamples",
    "TcpResult",
    "TlsResult",
    "auth_check",
    "health_checks",
    "lint_config",
    "ping_samples",
    "probe_dns",
    "probe_tcp",
    "probe_tls",
]

log = get_logger(__name__)

#: Days before certificate expiry that turn a PASS into a WARN.
CERT_WARN_DAYS = 21


@dataclass(frozen=True, slots=True)
class DnsResult:
    """The addresses ``host`` resolved to, and how long it took (ms); ``error`` when it did not."""

    host: str
    addresses: tuple[str, ...]
    elapsed_ms: float
    error: str | None = None

    def check(self) -> CheckResult:
        if self.error:
            return CheckResult(
                "dns",
                Status.FAIL,
                f"{self.host} does not resolve: {self.error}",
                {"host": self.host, "cause": "DNS_FAILURE"},
            )
        return CheckResult(
            "dns",
            Status.PASS,
            f"{self.host} resolves to {', '.join(self.addresses[:4])} in {self.elapsed_ms:.1f} ms",
            {"host": self.host, "addresses": list(self.addresses), "ms": round(self.elapsed_ms, 3)},
        )


async def probe_dns(host: str, *, timeout: float = 3.0) -> DnsResult:
    """Resolve ``host`` (bounded by ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except TimeoutError:
        return DnsResult(host, (), (time.perf_counter() - started) * 1000, f"no answer within {timeout:g} s")
    except OSError as exc:
        return DnsResult(host, (), (time.perf_counter() - started) * 1000, str(exc))
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    return DnsResult(host, addresses, (time.perf_counter() - started) * 1000)


@dataclass(frozen=True, slots=True)
class TcpResult:
    """One TCP connect to ``host:port``: time in ms, or the error (``exception`` is the one raised)."""

    host: str
    port: int
    elapsed_ms: float
    error: str | None = None
    cause: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def check(self) -> CheckResult:
        where = f"{self.host}:{self.port}"
        if self.error:
            return CheckResult(
                "tcp", Status.FAIL, f"TCP connect to {where} failed ({self.cause}): {self.error}", {"cause": self.cause}
            )
        return CheckResult(
            "tcp", Status.PASS, f"TCP connect to {where} in {self.elapsed_ms:.1f} ms", {"ms": round(self.elapsed_ms, 3)}
        )


async def probe_tcp(host: str, port: int, *, timeout: float = 3.0) -> TcpResult:
    """Open and close one TCP connection to ``host:port`` (bounded by ``timeout`` seconds)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError as exc:
        return TcpResult(
            host, port, (time.perf_counter() - started) * 1000, f"no answer within {timeout:g} s", "TIMEOUT", exc
        )
    except OSError as exc:
        return TcpResult(
            host, port, (time.perf_counter() - started) * 1000, str(exc) or type(exc).__name__, classify(exc).value, exc
        )
    elapsed = (time.perf_counter() - started) * 1000
    await _close(writer, timeout)
    return TcpResult(host, port, elapsed)


async def _close(writer: asyncio.StreamWriter, timeout: float) -> None:
    """Close ``writer``, waiting at most ``timeout`` seconds: a TLS peer that never answers our
    close_notify would otherwise hold us for asyncio's 30 s shutdown timeout."""
    writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except (OSError, ssl.SSLError):
        pass


@dataclass(frozen=True, slots=True)
class TlsResult:
    """A TLS handshake: certificate facts and whether the chain and host name verified.

    ``days_to_expiry`` is whole days (negative once expired); ``None`` fields were not learned;
    ``exception`` is what ended a failed handshake.
    """

    host: str
    port: int
    elapsed_ms: float
    verified: bool
    hostname_match: bool | None
    subject: str | None = None
    issuer: str | None = None
    not_after: str | None = None
    days_to_expiry: int | None = None
    version: str | None = None
    error: str | None = None
    verify_enabled: bool = True
    cipher: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def checks(self) -> list[CheckResult]:
        data = {
            "subject": self.subject,
            "issuer": self.issuer,
            "notAfter": self.not_after,
            "daysToExpiry": self.days_to_expiry,
            "version": self.version,
            "ms": round(self.elapsed_ms, 3),
        }
        out: list[CheckResult] = []
        if self.error and not self.subject:
            out.append(
                CheckResult(
                    "tls handshake",
                    Status.FAIL,
                    f"TLS handshake with {self.host}:{self.port} failed: {self.error}",
                    data,
                )
            )
            return out
        if self.verified:
            out.append(
                CheckResult(
                    "tls handshake",
                    Status.PASS,
                    f"{self.version} in {self.elapsed_ms:.1f} ms; subject {self.subject}, issuer {self.issuer}",
                    data,
                )
            )
        elif not self.verify_enabled:
            out.append(
                CheckResult(
                    "tls handshake",
                    Status.WARN,
                    f"certificate not verified ({self.error or 'verification disabled'}); "
                    f"subject {self.subject}, issuer {self.issuer}",
                    data,
                )
            )
        else:
            out.append(
                CheckResult(
                    "tls handshake",
                    Status.FAIL,
                    f"certificate not trusted: {self.error}; subject {self.subject}, "
                    f"issuer {self.issuer} (set REDIS_CA_CERT to the issuing CA)",
                    data,
                )
            )
        if self.hostname_match is False:
            out.append(
                CheckResult(
                    "tls hostname",
                    Status.FAIL if self.verify_enabled else Status.WARN,
                    f"certificate does not cover host {self.host!r} (subject {self.subject})",
                )
            )
        elif self.hostname_match:
            out.append(CheckResult("tls hostname", Status.PASS, f"certificate covers host {self.host!r}"))
        if self.days_to_expiry is not None:
            days = self.days_to_expiry
            status = Status.FAIL if days < 0 else Status.WARN if days < CERT_WARN_DAYS else Status.PASS
            out.append(
                CheckResult(
                    "tls expiry", status, f"certificate expires {self.not_after} ({days} days)", {"daysToExpiry": days}
                )
            )
        return out


def _name(rdns: Any) -> str | None:
    if not rdns:
        return None
    parts = [f"{k}={v}" for rdn in rdns for (k, v) in rdn]
    return ", ".join(parts)


def _decode_der(der: bytes) -> dict[str, Any]:
    """Subject, issuer, notAfter and names of an unverified certificate (needs ``cryptography``)."""
    try:
        from cryptography import x509
    except ImportError:
        return {}
    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        names = []
    not_after = cert.not_valid_after_utc
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "notAfter": not_after,
        "names": list(names),
    }


def _host_matches(host: str, names: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    for name in names:
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


async def probe_tls(
    host: str,
    port: int,
    *,
    ca_cert: str | None = None,
    verify: bool = True,
    timeout: float = 3.0,
    as_client: bool = False,
) -> TlsResult:
    """Handshake with ``host:port``; report the certificate, chain trust, host-name match and expiry.

    The chain is checked against ``ca_cert`` (or the system's CAs); when it is not trusted a
    second, unverified handshake still reads the certificate so the report can name it.
    With ``as_client`` the one handshake is the one a Redis client makes: chain and host name
    checked when ``verify``, nothing checked otherwise; a failure is the result (``error`` set).
    """
    started = time.perf_counter()

    def since_start() -> float:
        return (time.perf_counter() - started) * 1000

    async def handshake(context: ssl.SSLContext) -> tuple[dict[str, Any], bytes, str | None, str | None, float]:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
        elapsed = since_start()
        try:
            sslobj = writer.get_extra_info("ssl_object")
            cipher = sslobj.cipher()
            return (
                sslobj.getpeercert() or {},
                sslobj.getpeercert(binary_form=True) or b"",
                sslobj.version(),
                cipher[0] if cipher else None,
                elapsed,
            )
        finally:
            await _close(writer, timeout)

    context = ssl.create_default_context(cafile=ca_cert)
    if as_client and not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif not as_client:
        context.check_hostname = False  # checked separately, so a mismatch is reported, not just fatal
    error: str | None = None
    try:
        info, der, version, cipher, elapsed = await handshake(context)
    except TimeoutError as exc:
        return TlsResult(
            host,
            port,
            since_start(),
            False,
            None,
            error=f"no answer within {timeout:g} s",
            verify_enabled=verify,
            exception=exc,
        )
    except ssl.SSLCertVerificationError as exc:
        error = exc.verify_message or str(exc)
        if as_client:
            return TlsResult(host, port, since_start(), False, None, error=error, verify_enabled=verify, exception=exc)
        info, der, version, cipher, elapsed = {}, b"", None, None, since_start()
    except (OSError, ssl.SSLError) as exc:
        return TlsResult(
            host,
            port,
            since_start(),
            False,
            None,
            error=f"{type(exc).__name__}: {exc}",
            verify_enabled=verify,
            exception=exc,
        )
    verified = error is None and context.verify_mode != ssl.CERT_NONE
    if error is not None:
        loose = ssl.create_default_context()
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        try:
            _, der, version, cipher, _ = await handshake(loose)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            return TlsResult(
                host,
                port,
                elapsed,
                False,
                None,
                error=f"{error}; then {type(exc).__name__}",
                verify_enabled=verify,
                exception=exc,
            )
    subject = _name(info.get("subject"))
    issuer = _name(info.get("issuer"))
    names = [v for (k, v) in info.get("subjectAltName", ()) if k == "DNS"]
    not_after: dt.datetime | None = None
    if info.get("notAfter"):
        not_after = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(info["notAfter"]), dt.UTC)
    if not info and der:
        decoded = _decode_der(der)
        subject, issuer = decoded.get("subject"), decoded.get("issuer")
        names = decoded.get("names", [])
        not_after = decoded.get("notAfter")
    if not names and subject:  # no SAN: fall back to the common name
        names = [
            part.split("=", 1)[1] for part in subject.split(", ") if part.lower().startswith(("cn=", "commonname="))
        ]
    match = _host_matches(host, names) if names else None
    days = None
    if not_after is not None:
        days = int((not_after - dt.datetime.now(dt.UTC)).total_seconds() // 86400)
    return TlsResult(
        host,
        port,
        elapsed,
        verified,
        match,
        subject,
        issuer,
        not_after.date().isoformat() if not_after else None,
        days,
        version,
        error,
        verify,
        cipher,
    )


@dataclass(frozen=True, slots=True)
class LatencySamples:
    """Round-trip times in milliseconds of repeated PINGs (or any request)."""

    what: str
    samples_ms: tuple[float, ...]
    errors: int = 0

    @property
    def p50(self) -> float | None:
        return percentile(self.samples_ms, 50)

    @property
    def p99(self) -> float | None:
        return percentile(self.samples_ms, 99)

    def check(self, name: str = "ping latency", *, warn_ms: float = 50.0) -> CheckResult:
        """PASS when p99 is under ``warn_ms``; WARN above it (timing-only) or on any error; FAIL when none answered."""
        data = {"n": len(self.samples_ms), "errors": self.errors, "p50Ms": self.p50, "p99Ms": self.p99}
        if not self.samples_ms:
            return CheckResult(name, Status.FAIL, f"no {self.what} answered ({self.errors} errors)", data)
        p50, p99 = self.p50 or 0.0, self.p99 or 0.0
        text = f"{len(self.samples_ms)} {self.what}s: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        if self.errors:
            return CheckResult(name, Status.WARN, f"{text}; {self.errors} failed", data)
        if p99 > warn_ms:
            return CheckResult(name, Status.WARN, text, data, timing=f"p99 above {warn_ms:g} ms")
        return CheckResult(name, Status.PASS, text, data)


async def ping_samples(redis: RedisService, count: int = 20, *, interval: float = 0.0) -> LatencySamples:
    """``count`` PINGs one after another, ``interval`` seconds apart; failures are counted, not raised."""
    samples: list[float] = []
    errors = 0
    for index in range(count):
        try:
            samples.append(await redis.ping())
        except RedisUnavailable:
            errors += 1
        if interval and index + 1 < count:
            await asyncio.sleep(interval)
    return LatencySamples("PING", tuple(samples), errors)


async def auth_check(redis: RedisService) -> CheckResult:
    """Connect (AUTH happens there) and name the user; FAIL with the cause when it is refused.

    The user is the one the URL names (``default`` when it names none): asking the server
    (``ACL WHOAMI``) would be refused to a read-only ACL user, a security event on its server.
    """
    try:
        await redis.connect()
    except RedisUnavailable as exc:
        status = Status.FAIL
        return CheckResult("auth", status, str(exc), {"cause": exc.cause.value})
    try:
        user = urlsplit(redis.settings.redis_url).username or "default"
    except ValueError:
        user = "default"
    return CheckResult("auth", Status.PASS, f"connected and authenticated as user {user!r}", {"user": user})


def health_checks(health: RedisHealth) -> list[CheckResult]:
    """Server facts as checks: version, provider, eviction policy and evictions, clients against the limit."""
    out: list[CheckResult] = []
    facts = {"version": health.version, "mode": health.mode, "provider": health.provider, "role": health.role}
    out.append(
        CheckResult(
            "server",
            Status.PASS,
            f"{health.provider} Redis {health.version or '(version hidden)'}, mode "
            f"{health.mode or 'unknown'}, role {health.role or 'unknown'}",
            facts,
        )
    )
    judged = judge_eviction(health.maxmemory_policy, health.evicted_keys, health.maxmemory)
    out.append(
        CheckResult(
            "eviction policy",
            judged.policy_status,
            judged.policy_evidence,
            {"policy": health.maxmemory_policy, "maxmemory": health.maxmemory},
        )
    )
    out.append(
        CheckResult("evictions", judged.evictions_status, judged.evictions_evidence, {"evicted": health.evicted_keys})
    )
    if health.connected_clients is not None and health.max_clients:
        share = health.connected_clients / health.max_clients
        status = Status.WARN if share >= 0.8 else Status.PASS
        out.append(
            CheckResult(
                "clients",
                status,
                f"{health.connected_clients} of {health.max_clients} client connections in use ({share:.0%})",
                {"connected": health.connected_clients, "max": health.max_clients},
            )
        )
    return out


def lint_config(settings: Settings, health: RedisHealth | None = None) -> list[CheckResult]:
    """Configuration lint: TLS scheme for Upstash, certificate verification, timeouts."""
    out: list[CheckResult] = []
    provider = health.provider if health else ("upstash" if settings.is_upstash else None)
    upstash = settings.is_upstash or provider == "upstash"
    if settings.scheme == "redis" and upstash:
        out.append(
            CheckResult(
                "url scheme",
                Status.FAIL,
                f"REDIS_URL uses plain redis:// for the Upstash host {settings.host}: use rediss://",
                {"scheme": settings.scheme, "provider": "upstash"},
            )
        )
    elif settings.scheme == "redis" and not _loopback(settings.host):
        out.append(
            CheckResult(
                "url scheme",
                Status.WARN,
                f"plain redis:// to {settings.host}: traffic and password travel unencrypted; "
                "use rediss:// unless this network is private",
                {"scheme": settings.scheme},
            )
        )
    else:
        out.append(
            CheckResult(
                "url scheme", Status.PASS, f"{settings.scheme}:// to {settings.endpoint}", {"scheme": settings.scheme}
            )
        )
    if settings.tls and not settings.tls_verify:
        out.append(
            CheckResult(
                "tls verification",
                Status.WARN,
                "certificate verification is disabled (REDIS_TLS_VERIFY=false): anyone on the "
                "path can impersonate the server",
                {"verify": False},
            )
        )
    elif settings.tls:
        out.append(CheckResult("tls verification", Status.PASS, "certificate and host name are verified"))
    return out


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
