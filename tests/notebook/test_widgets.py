"""The session explorer's logic against a real Redis, without a browser: search, list, detail,
redaction, confirmation, read-only, and callbacks that schedule work instead of blocking."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import pytest

from labsession import EmbeddedRedis, LabSession, LabSessionService, RedisService, ValidationReason
from labsession.errors import LabSessionError
from labsession.notebook.widgets import SessionExplorer, format_ttl

from support import CANARY, MS, wait_until


async def seed(sessions: LabSessionService) -> dict[str, LabSession]:
    made = {
        "ada": await sessions.create(
            "ada",
            "lab-redis",
            "p1",
            base_url="ws://x",
            sandbox_account={"iamSecretAccessKey": CANARY, "region": "eu-west-1"},
        ),
        "ada2": await sessions.create("ada", "lab-k8s", "p2", base_url="ws://x"),
        "bob": await sessions.create("bob", "lab-redis", "p3", base_url="ws://x"),
    }
    await sessions.end(made["bob"].session_id)
    return made


def text_of(explorer: SessionExplorer) -> str:
    """Everything the panel shows, as the browser would get it (widget states as JSON)."""
    out: list[str] = []

    def walk(widget: object) -> None:
        for name in ("value", "description", "tooltip"):
            value = getattr(widget, name, None)
            if isinstance(value, str):
                out.append(value)
        for child in getattr(widget, "children", ()) or ():
            walk(child)

    walk(explorer.panel)
    return "\n".join(out)


async def test_lists_every_session_with_status_and_ttl(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    explorer = SessionExplorer(sessions)
    await explorer.refresh()
    assert {r.session_id for r in explorer.rows} == {s.session_id for s in made.values()}
    assert [r.label for r in explorer.rows] == ["active", "active", "ended"]  # active first
    assert len(explorer.list_box.children) == 3
    row = explorer.list_box.children[0]
    bar = row.children[3]
    assert bar.description == "TTL"
    assert 7100 <= bar.value <= 7200 and bar.max == 7200
    ended_bar = explorer.list_box.children[2].children[3]
    assert 0 < ended_bar.value <= 60
    assert "3 session(s): 2 active, 1 ended" in explorer.status.value


async def test_search_by_user_by_id_and_by_prefix(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    explorer = SessionExplorer(sessions)
    explorer.query.value = "ada"
    await explorer.idle()  # the observer scheduled a refresh on its own
    assert {r.user_id for r in explorer.rows} == {"ada"} and len(explorer.rows) == 2
    explorer.query.value = made["bob"].session_id
    await explorer.idle()
    assert [r.session_id for r in explorer.rows] == [made["bob"].session_id]
    explorer.query.value = made["ada2"].session_id[:8]
    await explorer.idle()
    assert [r.session_id for r in explorer.rows] == [made["ada2"].session_id]
    explorer.query.value = str(uuid.uuid4())
    await explorer.idle()
    assert explorer.rows == [] and "no session" in explorer.status.value


async def test_detail_is_redacted(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    explorer = SessionExplorer(sessions)
    await explorer.refresh()
    explorer.list_box.children[0].children[0].click()  # the row's open button: schedules, never blocks
    await explorer.idle()
    assert explorer.selected in {made["ada"].session_id, made["ada2"].session_id}
    await explorer.select(made["ada"].session_id)
    assert "eu-west-1" in explorer.detail.value
    assert "****" in explorer.detail.value
    assert CANARY not in text_of(explorer)
    assert "validation" in explorer.detail.value and "ok" in explorer.detail.value


async def test_read_only_has_no_change_controls(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    explorer = SessionExplorer(sessions)
    assert explorer.extend_button is None and explorer.end_button is None
    assert explorer.actions.children == ()
    await explorer.select(made["ada"].session_id)
    explorer.request_end()
    assert explorer.confirm_box.children == ()
    assert explorer.last_error is not None and "read-only" in explorer.last_error
    assert (await sessions.validate(made["ada"].session_id)).valid


async def test_end_needs_confirmation(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    sid = made["ada"].session_id
    explorer = SessionExplorer(sessions, read_only=False)
    await explorer.refresh()
    await explorer.select(sid)
    assert explorer.end_button is not None and not explorer.end_button.disabled
    explorer.end_button.click()
    assert len(explorer.confirm_box.children) == 3
    assert (await sessions.validate(sid)).valid  # nothing happened before the confirmation
    explorer.confirm_box.children[2].click()  # cancel
    assert explorer.confirm_box.children == ()
    await explorer.idle()
    assert (await sessions.validate(sid)).valid
    explorer.end_button.click()
    explorer.confirm_box.children[1].click()  # yes
    await explorer.idle()
    assert (await sessions.validate(sid)).reason is ValidationReason.ENDED
    assert "ended" in explorer.status.value
    assert next(r for r in explorer.rows if r.session_id == sid).label == "ended"


async def test_extend_adds_the_minutes_after_confirmation(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    sid = made["ada2"].session_id
    explorer = SessionExplorer(sessions, read_only=False, extend_minutes=15)
    await explorer.select(sid)
    assert explorer.extend_button is not None
    explorer.extend_button.click()
    explorer.confirm_box.children[1].click()
    await explorer.idle()
    after = await sessions.get(sid)
    assert after is not None and after.expires_at - made["ada2"].expires_at == 15 * 60_000
    assert "extended" in explorer.status.value


async def test_ended_session_cannot_be_extended_from_the_panel(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    explorer = SessionExplorer(sessions, read_only=False)
    await explorer.select(made["bob"].session_id)
    assert explorer.extend_button is not None and explorer.extend_button.disabled
    assert explorer.end_button is not None and explorer.end_button.disabled


async def test_a_store_failure_shows_in_the_status_line_and_does_not_raise(
    sessions: LabSessionService, embedded_redis: EmbeddedRedis
) -> None:
    await seed(sessions)
    explorer = SessionExplorer(sessions)
    embedded_redis.stop()
    explorer.refresh_button.click()
    await explorer.idle(timeout=20)
    assert explorer.last_error is not None and "unavailable" in explorer.last_error
    assert "⚠" in explorer.status.value


async def test_callbacks_return_at_once_while_the_work_runs_on_the_loop(
    sessions: LabSessionService, embedded_redis: EmbeddedRedis
) -> None:
    await seed(sessions)
    explorer = SessionExplorer(sessions)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(MS)

    tick_task = asyncio.create_task(ticker())
    # A store that answers nothing until thawed: the refresh waits, the loop must not.
    embedded_redis.freeze()
    try:
        explorer.refresh_button.click()
        assert explorer.rows == []  # the click only scheduled the refresh
        await wait_until(lambda: explorer.status.value == "loading…", "the refresh to start reading")
        at_start = ticks
        await wait_until(lambda: ticks > at_start + 5, "the loop to tick while the refresh waits")
        assert explorer.rows == [] and explorer._pending  # still waiting on the frozen store...
        embedded_redis.thaw()  # ...which the loop went on meanwhile; now let the refresh finish
        await explorer.idle()
    finally:
        embedded_redis.thaw()
        tick_task.cancel()
    assert len(explorer.rows) == 3


async def test_a_callback_from_another_thread_is_handed_to_the_loop(sessions: LabSessionService) -> None:
    await seed(sessions)
    explorer = SessionExplorer(sessions)
    thread = threading.Thread(target=explorer.refresh_button.click)
    thread.start()
    await asyncio.to_thread(thread.join, 5)
    await explorer.idle()
    assert len(explorer.rows) == 3


def test_needs_a_loop_when_created_outside_one(redis_service: RedisService) -> None:
    explorer = SessionExplorer(LabSessionService(redis_service))

    async def nothing() -> None:
        return None

    with pytest.raises(LabSessionError):
        explorer.schedule(nothing())


def test_format_ttl() -> None:
    assert [format_ttl(v) for v in (None, -2, -1, 5, 65, 7199)] == ["-", "gone", "no TTL", "5s", "1m 05s", "1h 59m"]


async def test_the_panel_state_is_json_serialisable_and_secret_free(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    explorer = SessionExplorer(sessions, read_only=False)
    await explorer.refresh()
    await explorer.select(made["ada"].session_id)
    states = json.dumps([child.get_state() for child in explorer.panel.children], default=str)
    assert CANARY not in states


# -- a finished explorer: selection, sorting, filters, key facts, results by the buttons ----------


async def test_a_new_search_clears_the_detail_and_the_selection_is_highlighted(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    explorer = SessionExplorer(sessions)
    await explorer.refresh()
    sid = made["ada"].session_id
    await explorer.select(sid)
    borders = {s: line.layout.border for s, line in explorer.row_widgets.items()}
    assert [s for s, border in borders.items() if border != "2px solid transparent"] == [sid]
    assert sid in explorer.detail.value
    explorer.query.value = "bob"  # a new search
    await explorer.idle()
    assert explorer.selected is None and sid not in explorer.detail.value
    assert "Select a session" in explorer.detail.value
    assert all(line.layout.border == "2px solid transparent" for line in explorer.row_widgets.values())
    await explorer.refresh()  # the Refresh button keeps what is selected
    assert explorer.selected is None


async def test_columns_sort_and_a_second_click_reverses(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    await sessions.extend(made["ada2"].session_id, 60)
    explorer = SessionExplorer(sessions)
    await explorer.refresh()
    explorer.headings["ttl"].click()
    ttls = [r.ttl or 0 for r in explorer.rows]
    assert ttls == sorted(ttls, reverse=True) and explorer.rows[0].session_id == made["ada2"].session_id
    assert explorer.headings["ttl"].description.endswith("▼")
    explorer.headings["ttl"].click()
    assert [r.ttl or 0 for r in explorer.rows] == sorted(ttls)
    explorer.headings["user"].click()
    assert [r.user_id for r in explorer.rows] == ["ada", "ada", "bob"]
    assert [c.children[0].tooltip for c in explorer.list_box.children] == [r.session_id for r in explorer.rows]
    with pytest.raises(LabSessionError):
        explorer.sort("colour")


async def test_each_row_shows_the_key_type_and_its_memory(sessions: LabSessionService) -> None:
    await seed(sessions)
    explorer = SessionExplorer(sessions)
    await explorer.refresh()
    assert {r.key_type for r in explorer.rows} == {"string"}
    assert all(r.memory_bytes is not None and r.memory_bytes > 100 for r in explorer.rows)
    shown = text_of(explorer)
    assert "string" in shown and " B" in shown


async def test_a_glob_narrows_the_list_by_session_id(sessions: LabSessionService, redis_service: RedisService) -> None:
    made = await seed(sessions)
    peer = {**json.loads(made["ada"].to_json()), "sessionId": "test-session-1796197253000"}
    await redis_service.client.set("session:test-session-1796197253000", json.dumps(peer), ex=600)
    explorer = SessionExplorer(sessions)
    explorer.glob.value = "test-session-*"
    await explorer.idle()
    assert [r.session_id for r in explorer.rows] == ["test-session-1796197253000"]
    explorer.glob.value = made["bob"].session_id[:6] + "*"
    await explorer.idle()
    assert made["bob"].session_id in [r.session_id for r in explorer.rows]
    assert "test-session-1796197253000" not in [r.session_id for r in explorer.rows]


async def test_the_confirmation_and_the_result_stand_next_to_the_buttons(sessions: LabSessionService) -> None:
    made = await seed(sessions)
    sid = made["ada2"].session_id
    explorer = SessionExplorer(sessions, read_only=False, extend_minutes=5)
    await explorer.refresh()
    await explorer.select(sid)
    assert explorer.extend_button is not None
    explorer.extend_button.click()
    assert explorer.confirm_box in explorer.actions.children and explorer.action_result in explorer.actions.children
    before = next(r.ttl for r in explorer.rows if r.session_id == sid)
    explorer.confirm_box.children[1].click()
    await explorer.idle()
    assert "extended" in explorer.action_result.value
    after = next(r.ttl for r in explorer.rows if r.session_id == sid)
    assert after is not None and before is not None and after >= before + 4 * 60  # the TTL bar was read again
    await sessions.end(sid)  # meanwhile, elsewhere
    explorer.extend_button.disabled = False
    explorer.extend_button.click()
    explorer.confirm_box.children[1].click()
    await explorer.idle()
    assert "⚠" in explorer.action_result.value and "ended" in explorer.action_result.value
