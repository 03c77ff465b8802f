"""The live pieces of the onboarding walkthrough (``notebooks/00_onboarding.ipynb``).

* :func:`architecture_figure`: the system on one picture (matplotlib, no network).
* :class:`InMemoryBackend`: the *naive* backend the TypeScript service started as — sessions
  in a per-process map — as a tiny in-process Starlette app, to show live why two instances
  behind a load balancer disagree about a session.
* :func:`short_lived_session`, :func:`watch` and :func:`timeline_figure`: a session's life
  with its TTL ticking, sampled and drawn.
* :func:`late_session_websocket`: the WebSocket lookup retry, shown by creating a session
  a little after the client already asked for it.

Times are seconds unless a name says ``ms``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..probes.backend import WsOutcome, ws_session
from ..sessions.model import LabSession, SessionStatus
from ..sessions.service import LabSessionService

__all__ = [
    "InMemoryBackend",
    "Tick",
    "architecture_figure",
    "late_session_websocket",
    "round_robin",
    "short_lived_session",
    "timeline_figure",
    "watch",
]


class InMemoryBackend:
    """A backend instance that keeps sessions in a dict of its own process — the bug.

    Two routes of the contract: ``POST /api/labs/start`` and ``GET /api/labs/session/{id}/validate``.
    :meth:`client` talks to it in-process (no socket), like a load balancer would over HTTP.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.sessions: dict[str, dict[str, Any]] = {}
        self.app = Starlette(
            routes=[
                Route("/api/labs/start", self._start, methods=["POST"]),
                Route("/api/labs/session/{session_id}/validate", self._validate, methods=["GET"]),
            ]
        )

    async def _start(self, request: Request) -> JSONResponse:
        body = await request.json()
        session_id = str(uuid.uuid4())
        self.sessions[session_id] = {"sessionId": session_id, "userId": body.get("userId"), "status": "active"}
        return JSONResponse({"sessionId": session_id, "instance": self.name}, status_code=201)

    async def _validate(self, request: Request) -> JSONResponse:
        session_id = request.path_params["session_id"]
        if session_id in self.sessions:
            return JSONResponse({"valid": True, "sessionId": session_id, "instance": self.name})
        return JSONResponse(
            {"valid": False, "error": "Session not found or expired", "instance": self.name}, status_code=404
        )

    def client(self) -> httpx.AsyncClient:
        """An HTTP client wired straight to this instance's app."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=f"http://{self.name}")


async def round_robin(clients: Sequence[httpx.AsyncClient], path: str, requests: int) -> list[tuple[int, str]]:
    """``requests`` GETs of ``path`` spread over ``clients`` in turn (a load balancer's round robin):
    ``(status, instance)`` per request."""
    out = []
    for index in range(requests):
        response = await clients[index % len(clients)].get(path)
        out.append((response.status_code, str(response.json().get("instance", "?"))))
    return out


async def short_lived_session(
    sessions: LabSessionService, seconds: int, *, user_id: str = "onboarding", status: str = SessionStatus.ACTIVE.value
) -> LabSession:
    """A session stored the way the backends store one — JSON and TTL in one write — but living
    ``seconds`` instead of two hours (so its end can be watched), with the given ``status``."""
    now = sessions.now_ms()
    session_id = str(uuid.uuid4())
    session = LabSession(
        session_id=session_id,
        user_id=user_id,
        lab_id="onboarding",
        purchase_id="demo",
        started_at=now,
        created_at=now,
        expires_at=now + seconds * 1000,
        status=status,
        web_socket_url=f"ws://demo.invalid/terminal/{session_id}",
        extra={"probe": True},
    )
    async with sessions.redis.guard("demo write"):
        await sessions.redis.client.set(sessions.key(session_id), session.to_json(), ex=seconds)
    return session


@dataclass(frozen=True, slots=True)
class Tick:
    """One sample of a session: ``at`` seconds since watching began, its TTL (-2: gone) and what
    validation said."""

    at: float
    ttl: int
    reason: str


async def watch(sessions: LabSessionService, session_id: str, *, duration: float, interval: float = 0.5) -> list[Tick]:
    """Sample ``session_id``'s TTL and validation every ``interval`` seconds for ``duration`` seconds."""
    ticks: list[Tick] = []
    started = time.monotonic()
    while True:
        record = await sessions.inspect(session_id)
        verdict = await sessions.validate(session_id)
        ticks.append(
            Tick(
                round(time.monotonic() - started, 2), record.ttl if record.ttl is not None else -2, verdict.reason.value
            )
        )
        if time.monotonic() - started >= duration:
            return ticks
        await asyncio.sleep(interval)


async def late_session_websocket(
    sessions: LabSessionService, ws_base: str, delay_ms: float, *, visit_timeout: float = 5.0
) -> WsOutcome:
    """Open ``/terminal/{id}`` for an id that does not exist yet and create that session
    ``delay_ms`` later: within the lookup retry window the client is ``connected``, after it the
    connection is closed with 4000."""
    session_id = str(uuid.uuid4())
    visit = asyncio.create_task(ws_session(ws_base, session_id, timeout=visit_timeout))
    await asyncio.sleep(delay_ms / 1000)
    creator = LabSessionService(sessions.redis, sessions.settings, id_factory=lambda: session_id)
    await creator.create("onboarding", "onboarding", "demo", base_url=ws_base, extra={"probe": True})
    try:
        return await visit
    finally:
        async with sessions.redis.guard("demo cleanup"):
            await sessions.redis.client.delete(sessions.key(session_id))


# -- pictures -----------------------------------------------------------------------------------


def architecture_figure() -> Any:
    """The lab platform on one picture: browsers, a load balancer, backend instances, one Redis."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(10, 4.6))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 46)
    ax.axis("off")

    def box(x: float, y: float, w: float, h: float, text: str, colour: str) -> None:
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.6", fc=colour, ec="#24292f", lw=1.2))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9.5)

    def arrow(a: tuple[float, float], b: tuple[float, float], label: str = "") -> None:
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, lw=1.2, color="#24292f"))
        if label:
            ax.text(
                (a[0] + b[0]) / 2,
                (a[1] + b[1]) / 2,
                label,
                ha="center",
                va="center",
                fontsize=7.5,
                color="#57606a",
                bbox={"fc": "white", "ec": "none", "pad": 1.0},
            )

    box(1, 31, 14, 8, "browser\n(lab UI)", "#ddf4ff")
    box(1, 7, 14, 8, "browser\n(terminal)", "#ddf4ff")
    box(33, 19, 14, 8, "load balancer\n(App Runner)", "#fff8c5")
    box(57, 31, 15, 8, "backend\ninstance A", "#dafbe1")
    box(57, 7, 15, 8, "backend\ninstance B", "#dafbe1")
    box(84, 19, 14, 8, "Redis\n(Upstash, TLS)", "#ffebe9")
    arrow((16, 35), (32, 25), "POST /api/labs/start")
    arrow((16, 11), (32, 21), "WS /terminal/{id}")
    arrow((48, 25), (56, 33))
    arrow((48, 21), (56, 13))
    arrow((73, 35), (83, 25), "SET session:{id} … EX")
    arrow((73, 11), (83, 21), "GET session:{id}")
    ax.text(
        50,
        1,
        "Any instance may get any request: the session must live where every instance can read it.",
        ha="center",
        fontsize=9,
        style="italic",
    )
    fig.tight_layout()
    return fig


def timeline_figure(ticks: Sequence[Tick], title: str) -> Any:
    """TTL over time, each sample coloured by what validation said."""
    import matplotlib.pyplot as plt

    colours = {
        "ok": "#1a7f37",
        "expired": "#6e7781",
        "ended": "#cf222e",
        "not_active": "#9a6700",
        "not_found": "#8250df",
        "corrupt": "#8250df",
    }
    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.plot([t.at for t in ticks], [max(t.ttl, 0) for t in ticks], color="#57606a", lw=1)
    for reason in dict.fromkeys(t.reason for t in ticks):
        points = [t for t in ticks if t.reason == reason]
        ax.scatter(
            [t.at for t in points],
            [max(t.ttl, 0) for t in points],
            color=colours.get(reason, "k"),
            label=reason,
            zorder=3,
        )
    ax.set_xlabel("seconds")
    ax.set_ylabel("TTL (s)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig
