"""What went wrong with Redis, in one code and one sentence.

:func:`classify` is the single place that reads a driver exception and decides its
:class:`~labsession.errors.RedisCause`; :func:`is_retryable` is the single place that
decides whether trying again can help.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

from redis import exceptions as rx

from ..errors import RedisCause, RedisUnavailable

__all__ = ["classify", "database_remedy", "describe", "is_retryable", "remedy", "unavailable"]

_REMEDY: dict[RedisCause, str] = {
    RedisCause.DNS_FAILURE: "the host name does not resolve; check the host in REDIS_URL",
    RedisCause.CONNECTION_REFUSED: "nothing listens on that port; check the port and that Redis is running",
    RedisCause.TIMEOUT: "no answer in time; check firewalls, security groups and that the server is not frozen",
    RedisCause.TLS_REQUIRED: "the server closed a plain connection; it expects TLS, so use rediss://",
    RedisCause.TLS_VERIFY_FAILED: "the server certificate was not trusted; set REDIS_CA_CERT or fix the host name",
    RedisCause.AUTH_FAILED: "the password or user was refused; check the credentials in REDIS_URL",
    RedisCause.MAX_CONNECTIONS: (
        "the server refuses new clients (Redis maxclients, or the plan's concurrent connection limit on Upstash); "
        "close idle ones or raise the limit"
    ),
    RedisCause.QUOTA_EXCEEDED: "the provider's request or size limit was hit; check the plan's quota",
    RedisCause.OUT_OF_MEMORY: "Redis is full (maxmemory with noeviction); free memory or raise maxmemory",
    RedisCause.READ_ONLY: "the server or user is read-only; writes need a writable primary or ACL",
    RedisCause.CONNECTION_LOST: "the connection dropped; Redis restarted or the network failed",
    RedisCause.ENDPOINT_IS_REPLICA: (
        "REDIS_URL points at a replica, which refuses writes (READONLY), so backends cannot create, extend or "
        "end sessions; point REDIS_URL at the primary (after a failover: the new primary)"
    ),
    RedisCause.TLS_CERT_EXPIRED: (
        "the server's TLS certificate has expired; renew it on the server (turning verification off only hides it)"
    ),
    RedisCause.TLS_CERT_NOT_YET_VALID: (
        "the server's TLS certificate is not valid yet; check the clocks of this machine and of the server, "
        "or install a certificate valid from now"
    ),
    RedisCause.TLS_HOSTNAME_MISMATCH: (
        "the server's TLS certificate does not name the host in REDIS_URL; use a host name the certificate "
        "lists, or reissue the certificate for this host"
    ),
    RedisCause.TLS_UNTRUSTED_ISSUER: (
        "the server's TLS certificate was issued by a CA this client does not trust; set REDIS_CA_CERT to "
        "that CA's certificate file"
    ),
    RedisCause.TLS_SELF_SIGNED: (
        "the server's TLS certificate is self-signed; set REDIS_CA_CERT to that certificate, or give the server "
        "one issued by a trusted CA"
    ),
    RedisCause.DAILY_LIMIT_EXCEEDED: (
        "Upstash refuses commands because the database's daily request limit is used up; send fewer commands "
        "or move the database to a paid plan"
    ),
    RedisCause.MONTHLY_LIMIT_EXCEEDED: (
        "Upstash refuses commands because the database's monthly request limit is used up; send fewer commands "
        "or move the database to a paid plan"
    ),
    RedisCause.REQUEST_TOO_LARGE: (
        "Upstash refused a command larger than the plan's request size limit (1 MB on Free and Pay as you go); "
        "send smaller values or raise the limit"
    ),
    RedisCause.DB_CAPACITY_EXCEEDED: (
        "the Upstash database holds its plan's maximum data size, so writes are refused (reads and deletes "
        "still work); delete ended sessions, make sure every key has a TTL, or raise the plan's limit"
    ),
    RedisCause.UNKNOWN: "an unexpected Redis error",
}


def database_remedy(db: int | None) -> str:
    """What to do when the server has no database ``db`` (the number REDIS_URL selects; ``None``: not known)."""
    asked = "a database" if db is None else f"database {db}, which"
    return (
        f"REDIS_URL asks for {asked} this server does not have; use /0, or a number below the server's "
        "databases setting (16 by default; Upstash and Redis Cluster have only database 0)"
    )


# A REDIS_URL that does not fit the server it reaches: each cause says what to change in it.
_REMEDY.update(
    {
        RedisCause.TLS_NOT_SPOKEN: (
            "the port accepted the connection but does not speak TLS (the handshake stalled or got plain text "
            "back); use redis:// for this port, or the provider's TLS port with rediss://"
        ),
        RedisCause.SOCKET_NOT_FOUND: (
            "no unix socket at that path, or this user may not open it; check the path in REDIS_URL against "
            "unixsocket in redis.conf, and unixsocketperm"
        ),
        RedisCause.DB_OUT_OF_RANGE: database_remedy(None),
        RedisCause.NOT_A_CLUSTER: (
            "the server runs without cluster mode; remove cluster=true from REDIS_URL (and REDIS_CLUSTER)"
        ),
        RedisCause.CLUSTER_REQUIRED: (
            "the server is a Redis Cluster node and sent this client to another node (MOVED); "
            "add ?cluster=true to REDIS_URL or set REDIS_CLUSTER=true"
        ),
    }
)


def remedy(cause: RedisCause) -> str:
    """One sentence: what ``cause`` means and what to do about it."""
    return _REMEDY[cause]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# What a live server may *reply* with (a ResponseError): only these rules apply to a reply,
# so a command error that happens to mention "timeout" or "maxclients" (say, an unknown
# CONFIG GET maxclients) is never mistaken for an outage.
_REPLY_RULES: list[tuple[tuple[str, ...], RedisCause]] = [
    (
        (
            "wrongpass",
            "noauth",
            "invalid password",
            "invalid username-password",
            "authentication required",
            "auth failed",
            "invalid username",
        ),
        RedisCause.AUTH_FAILED,
    ),
    (("max number of clients", "too many connections"), RedisCause.MAX_CONNECTIONS),
    (
        ("max requests limit", "max daily request", "max request size", "max concurrent", "limit exceeded", "quota"),
        RedisCause.QUOTA_EXCEEDED,
    ),
    (("oom command not allowed", "used memory > 'maxmemory'"), RedisCause.OUT_OF_MEMORY),
    (("noperm", "no permissions", "readonly", "read only"), RedisCause.READ_ONLY),
]
# What a failed connection may say (socket, TLS and driver errors).
_CONNECTION_RULES: list[tuple[tuple[str, ...], RedisCause]] = [
    (("certificate verify failed", "hostname mismatch", "certificate_verify_failed"), RedisCause.TLS_VERIFY_FAILED),
    (
        (
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no address associated",
            "getaddrinfo failed",
        ),
        RedisCause.DNS_FAILURE,
    ),
    (("connection refused", "connect call failed", f"error {errno.ECONNREFUSED} "), RedisCause.CONNECTION_REFUSED),
    *_REPLY_RULES,
    (("wrong version number", "unknown protocol", "sslv3 alert", "tlsv1 alert"), RedisCause.TLS_VERIFY_FAILED),
    (("timeout", "timed out"), RedisCause.TIMEOUT),
    (
        (
            "connection reset",
            "closed by server",
            "connection closed",
            "broken pipe",
            "connection lost",
            "eof",
            "error while reading",
        ),
        RedisCause.CONNECTION_LOST,
    ),
]


#: Upstash's own error texts (its troubleshooting pages name them), each with its own cause; read
#: before the generic rules, which would call most of them a quota.
_UPSTASH_REPLIES: tuple[tuple[str, RedisCause], ...] = (
    ("max daily request limit exceeded", RedisCause.DAILY_LIMIT_EXCEEDED),
    ("max requests limit exceeded", RedisCause.MONTHLY_LIMIT_EXCEEDED),
    ("max request size exceeded", RedisCause.REQUEST_TOO_LARGE),
    ("max concurrent connections exceeded", RedisCause.MAX_CONNECTIONS),
    ("db capacity quota exceeded", RedisCause.DB_CAPACITY_EXCEEDED),
    ("max single record size exceeded", RedisCause.QUOTA_EXCEEDED),
    ("max key size exceeded", RedisCause.QUOTA_EXCEEDED),
    ("invalid or missing auth token", RedisCause.AUTH_FAILED),
)


def _upstash_cause(text: str) -> RedisCause | None:
    """The cause of one of Upstash's error texts in ``text``, or ``None``."""
    text = text.lower()
    return next((cause for needle, cause in _UPSTASH_REPLIES if needle in text), None)


def _match(text: str, rules: list[tuple[tuple[str, ...], RedisCause]]) -> RedisCause | None:
    text = text.lower()
    for needles, cause in rules:
        if any(n in text for n in needles):
            return cause
    return None


#: What a TLS handshake reports when the peer answered in plain text (OpenSSL's words).
_PLAIN_TEXT_PEER = ("wrong version number", "record layer failure", "packet length too long", "unknown protocol")
_NO_CLUSTER_MODE = ("cluster support disabled", "cluster mode is not enabled")
_NO_SUCH_DB = ("db index is out of range", "invalid db index", "select is not allowed in cluster mode")


def _mismatch(chain: list[BaseException]) -> RedisCause | None:
    """The cause when REDIS_URL does not fit the server it reached (TLS on a plain port, a
    missing socket file, a database it lacks, cluster mode on or off), else ``None``."""
    for link in chain:
        if isinstance(link, rx.MovedError | rx.AskError):
            return RedisCause.CLUSTER_REQUIRED
        if isinstance(link, FileNotFoundError | NotADirectoryError):
            return RedisCause.SOCKET_NOT_FOUND
        if isinstance(link, PermissionError) and link.errno == errno.EACCES:  # EPERM is a local firewall
            return RedisCause.SOCKET_NOT_FOUND
    text = " ".join(str(link) for link in chain).lower()
    for needles, cause in (
        (_NO_CLUSTER_MODE, RedisCause.NOT_A_CLUSTER),
        (_NO_SUCH_DB, RedisCause.DB_OUT_OF_RANGE),
        (_PLAIN_TEXT_PEER, RedisCause.TLS_NOT_SPOKEN),
    ):
        if any(n in text for n in needles):
            return cause
    return None


def classify(exc: BaseException) -> RedisCause:
    """The cause of a failed connection or command, from the exception and its chain."""
    chain = _chain(exc)
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            return RedisCause.TLS_VERIFY_FAILED
        if isinstance(link, socket.gaierror):
            return RedisCause.DNS_FAILURE
        if isinstance(link, ConnectionRefusedError):
            return RedisCause.CONNECTION_REFUSED
        if isinstance(link, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
            return RedisCause.AUTH_FAILED
        if isinstance(link, rx.MaxConnectionsError):
            return RedisCause.MAX_CONNECTIONS
        if isinstance(link, rx.ReadOnlyError | rx.NoPermissionError):
            return RedisCause.READ_ONLY
        if isinstance(link, rx.OutOfMemoryError):
            return RedisCause.OUT_OF_MEMORY
    mismatch = _mismatch(chain)
    if mismatch is not None:
        return mismatch
    if isinstance(exc, rx.ResponseError):
        # The server answered: the connection is fine, whatever the words of the reply.
        return _upstash_cause(str(exc)) or _match(str(exc), _REPLY_RULES) or RedisCause.UNKNOWN
    text = " ".join(str(link) for link in chain)
    cause = _upstash_cause(text) or _match(text, _CONNECTION_RULES)
    if cause is not None:
        return cause
    if any(isinstance(link, asyncio.TimeoutError | TimeoutError | rx.TimeoutError) for link in chain):
        return RedisCause.TIMEOUT
    if any(isinstance(link, rx.ConnectionError | ConnectionError | OSError) for link in chain):
        return RedisCause.CONNECTION_LOST
    return RedisCause.UNKNOWN


_NOT_RETRYABLE = {
    RedisCause.AUTH_FAILED,
    RedisCause.TLS_VERIFY_FAILED,
    RedisCause.DNS_FAILURE,
    RedisCause.QUOTA_EXCEEDED,
    RedisCause.OUT_OF_MEMORY,
    RedisCause.READ_ONLY,
}
# A URL that does not fit its server stays wrong however often it is tried. (A missing unix
# socket is retried: a restarting Redis removes its socket file and makes it again.)
_NOT_RETRYABLE |= {
    RedisCause.TLS_NOT_SPOKEN,
    RedisCause.DB_OUT_OF_RANGE,
    RedisCause.NOT_A_CLUSTER,
    RedisCause.CLUSTER_REQUIRED,
}
# Certificates, topology and plan limits do not mend by trying again within seconds either.
_NOT_RETRYABLE.update(
    {
        RedisCause.ENDPOINT_IS_REPLICA,
        RedisCause.TLS_CERT_EXPIRED,
        RedisCause.TLS_CERT_NOT_YET_VALID,
        RedisCause.TLS_HOSTNAME_MISMATCH,
        RedisCause.TLS_UNTRUSTED_ISSUER,
        RedisCause.TLS_SELF_SIGNED,
        RedisCause.DAILY_LIMIT_EXCEEDED,
        RedisCause.MONTHLY_LIMIT_EXCEEDED,
        RedisCause.REQUEST_TOO_LARGE,
        RedisCause.DB_CAPACITY_EXCEEDED,
    }
)


def is_retryable(exc: BaseException) -> bool:
    """True when trying the same operation again may succeed (a refused or dropped connection,
    a timeout, a full client table); False for a wrong password, an untrusted certificate,
    an unknown host, a quota or a full or read-only server, which retries cannot mend."""
    return classify(exc) not in _NOT_RETRYABLE


def unavailable(
    exc: BaseException, endpoint: str, *, tls: bool | None = None, waited: float | None = None
) -> RedisUnavailable:
    """Turn a driver error into :class:`RedisUnavailable` with the cause and its remedy.

    A connection that a server drops before answering, made without TLS, is reported as
    ``TLS_REQUIRED`` when ``tls`` is False: that is what a TLS-only endpoint does to it.
    ``waited`` (seconds) says that the operation's time bound ran out; the detail then
    names the bound and the last error seen while retrying.
    """
    cause = classify(exc)
    if tls is False and cause in (RedisCause.CONNECTION_LOST, RedisCause.TIMEOUT) and _dropped_early(exc):
        cause = RedisCause.TLS_REQUIRED
    advice = _POOL_FULL if cause is RedisCause.MAX_CONNECTIONS and _client_pool_full(exc) else remedy(cause)
    if waited is not None:
        detail = f"{advice} (gave up after {waited:g} s; last error: {describe(exc)})"
    else:
        detail = f"{advice} ({describe(exc)})"
    return RedisUnavailable(cause, endpoint, detail)


_POOL_FULL = (
    "this process's own connection pool is full (every connection busy); raise max_connections "
    "or send fewer operations at once; the server did not refuse anything"
)


def _client_pool_full(exc: BaseException) -> bool:
    """True when redis-py ran out of pooled connections on our side; the server's refusal
    ("max number of clients reached") arrives as a reply and reads differently."""
    text = " ".join(str(link) for link in _chain(exc)).lower()
    return "max number of clients" not in text and (
        "too many connections" in text
        or any(isinstance(link, rx.MaxConnectionsError) and not str(link).strip() for link in _chain(exc))
    )


def describe(exc: BaseException) -> str:
    """``Type: message`` of the most telling exception in ``exc``'s chain (a timeout that
    cancelled a retry loop says nothing itself; the error it interrupted does)."""
    for link in _chain(exc):
        if isinstance(link, asyncio.CancelledError) or not str(link).strip():
            continue
        return f"{type(link).__name__}: {str(link)[:200]}"
    return "no reply in time" if isinstance(exc, TimeoutError) else type(exc).__name__


def _dropped_early(exc: BaseException) -> bool:
    text = " ".join(str(link) for link in _chain(exc)).lower()
    return any(
        n in text
        for n in ("closed by server", "connection reset", "connection closed", "error while reading", "protocol error")
    )
