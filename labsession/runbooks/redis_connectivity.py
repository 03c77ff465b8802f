"""Runbook "Redis connectivity": why a connection to Redis fails, in one cause code.

Steps, layer by layer, each with its evidence: ``dns`` (the host resolves), ``tcp`` (the
port accepts), ``tls`` (for ``rediss://``: the handshake and certificate), ``redis`` (AUTH
and PING through the library, one attempt) and, when a plain connection is dropped or
hangs, ``tls probe`` (a TLS handshake on the same port: if it succeeds, the endpoint
wants ``rediss://``). When the certificate is refused, ``certificate`` reads it without
verification and names the problem (expired, not yet valid, self-signed, untrusted issuer,
wrong host name) with its dates and names. Once PING answers, ``topology`` reads the
endpoint's role: a replica, or a cluster node behind a URL without cluster mode, is a fault
for a backend that writes sessions. With ``writes_allowed``, ``write`` sets and deletes one
probe key: a server that refuses writes only (memory limit, storage quota) answers every read
and PING. The cause is a :class:`~labsession.errors.RedisCause` code, or
:data:`OK`; the remedy is :func:`labsession.store.classify.remedy`'s sentence.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time

from ..checks import Report, Status
from ..errors import RedisCause, RedisUnavailable
from ..masking import get_logger
from ..probes.certificate import CertificateProblem, certificate_problem, read_certificate
from ..probes.connection import TlsResult, probe_tcp, probe_tls
from ..probes.topology import Topology, read_topology
from ..probes.write_probe import WriteResult, probe_write
from ..settings import Settings
from ..store.classify import classify, remedy
from ..store.mismatch import answers_plain_text
from ..store.service import RedisService
from .base import Diagnosis, conclude

__all__ = ["CAUSES", "OK", "diagnose_redis_connectivity", "remedy_for"]

log = get_logger(__name__)

NAME = "redis_connectivity"


#: The cause when every layer works; every other cause is a :class:`~labsession.errors.RedisCause` code.
OK = "OK"
#: Every cause code this runbook names (``OK`` first), as ``summary.json`` and the CLI show them.
CAUSES: tuple[str, ...] = (OK, *(c.value for c in RedisCause))

_OK_REMEDY = "Redis answers: DNS, TCP, TLS, credentials and PING all work; the fault is elsewhere"


def remedy_for(cause: str) -> str:
    """The fix for ``cause`` (one of :data:`CAUSES`), the same sentence as :func:`labsession.store.classify.remedy`."""
    if cause == OK:
        return _OK_REMEDY
    return remedy(RedisCause(cause))


def _shown(probe: TlsResult, verified: bool) -> str:
    """What a handshake's evidence names: the certificate's subject once verified, else protocol and cipher."""
    if verified:
        return probe.subject or ""
    return f"{probe.version} {probe.cipher or ''}".strip()


async def _certificate_step(
    report: Report, settings: Settings, refused: ssl.SSLCertVerificationError
) -> CertificateProblem | None:
    """Read the refused certificate without verification (within ``settings.connect_timeout``
    seconds) and record which problem it has (``certificate`` step); ``None`` when it cannot be
    read or shows none of the known problems."""
    host, port = settings.host, settings.port or 6379
    try:
        facts = await read_certificate(host, port, timeout=settings.connect_timeout)
    except (OSError, ssl.SSLError, TimeoutError, ValueError) as exc:
        report.check("certificate", Status.SKIP, f"the certificate could not be read unverified ({_why(exc)})")
        return None
    trusted = (
        f"the CAs in REDIS_CA_CERT ({os.path.basename(settings.ca_cert)})" if settings.ca_cert else "the system's CAs"
    )
    problem = certificate_problem(facts, host, verify_code=refused.verify_code, trusted=trusted)
    window = f"valid {facts.not_before.date()} to {facts.not_after.date()}"
    if problem is None:
        report.check(
            "certificate",
            Status.FAIL,
            f"{facts.subject}, issued by {facts.issuer}, {window}: refused ({refused.verify_message})",
        )
        return None
    report.check(
        "certificate",
        Status.FAIL,
        f"{problem.evidence} ({window}; issuer {facts.issuer}; names {', '.join(facts.names) or 'none'})",
        redis_cause=problem.cause.value,
        subject=facts.subject,
        issuer=facts.issuer,
        notBefore=facts.not_before.isoformat(),
        notAfter=facts.not_after.isoformat(),
        names=list(facts.names),
    )
    return problem


def _topology_step(report: Report, topology: Topology, settings: Settings) -> RedisCause | None:
    """Record the ``topology`` step; the cause when the endpoint is no place for session writes."""
    report.add(topology.check(cluster_url=settings.cluster))
    return topology.cause(cluster_url=settings.cluster)


async def _stalled_handshake(host: str, port: int, within: float) -> RedisCause:
    """A TLS handshake got no answer: ``TLS_NOT_SPOKEN`` when the port answers a plain-text PING
    (a plain Redis waits for a line end), else ``TIMEOUT``. Bounded by ``within`` seconds."""
    plain = await answers_plain_text(host, port, within=within)
    return RedisCause.TLS_NOT_SPOKEN if plain else RedisCause.TIMEOUT


#: A verified certificate with fewer days than this left makes the ``tls`` step a WARN.
RENEWAL_WARNING_DAYS = 14


def _renewal_due(probe: TlsResult) -> str:
    """``"; it expires in N days …"`` when the certificate ends within :data:`RENEWAL_WARNING_DAYS`, else ``""``."""
    days = probe.days_to_expiry
    if days is None or days >= RENEWAL_WARNING_DAYS:
        return ""
    return (
        f"; it expires in {days} day{'s' if days != 1 else ''} ({probe.not_after}): renew it before then, "
        f"or every connection fails from that moment"
    )


def _why(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {str(exc)[:160]}"


async def diagnose_redis_connectivity(
    settings: Settings, *, writes_allowed: bool = False, report: Report | None = None
) -> Diagnosis:
    """Every layer from DNS to PING against ``settings``' Redis, one attempt each, each bounded by
    ``settings.connect_timeout`` / ``operation_timeout`` seconds, and with ``writes_allowed`` one
    probe write. Never raises for a failure of the target: that is the evidence. Steps go on
    ``report`` when given, else on a new one."""
    report = report if report is not None else Report("Runbook: Redis connectivity")
    report.facts.update(
        {
            "endpoint": settings.endpoint,
            "scheme": settings.scheme,
            "tls": settings.tls,
            "tls_verify": settings.tls_verify,
        }
    )
    C = RedisCause
    timeout = settings.connect_timeout

    def fail(cause: str, *skipped: str, text: str = "", evidence: str = "") -> Diagnosis:
        for step in skipped:
            report.check(step, Status.SKIP, "an earlier layer failed")
        return conclude(NAME, report, cause, text or remedy_for(cause), healthy=False, evidence=evidence)

    if settings.scheme == "unix":
        for step in ("dns", "tcp", "tls"):
            report.check(step, Status.SKIP, "unix socket: no network layer")
    else:
        host, port = settings.host, settings.port or 6379
        # dns
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = sorted({str(info[4][0]) for info in infos})
            report.check(
                "dns",
                Status.PASS,
                f"{host} resolves to {', '.join(addresses[:4])} in {(time.perf_counter() - started) * 1000:.1f} ms",
                addresses=addresses[:8],
            )
        except (OSError, TimeoutError) as exc:
            report.check("dns", Status.FAIL, f"{host} does not resolve ({_why(exc)})", redis_cause=C.DNS_FAILURE.value)
            return fail(C.DNS_FAILURE, "tcp", "tls", "redis")
        # tcp
        tcp = await probe_tcp(host, port, timeout=timeout)
        if tcp.error is None:
            report.check("tcp", Status.PASS, f"{host}:{port} accepted a TCP connection in {tcp.elapsed_ms:.1f} ms")
        else:
            cause = C(tcp.cause) if tcp.cause in (C.TIMEOUT, C.CONNECTION_REFUSED) else C.CONNECTION_REFUSED
            report.check(
                "tcp",
                Status.FAIL,
                f"{host}:{port} did not accept a connection ({_why(tcp.exception)})",
                redis_cause=cause.value,
            )
            return fail(cause, "tls", "redis")
        # tls (for rediss://)
        if settings.tls:
            probe = await probe_tls(
                host, port, ca_cert=settings.ca_cert, verify=settings.tls_verify, timeout=timeout, as_client=True
            )
            if probe.error is None:
                subject = _shown(probe, settings.tls_verify)
                renew = _renewal_due(probe) if settings.tls_verify else ""
                report.check(
                    "tls",
                    Status.PASS if settings.tls_verify and not renew else Status.WARN,
                    f"TLS handshake in {probe.elapsed_ms:.1f} ms"
                    + (f", certificate {subject}" if subject else "")
                    + ("" if settings.tls_verify else "; certificate verification is OFF")
                    + renew,
                    notAfter=probe.not_after,
                    daysToExpiry=probe.days_to_expiry,
                )
            else:
                report.check("tls", Status.FAIL, f"TLS handshake failed ({_why(probe.exception)})")
                if isinstance(probe.exception, TimeoutError):
                    stalled = await _stalled_handshake(host, port, timeout)
                    said = "the handshake got no answer, a plain-text PING did" if stalled is C.TLS_NOT_SPOKEN else ""
                    return fail(stalled, "redis", evidence=said)
                if probe.exception is not None and classify(probe.exception) is C.TLS_NOT_SPOKEN:
                    return fail(C.TLS_NOT_SPOKEN, "redis", evidence="the handshake got plain text back")
                refused = probe.exception if isinstance(probe.exception, ssl.SSLCertVerificationError) else None
                if refused and (found := await _certificate_step(report, settings, refused)):
                    return fail(found.cause, "redis", text=f"{found.evidence}; {remedy(found.cause)}")
                return fail(C.TLS_VERIFY_FAILED, "redis")
        else:
            report.check("tls", Status.SKIP, "plain redis:// URL (TLS is probed only if the connection is dropped)")

    # redis: AUTH + PING through the library, one attempt
    one_try = settings.with_changes(
        retry_attempts=1, socket_timeout=timeout, operation_timeout=max(timeout * 2, settings.connect_timeout + 0.5)
    )
    try:
        async with RedisService(one_try) as redis:
            health = await redis.health()
            topology = await read_topology(redis)
            write = await probe_write(redis) if writes_allowed and topology.role != "replica" else None
    except RedisUnavailable as exc:
        cause = exc.cause
        report.check("redis", Status.FAIL, f"{exc.cause.value}: {exc.detail}", redis_cause=exc.cause.value)
        if not settings.tls and settings.scheme != "unix" and cause in (C.TLS_REQUIRED, C.CONNECTION_LOST, C.TIMEOUT):
            probe = await probe_tls(settings.host, settings.port or 6379, verify=False, timeout=timeout, as_client=True)
            if probe.error is None:
                report.check(
                    "tls probe",
                    Status.FAIL,
                    f"the same port completed a TLS handshake ({_shown(probe, False)}) in "
                    f"{probe.elapsed_ms:.1f} ms: the endpoint expects TLS",
                )
                return fail(C.TLS_REQUIRED, evidence="confirmed by a TLS handshake on the same port")
            report.check("tls probe", Status.PASS, f"the port does not speak TLS either ({_why(probe.exception)})")
            if cause is C.TLS_REQUIRED:
                cause = C.CONNECTION_LOST
        return fail(cause)
    clients = ""
    status = Status.PASS
    if health.connected_clients is not None and health.max_clients:
        clients = f", {health.connected_clients} of {health.max_clients} clients"
        if health.connected_clients >= 0.9 * health.max_clients:
            status = Status.WARN
    report.check(
        "redis",
        status,
        f"PING in {health.ping_ms:.1f} ms; {health.provider} {health.version or ''} "
        f"({health.role or 'role hidden'}){clients}",
        ping_ms=round(health.ping_ms, 2),
        version=health.version,
        provider=health.provider,
    )
    if role_fault := _topology_step(report, topology, settings):
        return fail(role_fault, "write")
    if write_fault := _write_step(report, write):
        return fail(write_fault)
    return conclude(NAME, report, OK, _OK_REMEDY, healthy=True)


def _write_step(report: Report, write: WriteResult | None) -> RedisCause | None:
    """The ``write`` step from :func:`~labsession.probes.write_probe.probe_write`'s answer (``None``:
    a read-only run); the cause when Redis refused the write."""
    if write is None:
        report.check(
            "write",
            Status.SKIP,
            "read-only run: a probe write would show whether Redis accepts session writes (memory limit, "
            "storage quota); run with read_only=False to try one",
        )
        return None
    if write.cause is None:
        report.check(
            "write",
            Status.PASS,
            f"a probe key was written and deleted in {write.elapsed_ms:.1f} ms: Redis accepts writes",
        )
        return None
    report.check(
        "write",
        Status.FAIL,
        f"Redis answers reads but refused a write ({write.cause.value}: {write.detail})",
        redis_cause=write.cause.value,
    )
    return write.cause
