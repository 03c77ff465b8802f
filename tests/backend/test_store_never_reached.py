"""A backend whose Redis has never answered: it runs, says so, and still judges input first."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from labsession import EmbeddedRedis
from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_server import free_port

from support import CANARY
from support.backend_procs import GOOD_ORIGIN, close_of, connect, recv_json

pytestmark = pytest.mark.timeout(60)


def test_bad_input_is_a_400_even_before_the_store_answers() -> None:
    url = f"redis://default:{CANARY}@127.0.0.1:{free_port()}/0"  # nothing listens there
    with BackendProcess(url, log_level="warning", wait_for_store=False) as backend, httpx.Client(timeout=10) as http:
        sid = str(uuid.uuid4())
        bad = http.post(f"{backend.url}/api/labs/session/{sid}/extend", json={"minutes": "ten"})
        assert bad.status_code == 400, bad.text
        assert bad.json()["code"] == "INVALID_FIELD" and bad.json()["field"] == "minutes"
        good = http.post(f"{backend.url}/api/labs/session/{sid}/extend", json={"minutes": 10})
        assert good.status_code == 503 and good.json()["code"] == "STORE_UNAVAILABLE", good.text
        malformed = http.get(f"{backend.url}/api/labs/session/not:an-id/validate")
        assert malformed.status_code == 400 and malformed.json()["code"] == "INVALID_SESSION_ID"
        for response in (bad, good, malformed):
            assert CANARY not in response.text


def test_a_refused_password_is_auth_failed_on_every_route(redis_factory: Callable[..., EmbeddedRedis]) -> None:
    # One cause, one name: readiness, health, a session route and a WebSocket all say AUTH_FAILED.
    server = redis_factory(password="the-right-one-1234")
    url = f"redis://default:{CANARY}@127.0.0.1:{server.port}/0"
    backend = BackendProcess(url, log_level="warning", wait_for_store=False, allowed_origins=[GOOD_ORIGIN])
    with backend, httpx.Client(timeout=10) as http:
        sid = str(uuid.uuid4())
        ready = http.get(f"{backend.url}/health/ready")
        validate = http.get(f"{backend.url}/api/labs/session/{sid}/validate")
        health = http.get(f"{backend.url}/health")
        assert ready.status_code == 503 and ready.json()["cause"] == "AUTH_FAILED", ready.text
        assert validate.status_code == 503 and validate.json()["cause"] == "AUTH_FAILED", validate.text
        assert health.json()["store"]["cause"] == "AUTH_FAILED", health.text
        first, close = asyncio.run(_terminal(f"{backend.ws_url}/terminal/{sid}"))
        assert first["cause"] == "AUTH_FAILED" and close[0] == 1013, (first, close)
        for response in (ready, validate, health):
            assert CANARY not in response.text


async def _terminal(url: str) -> tuple[dict[str, Any], tuple[int | None, str]]:
    async with connect(url) as ws:
        return await recv_json(ws), await close_of(ws)
