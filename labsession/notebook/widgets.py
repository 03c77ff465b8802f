"""Session explorer: an ipywidgets panel to find, inspect and (when allowed) extend or end sessions.

::

    explorer = SessionExplorer(LabSessionService(redis), read_only=True)
    await explorer.refresh()
    explorer          # displays the panel in a notebook

Search by session id (a whole id reads one key), id prefix or user id (a bounded SCAN), and
narrow the list with a glob on the session id (``*``, ``?``, ``[...]``). The list shows each
session's status, a TTL bar, the key's Redis type and memory; a click on a column heading sorts
by it (again: the other way). The selected row is highlighted and its record shown **redacted**
(secret-named fields masked); a new search clears it. Extend and end buttons exist only with
``read_only=False``, act only after a confirmation shown next to them, and their result appears
there too, after every figure was read again.

Widget callbacks never block the kernel: each one schedules a task on the event loop the
panel was created on (the kernel's) and returns at once; errors are shown in the panel's
status line (masked), never raised into the kernel. :meth:`SessionExplorer.idle` waits for
the scheduled work (for tests and scripted use).
"""

from __future__ import annotations

import asyncio
import fnmatch
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
from ..sessions.service import MAX_EXTEND_MINUTES, KeyFacts, LabSessionService, SessionRecord, ValidationReason

__all__ = ["ExplorerRow", "SessionExplorer", "format_bytes", "format_ttl"]

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


def format_bytes(count: int | None) -> str:
    """Bytes as ``512 B``, ``1.4 KiB`` or ``2.0 MiB``; ``-`` for ``None``."""
    if count is None:
        return "-"
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


#: Sortable columns: heading, width and the key a row sorts by (missing values last).
_COLUMNS: dict[str, tuple[str, str, Callable[[ExplorerRow], Any]]] = {}


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
    key_type: str | None = None
    memory_bytes: int | None = None

    @property
    def label(self) -> str:
        return _REASON_STYLE.get(self.reason, (self.reason, ""))[0]


_COLUMNS.update(
    {
        "session": ("Session", "110px", lambda r: r.session_id),
        "status": ("Status", "95px", lambda r: _ORDER.get(r.reason, 9)),
        "user": ("User · lab", "220px", lambda r: (r.user_id, r.lab_id)),
        "ttl": ("TTL", "340px", lambda r: -1 if r.ttl is None or r.ttl < 0 else r.ttl),
        "type": ("Type", "70px", lambda r: r.key_type or ""),
        "memory": ("Memory", "80px", lambda r: -1 if r.memory_bytes is None else r.memory_bytes),
    }
)


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
        #: The column the list is sorted by (see ``_COLUMNS``; ``None``: status, then expiry) and its direction.
        self.sort_by: str | None = None
        self.descending = False
        #: The list's line widgets by session id, in the order shown (the selected one has a blue border).
        self.row_widgets: dict[str, w.HBox] = {}
        self.last_error: str | None = None
        self.truncated = False
        self._pending: set[asyncio.Future[Any]] = set()
        self._confirm_action: Callable[[], Coroutine[Any, Any, None]] | None = None
        self._generation = 0
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

        self.query = w.Text(
            placeholder="session id, id prefix or user id (empty: all)",
            description="Search",
            layout=w.Layout(width="420px"),
        )
        self.query.add_class("labsession-query")
        self.glob = w.Text(
            placeholder="glob on the session id: 3f0*, *-test-*", description="Filter", layout=w.Layout(width="300px")
        )
        self.glob.add_class("labsession-glob")
        self.search_button = w.Button(description="Search", icon="search", layout=w.Layout(width="100px"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="100px"))
        self.search_button.add_class("labsession-search")
        self.refresh_button.add_class("labsession-refresh")
        self.status = w.HTML()
        self.status.add_class("labsession-status")
        self.list_box = w.VBox()
        self.list_box.add_class("labsession-list")
        self.headings: dict[str, w.Button] = {}
        for name, (heading, width, _) in _COLUMNS.items():
            button = w.Button(description=heading, tooltip=f"sort by {heading.lower()}", layout=w.Layout(width=width))
            button.add_class("labsession-sort")
            button.add_class(f"labsession-sort-{name}")
            button.on_click(lambda _, column=name: self.sort(column))
            self.headings[name] = button
        self.heading_row = w.HBox(list(self.headings.values()))
        self.detail = w.HTML("<i>Select a session to see its record (redacted).</i>")
        self.detail.add_class("labsession-detail")
        self.confirm_box = w.HBox()
        self.confirm_box.add_class("labsession-confirm")
        #: The outcome of the last extend or end, next to the buttons that asked for it.
        self.action_result = w.HTML()
        self.action_result.add_class("labsession-action-result")

        self.extend_minutes: w.BoundedIntText | None = None
        self.extend_button: w.Button | None = None
        self.end_button: w.Button | None = None
        actions: list[w.Widget] = []
        if not read_only:
            self.extend_minutes = w.BoundedIntText(
                value=extend_minutes,
                min=1,
                max=MAX_EXTEND_MINUTES,
                description="minutes",
                layout=w.Layout(width="170px"),
            )
            self.extend_button = w.Button(description="Extend…", icon="clock-o", disabled=True)
            self.end_button = w.Button(description="End session…", icon="stop", button_style="danger", disabled=True)
            self.extend_button.add_class("labsession-extend")
            self.end_button.add_class("labsession-end")
            self.extend_button.on_click(lambda _: self.request_extend())
            self.end_button.on_click(lambda _: self.request_end())
            actions = [self.extend_minutes, self.extend_button, self.end_button, self.confirm_box, self.action_result]
        self.actions = w.HBox(actions)

        self.search_button.on_click(lambda _: self.schedule(self.search()))
        self.refresh_button.on_click(lambda _: self.schedule(self.refresh()))
        self.query.continuous_update = False
        self.query.observe(lambda _: self.schedule(self.search()), names="value")
        self.glob.continuous_update = False
        self.glob.observe(lambda _: self.schedule(self.search()), names="value")

        mode = "read-only" if read_only else "read-write: extend and end ask for confirmation"
        title = w.HTML(
            f"<b>Session explorer</b> — {html.escape(sessions.settings.endpoint)} "
            f"<span style='color:#6e7781'>({mode})</span>"
        )
        self.panel = w.VBox(
            [
                title,
                w.HBox([self.query, self.glob, self.search_button, self.refresh_button]),
                self.status,
                self.heading_row,
                self.list_box,
                self.detail,
                self.actions,
            ]
        )
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

    def _done(self, text: str) -> None:
        """An action's result: next to the buttons that asked for it, and on the status line."""
        self.action_result.value = f"<span style='color:#1a7f37'>✔ {html.escape(text)}</span>"
        self._info(text)

    # -- loading --------------------------------------------------------------------------------

    def _row(self, record: SessionRecord, facts: KeyFacts | None) -> ExplorerRow:
        kind = facts.type if facts else None
        memory = facts.memory_bytes if facts else None
        if record.session is None:
            return ExplorerRow(
                record.session_id, "", "", "?", ValidationReason.CORRUPT.value, record.ttl, None, kind, memory
            )
        s = record.session
        verdict = self.sessions.judge(s)
        return ExplorerRow(
            s.session_id, s.user_id, s.lab_id, s.status, verdict.reason.value, record.ttl, s.expires_at, kind, memory
        )

    async def _find(self, text: str, glob: str = "") -> list[SessionRecord]:
        text = text.strip()
        glob = glob.strip()
        self.truncated = False
        if text:
            try:
                check_session_id(text)
            except ValueError:
                pass
            else:  # an exact id is one GET; a miss may still be a user id or an id prefix
                record = await self.sessions.inspect(text)
                if record.exists or _looks_like_uuid(text):
                    keep = record.exists and (not glob or fnmatch.fnmatchcase(record.session_id, glob))
                    return [record] if keep else []
        found: list[SessionRecord] = []
        read = 0
        async for record in self.sessions.scan_records(batch_size=500, limit=self.scan_limit, with_ttl=True):
            read += 1
            if text and not (
                record.session_id.startswith(text) or (record.session is not None and record.session.user_id == text)
            ):
                continue
            if glob and not fnmatch.fnmatchcase(record.session_id, glob):
                continue
            found.append(record)
            if len(found) >= self.limit:
                self.truncated = True
                break
        if read >= self.scan_limit:
            self.truncated = True
        return found

    async def search(self) -> None:
        """A new search: the selection and its detail are cleared, then the list is read again."""
        self.selected = None
        self.detail.value = "<i>Select a session to see its record (redacted).</i>"
        self.action_result.value = ""
        self._cancel_confirm()
        self._set_actions(None)
        await self.refresh()

    async def refresh(self) -> None:
        """Run the current search again and redraw the list (and the selected session's detail)."""
        self._generation += 1
        generation = self._generation
        self._info("loading…")
        records = await self._find(self.query.value, self.glob.value)
        facts = await self.sessions.key_facts([r.session_id for r in records]) if records else {}
        if generation != self._generation:
            return  # a newer search started meanwhile; its result wins
        self.rows = [self._row(r, facts.get(r.session_id)) for r in records]
        self._draw_rows()
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.label] = counts.get(row.label, 0) + 1
        summary = ", ".join(f"{n} {label}" for label, n in counts.items()) or "no session"
        more = " (more not shown: narrow the search)" if self.truncated else ""
        self._info(f"{len(self.rows)} session(s): {summary}{more} — refreshed {time.strftime('%H:%M:%S')}")
        if self.selected is not None:
            await self.select(self.selected)

    def sort(self, column: str) -> None:
        """Sort the list by ``column`` (a key of ``_COLUMNS``); the same column again reverses it."""
        if column not in _COLUMNS:
            raise LabSessionError(f"no column {column!r} to sort by; columns: {', '.join(_COLUMNS)}")
        self.descending = not self.descending if self.sort_by == column else column in ("ttl", "memory")
        self.sort_by = column
        self._draw_rows()

    def _draw_rows(self) -> None:
        if self.sort_by is None:
            rows = sorted(self.rows, key=lambda r: (_ORDER.get(r.reason, 9), -(r.expires_at or 0)))
        else:
            rows = sorted(self.rows, key=_COLUMNS[self.sort_by][2], reverse=self.descending)
        self.rows = rows
        for name, button in self.headings.items():
            arrow = (" ▼" if self.descending else " ▲") if name == self.sort_by else ""
            button.description = _COLUMNS[name][0] + arrow
        self.row_widgets = {r.session_id: self._row_widget(r) for r in rows}
        self.list_box.children = list(self.row_widgets.values())
        self._highlight()

    def _highlight(self) -> None:
        """Mark the selected row (a border and the ``labsession-selected`` class), unmark the rest."""
        for sid, line in self.row_widgets.items():
            if sid == self.selected:
                line.add_class("labsession-selected")
                line.layout.border = "2px solid #0969da"
            else:
                line.remove_class("labsession-selected")
                line.layout.border = "2px solid transparent"

    def _row_widget(self, row: ExplorerRow) -> w.HBox:
        label, colour = _REASON_STYLE.get(row.reason, (row.reason, "#6e7781"))
        open_button = w.Button(
            description=row.session_id[:8] + "…", tooltip=row.session_id, layout=w.Layout(width="110px")
        )
        open_button.add_class("labsession-open")
        open_button.on_click(lambda _, sid=row.session_id: self.schedule(self.select(sid)))
        badge = w.HTML(
            f"<span style='display:inline-block;min-width:80px;color:white;background:{colour};"
            f"border-radius:4px;padding:0 6px;text-align:center'>{html.escape(label)}</span>",
            layout=w.Layout(width="95px"),
        )
        badge.add_class("labsession-badge")
        who = w.HTML(
            f"{html.escape(row.user_id or '?')} · {html.escape(row.lab_id or '?')}", layout=w.Layout(width="220px")
        )
        ttl = row.ttl if row.ttl is not None and row.ttl >= 0 else 0
        fraction = ttl / max(self.ttl_scale, ttl, 1)
        style = "success" if fraction > 0.25 else "warning" if fraction > 0.05 else "danger"
        bar = w.FloatProgress(
            value=ttl,
            min=0,
            max=max(self.ttl_scale, ttl, 1),
            bar_style=style,
            description="TTL",
            layout=w.Layout(width="260px"),
        )
        bar.add_class("labsession-ttl")
        left = w.Label(format_ttl(row.ttl), layout=w.Layout(width="80px"))
        kind = w.Label(row.key_type or "-", layout=w.Layout(width="70px"))
        kind.add_class("labsession-type")
        memory = w.Label(format_bytes(row.memory_bytes), layout=w.Layout(width="80px"))
        memory.add_class("labsession-memory")
        line = w.HBox([open_button, badge, who, bar, left, kind, memory])
        line.add_class("labsession-row")
        return line

    async def select(self, session_id: str) -> None:
        """Show ``session_id``'s record, redacted, with its TTL and what validation says."""
        if session_id != self.selected:
            self.action_result.value = ""
        self.selected = session_id
        self._highlight()
        self._cancel_confirm()
        record = await self.sessions.inspect(session_id)
        self.detail.value = self._detail_html(record)
        self._set_actions(self.sessions.judge(record.session).reason if record.session is not None else None)

    def _set_actions(self, reason: ValidationReason | None) -> None:
        """Enable extend for an active session and end for any session not ended; nothing selected: neither."""
        if self.extend_button is not None:
            self.extend_button.disabled = reason is not ValidationReason.OK
        if self.end_button is not None:
            self.end_button.disabled = reason in (None, ValidationReason.ENDED)

    def _detail_html(self, record: SessionRecord) -> str:
        sid = html.escape(record.session_id)
        if not record.exists:
            return f"<p><b>{sid}</b>: no such key (never existed, expired by TTL or evicted).</p>"
        if record.session is None:
            return (
                f"<p><b>{sid}</b>: the stored value is not a session ({html.escape(record.error or '')}); "
                f"{record.size} bytes, TTL {format_ttl(record.ttl)}. It is left in place.</p>"
            )
        s = record.session
        verdict = self.sessions.judge(s)
        now = self.sessions.now_ms()
        facts = [
            ("validation", verdict.reason.value + (" (grace period)" if verdict.in_grace else "")),
            ("TTL", f"{format_ttl(record.ttl)} ({record.ttl} s)"),
            ("expiresAt", f"{_iso(s.expires_at)} ({(s.expires_at - now) / 1000:+.0f} s)"),
            ("createdAt", f"{_iso(s.created_at)} (age {(now - s.created_at) / 1000:.0f} s)"),
        ]
        table = "".join(
            f"<tr><td style='text-align:left'><b>{html.escape(k)}</b></td>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in facts
        )
        body = html.escape(json.dumps(s.redacted(), indent=2, ensure_ascii=False))
        return (
            f"<p><b>Session {sid}</b></p><table>{table}</table>"
            f"<pre style='max-height:260px;overflow:auto;background:#f6f8fa;padding:6px'>{body}</pre>"
        )

    # -- changes (read_only=False only) ---------------------------------------------------------

    def _ask(self, question: str, action: Callable[[], Coroutine[Any, Any, None]], verb: str) -> None:
        self._confirm_action = action
        self.action_result.value = ""
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
            self._done(f"extended {sid[:8]}… by {minutes} min: now expires {_iso(session.expires_at)}")

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
            self._done(f"ended {sid[:8]}…: its WebSocket lookups now fail; the record expires in 60 s")

        self._ask(f"End session {sid[:8]}…? The user's terminal will be refused.", end, "Yes, end it")

    async def confirm(self) -> None:
        """Carry out the action waiting for confirmation (nothing when none is)."""
        action, self._confirm_action = self._confirm_action, None
        self.confirm_box.children = []
        if action is None:
            return
        if self.read_only:  # defence in depth: no action can be queued on a read-only panel
            raise LabSessionError("the explorer is read-only")
        try:
            await action()
        except LabSessionError as exc:  # shown next to the buttons too, then on the status line
            self.action_result.value = f"<span style='color:#cf222e'>⚠ {html.escape(mask_text(str(exc)))}</span>"
            raise
