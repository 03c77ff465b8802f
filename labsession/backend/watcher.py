"""SessionWatcher: notice, within about one poll interval, that an open WebSocket's session ended elsewhere.

Any instance may end a session; the others learn it from Redis. One task per instance reads
every watched session with one pipelined round of ``GET`` s per poll (cheap, works on Upstash,
no keyspace notifications needed) and tells the sockets whose session is no longer valid.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..errors import LabSessionError, RedisUnavailable
from ..masking import get_logger
from ..sessions.service import LabSessionService, ValidationResult
from .errors import store_not_connected
from .loops import every, stop_task

__all__ = ["SessionWatcher", "Verdict"]

log = get_logger(__name__)

#: What a watched socket is told: a :class:`ValidationResult` that is not valid, or the store's error.
Verdict = ValidationResult | RedisUnavailable
_BATCH = 500


class SessionWatcher:
    """Polls the sessions of open WebSockets every ``interval`` seconds.

    :meth:`watch` registers a callback for a session id and returns a function that
    unregisters it. The callback runs at most once per failed check, in the watcher's task.
    """

    def __init__(self, sessions: LabSessionService, interval: float) -> None:
        self.sessions = sessions
        self.interval = interval
        self._watched: dict[str, dict[int, Callable[[Verdict], None]]] = {}
        self._next = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def watch(self, session_id: str, notify: Callable[[Verdict], None]) -> Callable[[], None]:
        self._next += 1
        token = self._next
        self._watched.setdefault(session_id, {})[token] = notify

        def unwatch() -> None:
            callbacks = self._watched.get(session_id)
            if callbacks is not None:
                callbacks.pop(token, None)
                if not callbacks:
                    del self._watched[session_id]

        return unwatch

    @property
    def watched(self) -> int:
        """How many sockets are watched."""
        return sum(len(c) for c in self._watched.values())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="labsession-session-watcher")

    async def stop(self, grace: float = 2.0) -> None:
        """Stop polling; waits up to ``grace`` seconds for a round in flight (then cancels it)."""
        task, self._task = self._task, None
        await stop_task(task, self._stopping, grace)

    async def _run(self) -> None:
        while await every(self.interval, self._stopping):
            try:
                await self.check_once()
            except Exception as exc:  # the watcher must outlive any one bad round
                log.warning("session watcher round failed: %s", type(exc).__name__)

    async def check_once(self) -> None:
        """Read every watched session once and notify the sockets of invalid ones."""
        ids = list(self._watched)
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            try:
                verdicts = await self._judge(batch)
            except RedisUnavailable as exc:
                for session_id in batch:
                    self._notify(session_id, exc)
                continue
            for session_id, verdict in zip(batch, verdicts, strict=True):
                if not verdict.valid:
                    self._notify(session_id, verdict)

    async def _judge(self, batch: list[str]) -> list[ValidationResult]:
        redis = self.sessions.redis
        if not redis.connected:
            raise store_not_connected(redis.settings.endpoint)
        async with redis.guard("watch sessions"):
            async with redis.client.pipeline(transaction=False) as pipe:
                for session_id in batch:
                    pipe.get(self.sessions.key(session_id))
                replies = await pipe.execute(raise_on_error=False)
            # One key of another Redis type is a corrupt session, not a failed round for every socket.
            return [self.sessions.judge_reply(sid, reply) for sid, reply in zip(batch, replies, strict=True)]

    def _notify(self, session_id: str, verdict: Verdict) -> None:
        for notify in list(self._watched.get(session_id, {}).values()):
            with contextlib.suppress(LabSessionError):
                notify(verdict)
