"""Session explorer: an ipywidgets panel to find, inspect and (when allowed) extend or end sessions.

::

    explorer = SessionExplorer(LabSessionService(redis), read_only=True)
    await explorer.refresh()
    explorer          # displays the panel in a notebook

Search by session id (a whole id reads one key) or by user id (a bounded SCAN); the list shows
each session's status and a TTL bar; the detail view shows the record **redacted** (secret-named
fields masked). Extend and end buttons exist only with ``read_only=False`` and act only after
a confirmation.

Widget callbacks never block the kernel: each one schedules a task on the event loop the
panel was created on (the kernel's) and returns at once; errors are shown in the panel's
status line (masked), never raised into the kernel. :meth:`SessionExplorer.idle` waits for
the scheduled work (for tests and scripted use).
"""

from __future__ import annotations

import asyncio
import html
import json
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ipywidgets as w

from ..errors import LabSessionError
from ..masking import get_logger, mask_text
from ..sessions.model import check_session_id
from ..sessions.service import MAX_EXTEND_MINUTES, LabSessionService, SessionRecord, ValidationReason

__all__ = ["ExplorerRow", "SessionExplorer", "format_ttl"]

log = get_logger(__name__)

_REASON_STYLE: dict[str, tuple[str, str]] = {
    ValidationReason.OK.value: ("active", "#1a7f37"),
    ValidationReason.EXPIRED.value: ("expired", "#6e7781"),
    ValidationReason.ENDED.value: ("ended", "#cf222e"),
    ValidationReason.NOT_ACTIVE.value: ("not active", "#9a6700"),
    ValidationReason.CORRUPT.value: ("corrupt", "#8250df"),
}
_ORDER = {r: i for i, r in enumerate(_REASON_STYLE)}


def _looks_like_uuid(text: str) -> bool:
    """A whole UUID: no prefix of a longer id and no user id, so a miss needs no listing."""
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def format_ttl(seconds: int | None) -> str:
    """A TTL in seconds as ``1h 59m``, ``4m 05s`` or ``12s``; ``no TTL`` for -1, ``gone`` for -2, ``-`` for ``None``."""
    if seconds is None:
        return "-"
    if seconds == -1:
        return "no TTL"
    if seconds < 0:
        return "gone"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class ExplorerRow:
    """One line of the list: what is shown about a session (ids and user are not secret; nothing else is kept)."""

    session_id: str
    user_id: str
    lab_id: str
    status: str
    reason: str
    ttl: int | None
    expires_at: int | None

    @property
    def label(self) -> str:
        return _REASON_STYLE.get(self.reason, (self.reason, ""))[0]


class SessionExplorer:
    """The explorer panel over ``sessions``.

    ``read_only`` (default True) leaves out the extend and end controls entirely; ``limit`` caps
    the rows listed and ``scan_limit`` the keys a search by user may read (a production store
    can hold millions); ``extend_minutes`` is the default extension. ``ttl_scale_seconds`` is
    a full TTL bar (default: the configured session length).
    """

    def __init__(
        self,
        sessions: LabSessionService,
        *,
        read_only: bool = True,
        limit: int = 50,
        scan_limit: int = 10_000,
        extend_minutes: int = 30,
        ttl_scale_seconds: int | None = None,
    ) -> None:
        self.sessions = sessions
        self.read_only = read_only
        self.limit = limit
        self.scan_limit = scan_limit
        self.ttl_scale = ttl_scale_seconds or sessions.settings.session_ttl_seconds
        self.rows: list[ExplorerRow] = []
        self.selected: str | None = None
        self.last_error: str | None = None
        self.truncated = False
        self._pending: set[asyncio.Future[Any]] = set()
        self._confirm_action: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._generation = 0
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

        self.query = w.Text(placeholder="session id, id prefix or user id (empty: all)", description="Search",
                            layout=w.Layout(width="420px"))
        self.query.add_class("labsession-query")
        self.search_button = w.Button(description="Search", icon="search", layout=w.Layout(width="100px"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="100px"))
        self.search_button.add_class("labsession-search")
        self.refresh_button.add_class("labsession-refresh")
        self.status = w.HTML()
        self.status.add_class("labsession-status")
        self.list_box = w.VBox()
        self.list_box.add_class("labsession-list")
        self.detail = w.HTML("<i>Select a session to see its record (redacted).</i>")
        self.detail.add_class("labsession-detail")
        self.confirm_box = w.HBox()
        self.confirm_box.add_class("labsession-confirm")

        self.extend_minutes: w.BoundedIntText | None = None
        self.extend_button: w.Button | None = None
        self.end_button: w.Button | None = None
        actions: list[w.Widget] = []
        if not read_only:
            self.extend_minutes = w.BoundedIntText(value=extend_minutes, min=1, max=MAX_EXTEND_MINUTES,
                                                   description="minutes", layout=w.Layout(width="170px"))
            self.extend_button = w.Button(description="Extend…", icon="clock-o", disabled=True)
            self.end_button = w.Button(description="End session…", icon="stop", button_style="danger",
                                       disabled=True)
            self.extend_button.add_class("labsession-extend")
            self.end_button.add_class("labsession-end")
            self.extend_button.on_click(lambda _: self.request_extend())
            self.end_button.on_click(lambda _: self.request_end())
            actions = [self.extend_minutes, self.extend_button, self.end_button]
        self.actions = w.HBox(actions)

        self.search_button.on_click(lambda _: self.schedule(self.refresh()))
        self.refresh_button.on_click(lambda _: self.schedule(self.refresh()))
        self.query.continuous_update = False
        self.query.observe(lambda _: self.schedule(self.refresh()), names="value")

        mode = "read-only" if read_only else "read-write: extend and end ask for confirmation"
        title = w.HTML(f"<b>Session explorer</b> — {html.escape(sessions.settings.endpoint)} "
                       f"<span style='color:#6e7781'>({mode})</span>")
        self.panel = w.VBox([
            title,
            w.HBox([self.query, self.search_button, self.refresh_button]),
            self.status,
            self.list_box,
            self.detail,
            self.actions,
            self.confirm_box,
        ])
        self.panel.add_class("labsession-explorer")

    # -- display --------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.panel._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        endpoint = self.sessions.settings.endpoint
        return f"SessionExplorer({endpoint!r}, read_only={self.read_only}, rows={len(self.rows)})"

    # -- scheduling -----------------------------------------------------------------------------

    def schedule(self, work: Coroutine[Any, Any, None]) -> asyncio.Future[Any]:
        """Run ``work`` as a task on the panel's event loop and return at once (for widget callbacks).

        On the loop's own thread the task is created directly; from any other thread (or with no
        running loop) it is handed over thread-safely. Failures end up in the status line.
        """
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop or running
        if loop is None:
            work.close()
            raise LabSessionError("the session explorer needs a running event loop (create it in a notebook cell)")
        future: asyncio.Future[Any]
        if running is loop:
            future = loop.create_task(self._guarded(work))
        else:
            future = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._guarded(work), loop), loop=loop)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except LabSessionError as exc:
            self._error(str(exc))
        except Exception as exc:  # a widget callback must never take the kernel down
            log.warning("session explorer action failed: %s", type(exc).__name__)
            self._error(f"unexpected {type(exc).__name__}: {mask_text(str(exc))[:200]}")

    async def idle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait (at most ``timeout`` seconds) until every scheduled task has finished."""
        async with asyncio.timeout(timeout):
            while self._pending:
                await asyncio.gather(*list(self._pending), return_exceptions=True)

    # -- messages -------------------------------------------------------------------------------

    def _error(self, text: str) -> None:
        self.last_error = mask_text(text)
        self.status.value = f"<span style='color:#cf222e'>⚠ {html.escape(self.last_error)}</span>"

    def _info(self, text: str) -> None:
        self.last_error = None
        self.status.value = html.escape(text)

    # -- loading --------------------------------------------------------------------------------

    def _row(self, record: SessionRecord) -> ExplorerRow:
        if record.session is None:
            return ExplorerRow(record.session_id, "", "", "?", ValidationReason.CORRUPT.value, record.ttl, None)
        s = record.session
        verdict = self.sessions.judge(s)
        return ExplorerRow(s.session_id, s.user_id, s.lab_id, s.status, verdict.reason.value, record.ttl,
                           s.expires_at)

    async def _find(self, text: str) -> list[SessionRecord]:
        text = text.strip()
        self.truncated = False
        if text:
            try:
                check_session_id(text)
            except ValueError:
                pass
            else:  # an exact id is one GET; a miss may still be a user id or an id prefix
                record = await self.sessions.inspect(text)
                if record.exists or _looks_like_uuid(text):
                    return [record] if record.exists else []
        found: list[SessionRecord] = []
        read = 0
        async for record in self.sessions.scan_records(batch_size=500, limit=self.scan_limit, with_ttl=True):
            read += 1
            if text and not (record.session_id.startswith(text)
                             or (record.session is not None and record.session.user_id == text)):
                continue
            found.append(record)
            if len(found) >= self.limit:
                self.truncated = True
                break
        if read >= self.scan_limit:
            self.truncated = True
        return found

    async def refresh(self) -> None:
        """Run the current search again and redraw the list (and the selected session's detail)."""
        self._generation += 1
        generation = self._generation
        self._info("loading…")
        records = await self._find(self.query.value)
        if generation != self._generation:
            return  # a newer search started meanwhile; its result wins
        rows = sorted((self._row(r) for r in records),
                      key=lambda r: (_ORDER.get(r.reason, 9), -(r.expires_at or 0)))
        self.rows = rows
        self.list_box.children = [self._row_widget(r) for r in rows]
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.label] = counts.get(row.label, 0) + 1
        summary = ", ".join(f"{n} {label}" for label, n in counts.items()) or "no session"
        more = " (more not shown: narrow the search)" if self.truncated else ""
        self._info(f"{len(rows)} session(s): {summary}{more} — refreshed {time.strftime('%H:%M:%S')}")
        if self.selected is not None:
            await self.select(self.selected)

    def _row_widget(self, row: ExplorerRow) -> w.HBox:
        label, colour = _REASON_STYLE.get(row.reason, (row.reason, "#6e7781"))
        open_button = w.Button(description=row.session_id[:8] + "…", tooltip=row.session_id,
                               layout=w.Layout(width="110px"))
        open_button.add_class("labsession-open")
        open_button.on_click(lambda _, sid=row.session_id: self.schedule(self.select(sid)))
        badge = w.HTML(f"<span style='display:inline-block;min-width:80px;color:white;background:{colour};"
                       f"border-radius:4px;padding:0 6px;text-align:center'>{html.escape(label)}</span>",
                       layout=w.Layout(width="95px"))
        badge.add_class("labsession-badge")
        who = w.HTML(f"{html.escape(row.user_id or '?')} · {html.escape(row.lab_id or '?')}",
                     layout=w.Layout(width="220px"))
        ttl = row.ttl if row.ttl is not None and row.ttl >= 0 else 0
        fraction = ttl / max(self.ttl_scale, ttl, 1)
        style = "success" if fraction > 0.25 else "warning" if fraction > 0.05 else "danger"
        bar = w.FloatProgress(value=ttl, min=0, max=max(self.ttl_scale, ttl, 1), bar_style=style,
                              description="TTL", layout=w.Layout(width="260px"))
        bar.add_class("labsession-ttl")
        left = w.Label(format_ttl(row.ttl), layout=w.Layout(width="80px"))
        line = w.HBox([open_button, badge, who, bar, left])
        line.add_class("labsession-row")
        return line

    async def select(self, session_id: str) -> None:
        """Show ``session_id``'s record, redacted, with its TTL and what validation says."""
        self.selected = session_id
        self._cancel_confirm()
        record = await self.sessions.inspect(session_id)
        self.detail.value = self._detail_html(record)
        reason = self.sessions.judge(record.session).reason if record.session is not None else None
        if self.extend_button is not None:
            self.extend_button.disabled = reason is not ValidationReason.OK
        if self.end_button is not None:
            self.end_button.disabled = reason in (None, ValidationReason.ENDED)

    def _detail_html(self, record: SessionRecord) -> str:
        sid = html.escape(record.session_id)
        if not record.exists:
            return f"<p><b>{sid}</b>: no such key (never existed, expired by TTL or evicted).</p>"
        if record.session is None:
            return (f"<p><b>{sid}</b>: the stored value is not a session ({html.escape(record.error or '')}); "
                    f"{record.size} bytes, TTL {format_ttl(record.ttl)}. It is left in place.</p>")
        s = record.session
        verdict = self.sessions.judge(s)
        now = self.sessions.now_ms()
        facts = [
            ("validation", verdict.reason.value + (" (grace period)" if verdict.in_grace else "")),
            ("TTL", f"{format_ttl(record.ttl)} ({record.ttl} s)"),
            ("expiresAt", f"{_iso(s.expires_at)} ({(s.expires_at - now) / 1000:+.0f} s)"),
            ("createdAt", f"{_iso(s.created_at)} (age {(now - s.created_at) / 1000:.0f} s)"),
        ]
        table = "".join(f"<tr><td style='text-align:left'><b>{html.escape(k)}</b></td>"
                        f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in facts)
        body = html.escape(json.dumps(s.redacted(), indent=2, ensure_ascii=False))
        return (f"<p><b>Session {sid}</b></p><table>{table}</table>"
                f"<pre style='max-height:260px;overflow:auto;background:#f6f8fa;padding:6px'>{body}</pre>")

    # -- changes (read_only=False only) ---------------------------------------------------------

    def _ask(self, question: str, action: Callable[[], Coroutine[Any, Any, None]], verb: str) -> None:
        self._confirm_action = action
        yes = w.Button(description=verb, button_style="danger", icon="check")
        no = w.Button(description="Cancel", icon="times")
        yes.add_class("labsession-confirm-yes")
        no.add_class("labsession-confirm-no")
        yes.on_click(lambda _: self.schedule(self.confirm()))
        no.on_click(lambda _: self._cancel_confirm())
        self.confirm_box.children = [w.HTML(f"<b>{html.escape(question)}</b>"), yes, no]

    def _cancel_confirm(self) -> None:
        self._confirm_action = None
        self.confirm_box.children = []

    def _require_writable(self) -> str:
        if self.read_only:
            raise LabSessionError("the explorer is read-only: create it with read_only=False to change sessions")
        if self.selected is None:
            raise LabSessionError("select a session first")
        return self.selected

    def request_extend(self) -> None:
        """Ask for confirmation to extend the selected session by the minutes entered."""
        try:
            sid = self._require_writable()
        except LabSessionError as exc:
            self._error(str(exc))
            return
        minutes = int(self.extend_minutes.value) if self.extend_minutes is not None else 30

        async def extend() -> None:
            session = await self.sessions.extend(sid, minutes)
            await self.refresh()
            self._info(f"extended {sid[:8]}… by {minutes} min: now expires {_iso(session.expires_at)}")

        self._ask(f"Extend session {sid[:8]}… by {minutes} minutes?", extend, "Yes, extend")

    def request_end(self) -> None:
        """Ask for confirmation to end the selected session (kept as ended for 60 s, then gone)."""
        try:
            sid = self._require_writable()
        except LabSessionError as exc:
            self._error(str(exc))
            return

        async def end() -> None:
            await self.sessions.end(sid)
            await self.refresh()
            self._info(f"ended {sid[:8]}…: its WebSocket lookups now fail; the record expires in 60 s")

        self._ask(f"End session {sid[:8]}…? The user's terminal will be refused.", end, "Yes, end it")

    async def confirm(self) -> None:
        """Carry out the action waiting for confirmation (nothing when none is)."""
        action, self._confirm_action = self._confirm_action, None
        self.confirm_box.children = []
        if action is None:
            return
        if self.read_only:  # defence in depth: no action can be queued on a read-only panel
            raise LabSessionError("the explorer is read-only")
        await action()
