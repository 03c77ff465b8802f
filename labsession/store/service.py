"""RedisService: the one connection to the store, with TLS, bounded retries and masked logs.

What the TypeScript backend's ``redis.service.ts`` does, without its failures: every
operation retries a bounded number of times with jittered exponential backoff and then
fails with :class:`~labsession.errors.RedisUnavailable` inside ``operation_timeout``;
the connection pool reconnects on demand for as long as the process lives, so service
resumes as soon as Redis answers again. There is no in-memory fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from ..errors import LabSessionError, RedisCause, RedisUnavailable
from ..masking import get_logger
from ..settings import Settings
from .classify import classify, is_retryable, unavailable
from .deadline import Deadline
from .mismatch import explain

__all__ = ["RedisHealth", "RedisService", "StoreIdentity"]

log = get_logger(__name__)
T = TypeVar("T")

#: Exceptions that mean "the store did not serve us" rather than "we asked something wrong".
STORE_ERRORS: tuple[type[BaseException], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ReadOnlyError,
    rx.OutOfMemoryError,
    rx.ResponseError,
    OSError,
    TimeoutError,
)


#: What :meth:`RedisService.connect` guards: its first PING.
_CONNECTING = "connect"

#: True inside a guarded block that holds a cluster slot (a nested guard takes no second one).
_HOLDING_SLOT: ContextVar[bool] = ContextVar("labsession_cluster_slot", default=False)


class _Guard(Deadline):
    """The context manager behind :meth:`RedisService.guard`: a :class:`Deadline` of
    ``operation_timeout`` that also translates store errors (a class, not a generator: it
    wraps every operation, and a generator-based one costs a few microseconds more each)."""

    __slots__ = ("_held", "_service", "_token", "_what")

    def __init__(self, service: RedisService, what: str) -> None:
        super().__init__(service.settings.operation_timeout)
        self._service = service
        self._what = what
        self._token: Token[bool] | None = None
        self._held: asyncio.Semaphore | None = None

    async def __aenter__(self) -> _Guard:
        _LAST_FAILURE.set(None)
        self.arm()
        _GUARD.set(self)
        slots = self._service._cluster_slots
        if slots is not None and not _HOLDING_SLOT.get():
            try:  # waits inside the time bound, as the single-server pool does for a connection
                await slots.acquire()
            except BaseException as exc:
                await self.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            self._held, self._token = slots, _HOLDING_SLOT.set(True)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._held is not None and self._token is not None:
            _HOLDING_SLOT.reset(self._token)
            self._held.release()
            self._held = self._token = None
        # Returns None (never swallows): an exception either passes through or is replaced.
        try:
            self.disarm(exc_type, exc)
        except TimeoutError as expired:  # our bound ran out: the block was cancelled
            seen = _LAST_FAILURE.get()
            raise self._service._unavailable(seen or expired, self._what, expired=True) from None
        if exc is None or isinstance(exc, RedisUnavailable):
            return
        if isinstance(exc, rx.ResponseError | rx.RedisClusterException):
            error = unavailable(exc, self._service.settings.endpoint, tls=self._service.settings.tls)
            if error.cause is RedisCause.UNKNOWN:
                return  # a real command error (wrong type, script bug), not an outage
            raise error from None
        if isinstance(exc, STORE_ERRORS):
            raise self._service._unavailable(exc, self._what, expired=False) from None


class _WaitingPool(aioredis.ConnectionPool):
    """redis-py's plain ``ConnectionPool`` with at most ``max_connections`` checked out at
    once, where a checkout beyond them waits up to ``wait_timeout`` seconds for a free slot
    (first come, first served) rather than failing with "Too many connections".

    Built on the plain pool's public ``get_connection`` and ``release``: the slots are
    counted in front of them, and every connection still comes from and goes back to
    redis-py's own checkout (its lock, hooks and release event included). redis-py's
    ``BlockingConnectionPool`` waits as well, but costs about twice the plain pool per
    checkout (``bench/bench_pool.py``), a sixth of a GET's client time.

    :meth:`ensure_connection` returns at once for a connection that is connected and has
    nothing unread; anything else takes redis-py's full check, which reconnects (with
    retries) or raises. redis-py's own check runs a retried ``connect()`` on every checkout.
    """

    def __init__(self, *, wait_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_timeout = wait_timeout
        self._labsession_free = self.max_connections
        self._labsession_waiters: deque[asyncio.Future[None]] = deque()
        #: The connections checked out through :meth:`get_connection`, each holding a slot.
        self._labsession_held: set[Any] = set()

    @property
    def waiting(self) -> int:
        """How many checkouts are waiting for a free slot right now."""
        return len(self._labsession_waiters)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._labsession_free > 0 and not self._labsession_waiters:
            self._labsession_free -= 1
        else:
            await self._wait_for_slot()
        try:
            connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException:
            self._give_slot_back()
            raise
        self._labsession_held.add(connection)
        return connection

    async def ensure_connection(self, connection: Any) -> None:
        if connection.is_connected:
            try:
                if not await connection.can_read():
                    return
            except rx.ConnectionError:
                pass  # can_read disconnected it; the full check connects again
        await super().ensure_connection(connection)

    async def release(self, connection: Any) -> None:
        held = self._labsession_held
        if connection not in held:
            # redis-py's checkout giving back a connection it could not make ready (its
            # failure path calls this too): the slot is still ours, get_connection frees it.
            await super().release(connection)
            return
        held.discard(connection)
        try:
            await super().release(connection)
        finally:
            self._give_slot_back()

    async def _wait_for_slot(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._labsession_waiters.append(waiter)
        # If the operation's own bound ends this wait, the pool, not the server, was the cause.
        noted = _LAST_FAILURE.set(_pool_exhausted())
        try:
            async with asyncio.timeout(self.wait_timeout):
                await waiter
            _LAST_FAILURE.reset(noted)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._give_slot_back()  # handed a slot just as we gave up: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._labsession_waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise _pool_exhausted() from None
            raise

    def _give_slot_back(self) -> None:
        """Hand the slot to the longest waiter, or free it."""
        while self._labsession_waiters:
            waiter = self._labsession_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._labsession_free += 1


def _pool_exhausted() -> rx.MaxConnectionsError:
    """What redis-py's plain pool raises when it has no connection to give (its wording)."""
    return rx.MaxConnectionsError("Too many connections")


try:  # hiredis is a dependency (redis[hiredis]); stay correct without it
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover
    _hiredis_pack = None  # type: ignore[assignment]

#: Commands with more arguments than this are packed by hiredis, in C.
_BIG_COMMAND = 64


class _BoundedReads:
    """Connection mixin, through the public ``pack_command`` and ``read_response`` only.

    - Reading: each reply is bounded by ``read_bound`` seconds (the settings' ``socket_timeout``) with a
      :class:`~labsession.store.deadline.Deadline`. The connection itself is made with no
      ``socket_timeout``: with one, redis-py sends every command under ``asyncio.wait_for``
      (a task per command) and reads under ``asyncio.timeout`` (a timer per reply). A read
      that runs out fails as redis-py's does: disconnected, with its retryable TimeoutError.
      A write has no bound of its own: the operation's bound (:meth:`RedisService.guard`)
      covers it, and a write of ours fits the socket buffers unless the server stops reading.
    - Packing: large commands (an MGET of a whole SCAN batch) are packed by hiredis, in C;
      redis-py's asyncio connection packs in Python at about 1 µs per argument, a quarter
      of the time of listing sessions. Small commands keep redis-py's own packer.
    """

    socket_timeout: float | None

    def __init__(self, *args: Any, read_bound: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_bound = read_bound

    def pack_command(self, *args: Any) -> list[bytes]:
        if (
            len(args) > _BIG_COMMAND
            and _hiredis_pack is not None
            and type(args[0]) is str
            and " " not in args[0]
            and all(type(a) is bytes or type(a) is str for a in args)
        ):
            return [_hiredis_pack(args)]
        packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
        return packed

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - redis-py's own signature, overridden
        **options: Any,
    ) -> Any:
        # A caller's own timeout (pub/sub), or a socket timeout redis-py set itself (its
        # maintenance notifications relax timeouts that way): redis-py's read, as it is. So
        # too inside a guard of this task whose bound ends first (the backend's defaults: 1 s
        # each): the read's own bound could never fire, and arming it costs ~4 µs a command.
        bound = self.read_bound
        guard = _GUARD.get()
        if (
            timeout is not None
            or self.socket_timeout is not None
            or bound is None
            or (guard is not None and guard.covers(bound))
        ):
            response = await super().read_response(disable_decoding, timeout, **options)  # type: ignore[misc]
        else:
            try:
                async with Deadline(self.read_bound):
                    response = await super().read_response(disable_decoding, timeout, **options)  # type: ignore[misc]
            except TimeoutError:
                raise rx.TimeoutError(f"Timeout reading from {self._where()}") from None
        if _LAST_FAILURE.get() is not None:
            _LAST_FAILURE.set(None)  # a reply came: a failure seen before explains nothing later
        return response

    def _where(self) -> str:
        path = getattr(self, "path", None)
        return str(path) if path else f"{getattr(self, 'host', '?')}:{getattr(self, 'port', '?')}"


class _Connection(_BoundedReads, aioredis.Connection):
    pass


class _SSLConnection(_BoundedReads, aioredis.SSLConnection):
    pass


class _UnixConnection(_BoundedReads, aioredis.UnixDomainSocketConnection):
    pass


_CONNECTION_CLASSES: dict[type[Any], type[Any]] = {
    aioredis.Connection: _Connection,
    aioredis.SSLConnection: _SSLConnection,
    aioredis.UnixDomainSocketConnection: _UnixConnection,
}


class _ClassifiedRetry(Retry):
    """redis-py's asyncio ``Retry``, asking :func:`is_retryable` before each new attempt and
    recording each failure in :data:`_LAST_FAILURE` (a reply read afterwards clears it, see
    :meth:`_BoundedReads.read_response`).

    The loop is redis-py's own: the judgement goes in through ``call_with_retry``'s public
    ``is_retryable`` argument, which redis-py's callers leave empty. This returns redis-py's
    coroutine as it is rather than awaiting it in one of its own: it runs around every
    command (and every connect), and a coroutine more costs about a microsecond each time.
    """

    def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> Coroutine[Any, Any, T]:
        judge = _judge if is_retryable is None else _judge_by(is_retryable)
        return super().call_with_retry(do, fail, is_retryable=judge, with_failure_count=with_failure_count)


def _judge(error: Exception) -> bool:
    """Retry ``error``? Recorded when so: the guard reads it if the time bound ends the retries."""
    if not is_retryable(error):
        return False
    _LAST_FAILURE.set(error)
    return True


def _judge_by(retryable: Callable[[Exception], bool]) -> Callable[[Exception], bool]:
    """:func:`_judge`, with a caller's own rule instead of :func:`is_retryable`."""

    def judge(error: Exception) -> bool:
        if not retryable(error):
            return False
        _LAST_FAILURE.set(error)
        return True

    return judge


#: The guard this task entered last (it may have ended since: see :meth:`Deadline.covers`).
_GUARD: ContextVar[_Guard | None] = ContextVar("labsession_guard", default=None)

#: The last error a retry loop of the current task saw. When an operation's time bound runs
#: out in the middle of retrying (often during a backoff sleep), this, not the bare timeout,
#: says why: refused connections must be reported as refused, not as a timeout.
_LAST_FAILURE: ContextVar[BaseException | None] = ContextVar("labsession_last_failure", default=None)


@dataclass(frozen=True, slots=True)
class StoreIdentity:
    """Which Redis this is, and which data in it: the masked endpoint, the server ``run_id``,
    its replication facts, and the keyspace a client reads (database number, key prefix).

    ``None`` means not known: the provider hides it, or an older or other backend does not
    report it. ``replid`` is the replication id of the data set (INFO ``master_replid``): a
    master's own, and on a replica that has synced, the id of the master it follows, so a
    master and its replicas share it while two unrelated servers never do. ``offset`` is the
    replication offset in bytes (``master_repl_offset``); ``link`` is a replica's
    ``master_link_status`` (``"up"``/``"down"``).
    """

    endpoint: str
    run_id: str | None
    role: str | None = None
    replid: str | None = None
    offset: int | None = None
    link: str | None = None
    db: int | None = None
    key_prefix: str | None = None

    def to_dict(self) -> dict[str, str | int | None]:
        """``endpoint`` and ``runId`` always; the other fields only when known (camelCase)."""
        out: dict[str, str | int | None] = {"endpoint": self.endpoint, "runId": self.run_id}
        extra = {
            "role": self.role,
            "replId": self.replid,
            "replOffset": self.offset,
            "replLink": self.link,
            "db": self.db,
            "keyPrefix": self.key_prefix,
        }
        out.update({name: value for name, value in extra.items() if value is not None})
        return out

    @property
    def is_replica(self) -> bool:
        return self.role in ("slave", "replica")


@dataclass(frozen=True, slots=True)
class RedisHealth:
    """What the server says about itself. ``None`` means the provider did not tell us."""

    endpoint: str
    tls: bool
    ping_ms: float
    provider: str
    version: str | None = None
    mode: str | None = None
    role: str | None = None
    run_id: str | None = None
    uptime_seconds: int | None = None
    maxmemory: int | None = None
    maxmemory_policy: str | None = None
    used_memory: int | None = None
    evicted_keys: int | None = None
    expired_keys: int | None = None
    connected_clients: int | None = None
    max_clients: int | None = None
    #: Masters that answered INFO (Redis Cluster only; ``None`` for a single server).
    cluster_nodes: int | None = None
    #: The server's clock minus this machine's, ms (INFO ``server_time_usec``, read on arrival of
    #: the reply, so within one round trip); ``None`` when the server does not tell.
    clock_offset_ms: float | None = None
    #: What could not be read, and why (refused command, hidden INFO section).
    unknown: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


#: URL query options labsession reads itself (``Settings.cluster``); redis-py would hand them to its connections.
_OUR_URL_OPTIONS = frozenset({"cluster"})


def _without_our_options(url: str) -> str:
    """``url`` without :data:`_OUR_URL_OPTIONS` in its query (unchanged when it has none)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(name in _OUR_URL_OPTIONS for name, _ in pairs):
        return url
    kept = [(name, value) for name, value in pairs if name not in _OUR_URL_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(kept)))


class RedisService:
    """An asyncio Redis client built from :class:`Settings`, connected with ``async with``.

    ``client`` is the redis-py client (a ``Redis`` or ``RedisCluster``); use :meth:`guard`
    around operations to get the time bound and :class:`RedisUnavailable` translation.
    """

    def __init__(self, settings: Settings, *, client_name: str | None = None) -> None:
        self.settings = settings
        self.client_name = client_name or settings.client_name
        self._client: Any = None
        #: Cluster only: redis-py's cluster client fails a checkout beyond ``max_connections``
        #: per node at once ("Too many connections") instead of waiting; a guarded block uses
        #: at most one connection per node, so this many slots keep every node within its pool.
        self._cluster_slots: asyncio.Semaphore | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> RedisService:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def connect(self) -> None:
        """Build the client and PING it; raises :class:`RedisUnavailable` once attempts are spent."""
        if self._client is not None:
            return
        s = self.settings
        if s.tls_upgraded:
            log.warning("REDIS_URL uses redis:// for an Upstash host; connecting with TLS (use rediss://)")
        if s.tls and not s.tls_verify:
            log.warning("TLS certificate verification is OFF for %s; do not do this in production", s.endpoint)
        self._client = self._build_client()
        try:
            async with self.guard(_CONNECTING):
                await self.client.ping()
        except RedisUnavailable as exc:
            await self.aclose()
            explained = await explain(exc, s)  # logged once, as exact as it gets
            log.warning("Redis connect failed: %s", explained)
            if explained is exc:
                raise
            raise explained from None
        except rx.ResponseError as exc:
            # A refusal of the handshake (HELLO, AUTH, PING) that no rule knows: still no command error.
            await self.aclose()
            raise unavailable(exc, s.endpoint, tls=s.tls) from None
        log.info("connected to Redis at %s (tls=%s, name=%s)", s.endpoint, s.tls, self.client_name)

    def _build_client(self) -> Any:
        s = self.settings
        retry = _ClassifiedRetry(ExponentialWithJitterBackoff(cap=s.retry_cap, base=s.retry_base), s.retry_attempts - 1)
        url = s.redis_url
        if s.tls_upgraded:
            url = "rediss://" + url.split("://", 1)[1]
        url = _without_our_options(url)
        common: dict[str, Any] = {
            "socket_connect_timeout": s.connect_timeout,
            "socket_timeout": s.socket_timeout,
            "socket_keepalive": True,
            "retry": retry,
            "health_check_interval": s.health_check_interval,
            "client_name": self.client_name,
            "decode_responses": False,
        }
        if s.tls:
            common.update(
                ssl_cert_reqs=ssl.CERT_REQUIRED if s.tls_verify else ssl.CERT_NONE,
                ssl_check_hostname=s.tls_verify,
                ssl_ca_certs=s.ca_cert,
            )
        if s.cluster:
            from redis.asyncio.cluster import RedisCluster

            clean = url.split("?", 1)[0]
            self._cluster_slots = asyncio.Semaphore(s.max_connections)
            return RedisCluster.from_url(clean, max_connections=s.max_connections, **common)
        if s.scheme == "unix":
            common.pop("socket_keepalive")
        # from_url lets the URL's scheme pick the connection class; we pick its subclass.
        options: dict[str, Any] = {**common, **parse_url(url)}
        base = options.get("connection_class", aioredis.Connection)
        options["connection_class"] = _CONNECTION_CLASSES.get(base, base)
        if options["connection_class"] is not base:  # ours bounds reads itself (see _BoundedReads)
            options.update(read_bound=options.get("socket_timeout"), socket_timeout=None)
        pool = _WaitingPool(max_connections=s.max_connections, wait_timeout=s.operation_timeout, **options)
        return aioredis.Redis(connection_pool=pool)

    async def aclose(self) -> None:
        """Close every connection; safe to call twice."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self.settings.cluster:
                await client.aclose()
            else:  # we passed our own pool, which Redis.aclose() leaves open unless told
                await client.aclose(close_connection_pool=True)
        except Exception as exc:  # closing a broken connection must not mask the real error
            log.debug("ignored error while closing Redis client: %s", type(exc).__name__)

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> Any:
        """The redis-py client; raises :class:`LabSessionError` before :meth:`connect`."""
        if self._client is None:
            raise LabSessionError("RedisService is not connected; use 'async with RedisService(...)'")
        return self._client

    # -- bounded operations ------------------------------------------------------------------

    def guard(self, what: str = "operation") -> _Guard:
        """``async with redis.guard("GET"):`` bounds the block by ``operation_timeout`` seconds
        and turns store errors into :class:`RedisUnavailable` (a command error, such as a wrong
        type, is re-raised as it is). Cheap: it runs around every single operation."""
        return _Guard(self, what)

    def _unavailable(self, exc: BaseException, what: str, *, expired: bool) -> RedisUnavailable:
        waited = self.settings.operation_timeout if expired else None
        error = unavailable(exc, self.settings.endpoint, tls=self.settings.tls, waited=waited)
        if what != _CONNECTING:  # connect() logs its own, once it knows the exact cause
            log.warning("Redis %s failed: %s", what, error)
        return error

    async def run(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Await ``operation()`` under :meth:`guard`."""
        async with self.guard(what):
            return await operation()

    async def ping(self) -> float:
        """Round trip of one PING, in milliseconds."""
        async with self.guard("PING"):
            started = time.perf_counter()
            await self.client.ping()
            return (time.perf_counter() - started) * 1000.0

    async def identity(self) -> StoreIdentity:
        """This store's identity from ``INFO server`` and ``INFO replication`` (commands a read-only
        user may run), with the database number and key prefix of these settings. What the
        provider hides is ``None``; on a cluster the replication fields are ``None`` (each shard
        has its own)."""
        info = await self._optional_info("server", {})
        replication = {} if self.settings.cluster else await self._optional_info("replication", {})
        role = _text(replication.get("role"))
        return StoreIdentity(
            self.settings.endpoint,
            _text(info.get("run_id")),
            role=role,
            replid=_text(replication.get("master_replid")),
            offset=_int(replication.get("master_repl_offset")),
            link=_text(replication.get("master_link_status")) if role == "slave" else None,
            db=None if self.settings.cluster else self.settings.db,
            key_prefix=self.settings.key_prefix,
        )

    async def info(self, section: str, unknown: dict[str, str] | None = None) -> dict[str, Any]:
        """INFO ``section`` as a dict (a cluster's masters merged as :meth:`health` merges them), or
        ``{}`` when the server refuses it; the refusal is noted in ``unknown`` under ``"INFO <section>"``.
        One command per server, bounded by ``operation_timeout`` seconds."""
        return await self._optional_info(section, unknown if unknown is not None else {})

    async def _optional_info(self, section: str, unknown: dict[str, str]) -> dict[str, Any]:
        """INFO ``section``, or ``{}`` (noted in ``unknown``) when the server refuses it."""
        async with self.guard(f"INFO {section}"):
            try:
                return await self._info(section)
            except rx.ResponseError as exc:
                if not _refused(exc):
                    raise
                unknown[f"INFO {section}"] = str(exc)[:120]
                return {}

    async def _info(self, section: str) -> dict[str, Any]:
        """One INFO section; on a cluster, from every master, merged by :func:`_merge_nodes`."""
        if not self.settings.cluster:  # a plain dict (commandstats and keyspace hold only dicts: never _first them)
            reply = await self.client.info(section)
            return dict(reply) if isinstance(reply, dict) else {}
        from redis.asyncio.cluster import RedisCluster

        return _merge_nodes(await self.client.info(section, target_nodes=RedisCluster.PRIMARIES))

    async def health(self) -> RedisHealth:
        """PING time and server facts from INFO alone, tolerating providers that hide a section.

        Never ``CONFIG GET``: a read-only ACL user may not run it, and each refusal is a security
        event in the server's ``ACL LOG``. INFO carries the same limits (``maxmemory``,
        ``maxmemory_policy`` in ``memory``; ``maxclients`` in ``clients`` since Redis 7).

        On a cluster, INFO comes from every master (see :func:`_merge_nodes`): the busiest
        node's memory and client count (limits are per node), summed counters, all run ids.
        """
        ping_ms = await self.ping()
        unknown: dict[str, str] = {}
        info: dict[str, Any] = {}
        clock_offset_ms: float | None = None
        for section in ("server", "clients", "memory", "stats", "replication"):
            info.update(await self._optional_info(section, unknown))
            if section == "server" and (server_us := _int(info.get("server_time_usec"))) is not None:
                clock_offset_ms = server_us / 1000 - time.time() * 1000
        upstash = self.settings.is_upstash or "upstash" in str(info.get("server_name", "")).lower()
        provider = "upstash" if upstash else "redis"
        return RedisHealth(
            endpoint=self.settings.endpoint,
            tls=self.settings.tls,
            ping_ms=ping_ms,
            provider=provider,
            version=_text(info.get("redis_version")),
            mode=_text(info.get("redis_mode")) or ("cluster" if self.settings.cluster else None),
            role=_text(info.get("role")),
            run_id=_text(info.get("run_id")),
            uptime_seconds=_int(info.get("uptime_in_seconds")),
            maxmemory=_int(info.get("maxmemory")),
            maxmemory_policy=_text(info.get("maxmemory_policy")),
            used_memory=_int(info.get("used_memory")),
            evicted_keys=_int(info.get("evicted_keys")),
            expired_keys=_int(info.get("expired_keys")),
            connected_clients=_int(info.get("connected_clients")),
            max_clients=_int(info.get("maxclients")),
            cluster_nodes=_int(info.get("cluster_nodes")),
            clock_offset_ms=clock_offset_ms,
            unknown=unknown,
        )

    def __repr__(self) -> str:
        state = "connected" if self._client is not None else "closed"
        return f"RedisService({self.settings.masked_url!r}, tls={self.settings.tls}, {state})"


def _refused(exc: rx.ResponseError) -> bool:
    """True when a reply means "not for you" (unknown/renamed command, no ACL permission):
    a fact the provider hides, not an outage."""
    return classify(exc) in (RedisCause.UNKNOWN, RedisCause.READ_ONLY)


def _first(value: Any) -> dict[str, Any]:
    """INFO replies: a dict, or (cluster) a dict of node -> dict; take the first node's."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return dict(next(iter(value.values())))
    return dict(value) if isinstance(value, dict) else {}


#: Per-node gauges whose limit is per node: a cluster reports its busiest node.
_BUSIEST = ("used_memory", "connected_clients", "blocked_clients")
#: Counters a cluster reports as the sum over its masters.
_SUMMED = ("evicted_keys", "expired_keys", "total_commands_processed", "rejected_connections")


def _merge_nodes(value: Any) -> dict[str, Any]:
    """INFO from several cluster nodes (``{node name: {field: value}}``) as one dict.

    Fields come from the first node, except: :data:`_BUSIEST` gauges take the highest node's
    value, :data:`_SUMMED` counters the sum, ``run_id`` every node's run id sorted and joined
    with commas (so two clients of the same cluster see the same identity), and
    ``cluster_nodes`` says how many nodes answered.
    """
    if not (isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values())):
        return _first(value)
    nodes = [dict(v) for _, v in sorted(value.items(), key=lambda item: str(item[0]))]
    merged = dict(nodes[0])
    for name in _BUSIEST:
        numbers = [n for n in (_int(node.get(name)) for node in nodes) if n is not None]
        if numbers:
            merged[name] = max(numbers)
    for name in _SUMMED:
        numbers = [n for n in (_int(node.get(name)) for node in nodes) if n is not None]
        if numbers:
            merged[name] = sum(numbers)
    run_ids = sorted(t for t in (_text(node.get("run_id")) for node in nodes) if t)
    if run_ids:
        merged["run_id"] = ",".join(run_ids)
    merged["cluster_nodes"] = len(nodes)
    return merged


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
