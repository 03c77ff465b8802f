"""LabSessionService: sessions in Redis, side by side with the TypeScript backend.

Same keys (``session:{id}``), same JSON, same TTLs (``ceil((expiresAt - now) / 1000)`` s,
set in the same command as the value). Better where docs/contract.md says so: reads never write
or delete, the grace period never revives an ended or expired session, extend and end are
atomic across instances (a compare-and-set script on the one key), listing uses SCAN with
one MGET per batch (pipelined GETs on every master of a cluster), never KEYS.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from redis import exceptions as rx

from ..errors import (
    CorruptSession,
    InvalidExtension,
    LabSessionError,
    SessionEnded,
    SessionNotActive,
    SessionNotFound,
)
from ..masking import get_logger, log_id
from ..settings import Settings
from ..store.cluster import cluster_pipeline_read, no_error, node_round_trip, uncertain
from ..store.scan import scan_batches
from ..store.service import RedisService
from .model import LabSession, SessionStatus, check_session_id

__all__ = [
    "ENDED_TTL_SECONDS",
    "MAX_EXTEND_MINUTES",
    "check_extension_minutes",
    "KeyFacts",
    "LabSessionService",
    "SessionRecord",
    "ValidationReason",
    "ValidationResult",
]

log = get_logger(__name__)

#: How long an ended session is kept (``status: "destroyed"``) before Redis expires it, seconds.
ENDED_TTL_SECONDS = 60
#: The most one extend may add, in minutes (one day).
MAX_EXTEND_MINUTES = 24 * 60


def check_extension_minutes(minutes: object, session_id: str = "?") -> int:
    """Return ``minutes`` if it is a whole number from 1 to :data:`MAX_EXTEND_MINUTES`, else
    raise :class:`InvalidExtension` (``True``, floats and numeric strings are refused)."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_EXTEND_MINUTES:
        raise InvalidExtension(session_id, minutes, MAX_EXTEND_MINUTES)
    return minutes


#: Races one update may lose before giving up (each loss means another instance wrote first).
_WATCH_ATTEMPTS = 200
#: Compare-and-set on one key: KEYS[1] is replaced by ARGV[2] with TTL ARGV[3] seconds only
#: while it still holds exactly ARGV[1]; returns 1 when written, 0 when someone got there first.
_CAS_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


#: One read batch: ``(key as Redis returned it, value or None, TTL or None)`` per key; on a
#: single server or a cluster, a value is a :class:`CorruptSession` when the key holds another
#: Redis type.
_Batch = list[tuple[Any, Any, int | None]]
#: Batches requested ahead of the one being parsed (memory: about this many + 1 batches).
_READ_AHEAD = 2


class ValidationReason(StrEnum):
    """Why a session is (in)valid. Only ``OK`` is valid."""

    OK = "ok"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"
    ENDED = "ended"
    NOT_ACTIVE = "not_active"
    CORRUPT = "corrupt"


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The outcome of :meth:`LabSessionService.validate`.

    ``expires_in`` is whole seconds left (``None`` when there is no session);
    ``in_grace`` is True when a not-yet-active session was accepted by the grace period.
    """

    session_id: str
    reason: ValidationReason
    session: LabSession | None = None
    expires_in: int | None = None
    in_grace: bool = False
    detail: str = ""

    @property
    def valid(self) -> bool:
        return self.reason is ValidationReason.OK


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stored key as found by a scan or :meth:`LabSessionService.inspect`.

    Exactly one of ``session`` and ``error`` is set when the key exists. ``ttl`` is seconds
    (-1: no TTL, -2: no key, ``None``: not asked for).
    """

    session_id: str
    key: str
    session: LabSession | None
    error: str | None = None
    ttl: int | None = None
    size: int = 0

    @property
    def exists(self) -> bool:
        return self.session is not None or self.error is not None


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What Redis says about one key: its type (``string`` for a session; ``none`` when gone;
    ``None`` when not told) and its memory in bytes (``None`` when the provider does not say)."""

    type: str | None
    memory_bytes: int | None


def _now_seconds() -> float:
    return time.time()


def _new_id() -> str:
    return str(uuid.uuid4())


class LabSessionService:
    """Create, read, validate, extend, end and list lab sessions.

    ``clock`` returns seconds since the epoch; ``id_factory`` returns a new session id.
    """

    def __init__(
        self,
        redis: RedisService,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = _now_seconds,
        id_factory: Callable[[], str] = _new_id,
    ) -> None:
        self.redis = redis
        self.settings = settings or redis.settings
        self.clock = clock
        self.id_factory = id_factory
        self._prefix = self.settings.key_prefix

    # -- keys and time -------------------------------------------------------------------------

    def key(self, session_id: str) -> str:
        """The Redis key of ``session_id``; raises :class:`InvalidSessionId` first."""
        return self._prefix + check_session_id(session_id)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- create --------------------------------------------------------------------------------

    async def create(
        self,
        user_id: str,
        lab_id: str,
        purchase_id: str,
        *,
        base_url: str,
        terminal_port: int | None = None,
        sandbox_account: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> LabSession:
        """Store a new active session in one ``SET … EX … NX``; never overwrites a key.

        ``base_url`` is the WebSocket origin (``wss://host``); the session's ``webSocketUrl``
        is ``{base_url}/terminal/{sessionId}``.
        """
        now = self.now_ms()
        ttl = self.settings.session_ttl_seconds
        for _ in range(5):
            session_id = check_session_id(self.id_factory())
            session = LabSession(
                session_id=session_id,
                user_id=user_id,
                lab_id=lab_id,
                purchase_id=purchase_id,
                started_at=now,
                created_at=now,
                expires_at=now + ttl * 1000,
                status=SessionStatus.ACTIVE.value,
                terminal_port=terminal_port,
                web_socket_url=f"{base_url.rstrip('/')}/terminal/{session_id}",
                sandbox_account=sandbox_account,
                extra=dict(extra or {}),
            )
            async with self.redis.guard("create"):
                stored = await self.redis.client.set(self.key(session_id), session.to_json(), ex=ttl, nx=True)
            if stored:
                log.info("created session %s for lab %s", log_id(session_id), lab_id)
                return session
            log.warning("session id %s already existed; drawing another", log_id(session_id))
        raise LabSessionError("could not draw an unused session id in 5 attempts; check id_factory")

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, session_id: str) -> LabSession | None:
        """The stored session, or ``None`` when there is no key. One ``GET``; never writes.

        Raises :class:`CorruptSession` when the value is not a session (it is left in place).
        """
        key = self.key(session_id)
        async with self.redis.guard("get"):
            raw = await self._get_raw(session_id, key)
        if raw is None:
            return None
        return LabSession.from_json(raw, session_id=session_id)

    async def validate(self, session_id: str) -> ValidationResult:
        """Apply docs/contract.md's validation rules with one ``GET`` and no writes."""
        check_session_id(session_id)
        try:
            session = await self.get(session_id)
        except CorruptSession as exc:
            return ValidationResult(session_id, ValidationReason.CORRUPT, detail=exc.reason)
        if session is None:
            return ValidationResult(session_id, ValidationReason.NOT_FOUND)
        return self.judge(session)

    def judge(self, session: LabSession) -> ValidationResult:
        """The validation rules on a session already read (used by scans as well)."""
        now = self.now_ms()
        sid = session.session_id
        expires_in = session.expires_in(now)
        if session.status == SessionStatus.DESTROYED:
            return ValidationResult(sid, ValidationReason.ENDED, session, expires_in)
        if session.status == SessionStatus.EXPIRED or session.expires_at <= now:
            return ValidationResult(sid, ValidationReason.EXPIRED, session, 0)
        if session.status == SessionStatus.ACTIVE:
            return ValidationResult(sid, ValidationReason.OK, session, expires_in)
        # Another status (e.g. "creating"): the grace period covers a session being set up.
        if now - session.created_at < self.settings.grace_seconds * 1000:
            return ValidationResult(sid, ValidationReason.OK, session, expires_in, in_grace=True)
        return ValidationResult(
            sid, ValidationReason.NOT_ACTIVE, session, expires_in, detail=f"status {session.status!r}"
        )

    def judge_reply(self, session_id: str, reply: Any) -> ValidationResult:
        """The validation rules on one ``GET`` reply for ``session_id`` (``None``: no key; an error
        from a pipeline run with ``raise_on_error=False``: see :func:`_stored_value`)."""
        try:
            raw = _stored_value(session_id, reply)
            if raw is None:
                return ValidationResult(session_id, ValidationReason.NOT_FOUND)
            return self.judge(LabSession.from_json(raw, session_id=session_id))
        except CorruptSession as exc:
            return ValidationResult(session_id, ValidationReason.CORRUPT, detail=exc.reason)

    async def inspect(self, session_id: str) -> SessionRecord:
        """The raw state of one key: parsed session or parse error, TTL and size (one round trip)."""
        key = self.key(session_id)
        async with self.redis.guard("inspect"):
            async with self.redis.client.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.ttl(key)
                raw, ttl = await pipe.execute(raise_on_error=False)
            ttl = int(_stored_value(session_id, ttl))
            try:
                raw = _stored_value(session_id, raw)
            except CorruptSession as exc:
                return SessionRecord(session_id, key, None, exc.reason, ttl, 0)
        return _record(session_id, key, raw, ttl)

    async def key_facts(self, session_ids: list[str]) -> dict[str, KeyFacts]:
        """The Redis type and memory (bytes, ``MEMORY USAGE``) of each session key, in one round
        trip. Read-only commands a read-only ACL user may run; where the provider refuses
        ``MEMORY USAGE`` the bytes are ``None``."""
        if not session_ids:
            return {}
        keys = [self.key(sid) for sid in session_ids]
        async with self.redis.guard("key facts"):
            async with self.redis.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.type(key)
                    pipe.memory_usage(key)
                replies = await pipe.execute(raise_on_error=False)
        out: dict[str, KeyFacts] = {}
        for index, sid in enumerate(session_ids):
            kind, used = replies[2 * index], replies[2 * index + 1]
            out[sid] = KeyFacts(
                None if isinstance(kind, BaseException) else _text_key(kind),
                used if type(used) is int else None,
            )
        return out

    async def _get_raw(self, session_id: str, key: str) -> Any:
        """``GET key``; raises :class:`CorruptSession` when the key holds another Redis type."""
        try:
            return await self.redis.client.get(key)
        except rx.ResponseError as exc:
            return _stored_value(session_id, exc)

    # -- writes --------------------------------------------------------------------------------

    async def extend(self, session_id: str, minutes: object = 30) -> LabSession:
        """Add ``minutes`` to ``expiresAt`` and move the TTL with it, atomically.

        ``minutes`` must be a whole number from 1 to :data:`MAX_EXTEND_MINUTES`. N concurrent
        extends from any number of instances add exactly N × minutes (compare-and-set).
        Raises :class:`SessionNotFound`, :class:`SessionEnded`, :class:`SessionNotActive`.
        """
        check_session_id(session_id)
        step = check_extension_minutes(minutes, session_id)

        def change(session: LabSession, now: int) -> int:
            verdict = self.judge(session)
            if verdict.reason is ValidationReason.ENDED:
                raise SessionEnded(session_id)
            if not verdict.valid:
                raise SessionNotActive(session_id, session.status if session.expires_at > now else "expired")
            session.expires_at += step * 60_000
            return session.ttl_seconds(now)

        return await self._update(session_id, change, "extend")

    async def end(self, session_id: str) -> LabSession:
        """Mark the session ``destroyed`` with a 60 s TTL. Idempotent: ending it again changes
        nothing. Raises :class:`SessionNotFound` for an unknown id."""

        def change(session: LabSession, now: int) -> int | None:
            if session.status == SessionStatus.DESTROYED:
                return None  # already ended: leave the record and its TTL alone
            session.status = SessionStatus.DESTROYED.value
            return ENDED_TTL_SECONDS

        return await self._update(session_id, change, "end")

    async def _update(
        self,
        session_id: str,
        change: Callable[[LabSession, int], int | None],
        what: str,
    ) -> LabSession:
        """Optimistic read-modify-write, atomic across instances: see :meth:`_update_cas`.

        ``change`` edits the session and returns its new TTL in seconds, or ``None`` to write nothing.
        A single server used WATCH/MULTI/EXEC before; the compare-and-set script takes two round
        trips instead of three and measured 1.7× the throughput, so both kinds of store use it.
        """
        return await self._update_cas(session_id, change, what)

    async def _update_cas(
        self,
        session_id: str,
        change: Callable[[LabSession, int], int | None],
        what: str,
    ) -> LabSession:
        """Optimistic read-modify-write: GET, change, then a compare-and-set script on the one
        key (write only if the value is still byte-for-byte what was read); retry on a race.

        redis-py's asyncio cluster pipeline runs WATCH-mode commands in a helper thread with
        its own event loop, blocking ours; a single-key script is atomic on any server, keeps
        unknown fields exactly (the JSON is rewritten here, not in Lua) and takes two round trips.
        """
        key = self.key(session_id)
        client = self.redis.client
        async with self.redis.guard(what):
            for attempt in range(_WATCH_ATTEMPTS):
                raw = await self._get_raw(session_id, key)
                if raw is None:
                    raise SessionNotFound(session_id)
                session = LabSession.from_json(raw, session_id=session_id)
                ttl = change(session, self.now_ms())
                if ttl is None:
                    return session
                if await client.eval(_CAS_SCRIPT, 1, key, raw, session.to_json(), ttl):
                    return session
                # Another instance changed it between our read and write: read again.
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise LabSessionError(f"{what} of session {log_id(session_id)} lost {_WATCH_ATTEMPTS} races in a row")

    # -- listing -------------------------------------------------------------------------------

    async def scan_records(
        self,
        *,
        batch_size: int = 1000,
        limit: int | None = None,
        with_ttl: bool = False,
        pause: float = 0.0,
    ) -> AsyncGenerator[SessionRecord, None]:
        """Every session key: SCAN in batches of about ``batch_size`` with one pipelined read
        per batch (values, and TTLs when asked). Never KEYS; memory is bounded by the batch.

        ``limit`` stops after that many keys; ``pause`` sleeps that many seconds between
        batches to throttle the load on a production server.
        """
        cut = len(self._prefix)
        # aclosing: a caller that stops early stops the reads ahead now, not when collected.
        async with contextlib.aclosing(self._value_batches(batch_size, limit=limit, with_ttl=with_ttl)) as batches:
            async for batch in batches:
                for key, raw, ttl in batch:
                    if raw is not None:  # None: expired between SCAN and the read
                        text_key = _text_key(key)
                        yield _record(text_key[cut:], text_key, raw, ttl)
                if pause:
                    await asyncio.sleep(pause)

    async def _value_batches(
        self, batch_size: int, *, limit: int | None = None, with_ttl: bool = False
    ) -> AsyncGenerator[_Batch, None]:
        """SCAN batches with their values read, :data:`_READ_AHEAD` batches ahead: a producer
        task runs SCAN and sends each batch's read while the caller parses an earlier batch
        (most of a listing's time), so Redis and the client keep both cores of a small machine
        busy and the caller never waits for a SCAN round trip. Batches come in SCAN order.

        A caller that leaves early cancels the producer, and it also stops at its next step on
        its own: redis-py sends each command under ``asyncio.wait_for``, which on Python 3.11
        drops a cancellation that arrives as the send completes (every cluster command), and a
        producer that went on would wait on the full queue for ever."""
        ready: asyncio.Queue[asyncio.Future[_Batch] | None] = asyncio.Queue(maxsize=_READ_AHEAD)
        in_flight: set[asyncio.Future[_Batch]] = set()
        closed = False  # the caller has left: nothing more is handed over

        async def produce() -> None:
            seen = 0
            try:
                async for keys in self._scan_batches(batch_size):
                    if closed:
                        return
                    if limit is not None:
                        keys = keys[: max(0, limit - seen)]
                    if not keys:
                        break
                    seen += len(keys)
                    read = asyncio.ensure_future(self._read_batch(keys, with_ttl))
                    in_flight.add(read)
                    await ready.put(read)  # waits while _READ_AHEAD batches are unclaimed
                    if limit is not None and seen >= limit:
                        break
            except Exception as exc:  # a failed SCAN reaches the caller in order, after the batches before it
                if not closed:
                    failed: asyncio.Future[_Batch] = asyncio.get_running_loop().create_future()
                    failed.set_exception(exc)
                    await ready.put(failed)
            else:
                if not closed:
                    await ready.put(None)

        producer = asyncio.ensure_future(produce())
        try:
            while (read := await ready.get()) is not None:
                in_flight.discard(read)
                yield await read
        finally:
            closed = True
            pending: list[asyncio.Future[Any]] = [producer, *in_flight]
            for job in pending:
                job.cancel()
            # Collect every outcome (no "exception never retrieved"); our own cancellation still propagates.
            with contextlib.suppress(asyncio.CancelledError, LabSessionError):
                await asyncio.gather(*pending, return_exceptions=True)

    async def _read_batch(self, keys: list[Any], with_ttl: bool) -> _Batch:
        """``(key, value or None, ttl or None)`` for a batch of keys, in one round trip.

        A single server answers one ``MGET`` (plus a ``TTL`` per key when asked, pipelined):
        pipelining a ``GET`` per key costs redis-py ~20 µs of Python per command, and MGET
        made listing several times faster. On a cluster see :meth:`_read_cluster_batch`.
        """
        client = self.redis.client
        async with self.redis.guard("scan read"):
            if self.settings.cluster:
                values, ttls = await self._read_cluster_batch(keys, with_ttl)
            elif with_ttl:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.mget(keys)
                    for key in keys:
                        pipe.ttl(key)
                    replies = await pipe.execute()
                values, ttls = replies[0], [int(t) for t in replies[1:]]
            else:
                values, ttls = await client.mget(keys), None
            if not self.settings.cluster and None in values:
                values = await self._mark_other_types(keys, list(values))
        if ttls is None:
            return [(k, v, None) for k, v in zip(keys, values, strict=True)]
        return list(zip(keys, values, ttls, strict=True))

    async def _mark_other_types(self, keys: list[Any], values: list[Any]) -> list[Any]:
        """``values`` with each ``None`` that stands for a key of another Redis type replaced by
        :class:`CorruptSession`, as ``get`` and a cluster listing report it.

        ``MGET`` answers nil for a hash as for a key that expired since SCAN; one pipelined
        ``TYPE`` for those keys only (usually none) tells them apart. Run inside the caller's guard.
        """
        missing = [i for i, value in enumerate(values) if value is None]
        async with self.redis.client.pipeline(transaction=False) as pipe:
            for i in missing:
                pipe.type(keys[i])
            kinds = await pipe.execute()
        cut = len(self._prefix)
        for i, kind in zip(missing, kinds, strict=True):
            if _text_key(kind) not in ("none", "string"):
                values[i] = _other_type(_text_key(keys[i])[cut:])
        return values

    async def _read_cluster_batch(self, keys: list[Any], with_ttl: bool) -> tuple[list[Any], list[int] | None]:
        """Values (and TTLs) of a batch on a cluster, one round trip per master.

        The keys live in different slots (MGET cannot cross them), so each gets a ``GET``. They
        are grouped by the master that owns their slot in the client's slot map, and each master
        gets its commands in one write on one of its connections (:func:`~labsession.store.cluster.node_round_trip`).
        redis-py's cluster pipeline sends the same, but routes, packs and times out each command
        in Python: reading a batch took about 4 times as long.

        While a slot is being resharded: a key already moved to the importing master (ASK) is read
        there after ``ASKING`` on the same connection (redis-py 8.1 sends its ``ASKING`` on any
        idle connection of that master, so its command bounces until "TTL exhausted"). Every
        other key without a sure reply (MOVED, TRYAGAIN, CLUSTERDOWN, a slot missing from the map,
        a master whose round trip failed) is read again by :func:`~labsession.store.cluster.cluster_pipeline_read`.
        A key of another Redis type is a :class:`CorruptSession` value; an error left is raised.
        """
        client = self.redis.client
        step = 2 if with_ttl else 1
        replies: list[Any] = [None] * (len(keys) * step)
        bound = self.settings.socket_timeout or None
        unsure: list[int] = []  # indexes of the keys to read through redis-py

        async def round_trips(groups: dict[Any, list[int]], asking: bool) -> None:
            async def one(node: Any, indexes: list[int]) -> None:
                try:
                    answers = await node_round_trip(node, [keys[i] for i in indexes], with_ttl, bound, asking)
                except (rx.RedisError, OSError, TimeoutError):  # connection lost or reset, master too slow
                    unsure.extend(indexes)
                    return
                for n, index in enumerate(indexes):
                    replies[index * step : index * step + step] = answers[n * step : n * step + step]

            if len(groups) == 1:  # the usual case: a SCAN batch comes from one master
                await one(*next(iter(groups.items())))
            else:
                await asyncio.gather(*(one(node, indexes) for node, indexes in groups.items()))

        owners: dict[Any, list[int]] = {}
        for index, key in enumerate(keys):
            try:
                owners.setdefault(client.get_node_from_key(key), []).append(index)
            except rx.SlotNotCoveredError:
                unsure.append(index)
        await round_trips(owners, asking=False)

        asked: dict[Any, list[int]] = {}
        for index in range(len(keys)):
            for reply in replies[index * step : index * step + step]:
                if type(reply) is rx.AskError:  # not its subclass MovedError
                    node = client.get_node(host=reply.host, port=reply.port)
                    if node is not None:
                        asked.setdefault(node, []).append(index)
                        break
        if asked:
            await round_trips(asked, asking=True)

        unsure.extend(i for i in range(len(keys)) if any(map(uncertain, replies[i * step : i * step + step])))
        if unsure:
            again = sorted(set(unsure))
            answers = await cluster_pipeline_read(client, [keys[i] for i in again], with_ttl)
            for n, index in enumerate(again):
                replies[index * step : index * step + step] = answers[n * step : n * step + step]
        values = [_listed_value(self._prefix, k, v) for k, v in zip(keys, replies[::step], strict=True)]
        return values, [int(no_error(t)) for t in replies[1::step]] if with_ttl else None

    def _scan_batches(self, batch_size: int) -> AsyncIterator[list[Any]]:
        return scan_batches(self.redis, self._prefix, batch_size)

    async def scan(self, *, batch_size: int = 1000) -> AsyncGenerator[LabSession, None]:
        """Every readable session (corrupt values are skipped; see :meth:`scan_records`)."""
        async with contextlib.aclosing(self.scan_records(batch_size=batch_size)) as records:
            async for record in records:
                if record.session is not None:
                    yield record.session

    async def active_ids(self, *, batch_size: int = 1000) -> list[str]:
        """Ids of the sessions that validate as OK right now (corrupt values are skipped).

        The common case, an active session within its time, is decided on the parsed JSON
        without building a :class:`LabSession`; every other record goes through :meth:`judge`.
        """
        out: list[str] = []
        cut = len(self._prefix)
        async with contextlib.aclosing(self._value_batches(batch_size)) as batches:
            async for batch in batches:
                now = self.now_ms()
                for key, raw, _ in batch:
                    if raw is None:
                        continue
                    sid = _plainly_active(raw, now)
                    if sid is not None:
                        out.append(sid)
                        continue
                    text_key = _text_key(key)  # only here: most keys never need decoding
                    record = _record(text_key[cut:], text_key, raw, None)
                    if record.session is not None and self.judge(record.session).valid:
                        out.append(record.session.session_id)
        return out

    async def count(self, *, batch_size: int = 1000) -> int:
        """How many session keys exist (SCAN only, no values read)."""
        total = 0
        async for keys in self._scan_batches(batch_size):
            total += len(keys)
        return total

    async def sessions_for_user(self, user_id: str, *, batch_size: int = 1000) -> list[LabSession]:
        """Every readable session of ``user_id``."""
        return [s async for s in self.scan(batch_size=batch_size) if s.user_id == user_id]

    def __repr__(self) -> str:
        return f"LabSessionService({self.redis!r}, prefix={self._prefix!r})"


def _plainly_active(raw: bytes | str, now_ms: int) -> str | None:
    """The session id when ``raw`` is an active session whose ``expiresAt`` is ahead and whose
    fields :meth:`LabSession.from_dict` would accept as they are; else ``None`` (the caller
    then applies the full rules, which also handle every odd or corrupt value).

    Parsed by orjson straight from bytes (~1.3 µs for a 650-byte record, against ~3 µs for
    json's C scanner after decoding). orjson accepts no value json refuses; what it refuses
    (NaN, a BOM, ...) goes to the full path, as does a value that is not text at all (a
    cluster listing's :class:`CorruptSession`: orjson refuses any other type with
    ``JSONDecodeError``). Its one lossy reading, integers beyond 64 bits as floats, cannot
    change the answer: only the fields checked here decide, and a float time is not taken
    as plain either, so the full path (json) decides that record.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or data.get("status") != "active":
        return None
    expires_at = data.get("expiresAt")
    if type(expires_at) is not int or expires_at <= now_ms:
        return None
    created_at = data.get("createdAt", expires_at)
    sid = data.get("sessionId")
    if type(created_at) is not int or type(data.get("startedAt", created_at)) is not int or type(sid) is not str:
        return None
    return sid


def _other_type(session_id: str) -> CorruptSession:
    """The error for a session key that holds another Redis type (a hash, a list...)."""
    return CorruptSession(session_id, "the key holds another Redis type, not a string")


def _stored_value(session_id: str, reply: Any) -> Any:
    """A ``GET`` reply (from a pipeline run with ``raise_on_error=False``, or the error a ``GET``
    raised) as the stored value: a key of another Redis type (``WRONGTYPE``) is a corrupt session,
    reported like a value that is not JSON; any other error is raised as it is."""
    if isinstance(reply, rx.ResponseError) and str(reply).startswith("WRONGTYPE"):
        raise _other_type(session_id) from None
    if isinstance(reply, BaseException):
        raise reply
    return reply


def _listed_value(prefix: str, key: Any, reply: Any) -> Any:
    """A cluster listing's ``GET`` reply as the batch's value: a key of another Redis type is a
    :class:`CorruptSession` (reported, not raised: one odd key must not fail the listing)."""
    if not isinstance(reply, BaseException):
        return reply
    try:
        return _stored_value(_text_key(key)[len(prefix) :], reply)
    except CorruptSession as exc:
        return exc


def _text_key(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)


def _record(session_id: str, key: str, raw: bytes | str | CorruptSession | None, ttl: int | None) -> SessionRecord:
    if raw is None:
        return SessionRecord(session_id, key, None, None, ttl, 0)
    if isinstance(raw, CorruptSession):  # a listed key of another Redis type
        return SessionRecord(session_id, key, None, raw.reason, ttl, 0)
    size = len(raw)
    try:
        return SessionRecord(session_id, key, LabSession.from_json(raw, session_id=session_id), None, ttl, size)
    except CorruptSession as exc:
        return SessionRecord(session_id, key, None, exc.reason, ttl, size)
