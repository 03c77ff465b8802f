"""The validate route served directly by RequestLogMiddleware answers exactly as the router does.

Two apps on one real Redis and one state: as built (``GET …/validate`` without an ``Origin``
skips Starlette's router and exception layers) and the same app with that shortcut switched off.
Every answer (status, headers, body) must be the same but for the request id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from labsession import EmbeddedRedis, RedisService
from labsession.backend import BackendConfig, BackendState, RequestLogMiddleware, create_app, store_settings

from support import CANARY

pytestmark = pytest.mark.timeout(120)


def routed(app: Starlette) -> Starlette:
    """``app`` with the direct validate switched off (every request through the router)."""
    [middleware] = app.user_middleware
    assert middleware.cls is RequestLogMiddleware and middleware.kwargs["validate"] is not None
    app.user_middleware = [Middleware(middleware.cls, *middleware.args, **{**middleware.kwargs, "validate": None})]
    return app


class Pair:
    """The direct and the routed app over one state; ``answers`` asks both the same."""

    def __init__(self, runner: asyncio.Runner, state: BackendState) -> None:
        self.runner = runner
        apps = create_app(state), routed(create_app(state))
        #: How often each app's router handed a request to the validate route.
        self.routed_calls = [_count_validate_route(app) for app in apps]
        self.direct, self.routed = (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://d") for a in apps
        )

    def answers(self, method: str, path: str, **kwargs: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        async def both() -> tuple[httpx.Response, httpx.Response]:
            return (
                await self.direct.request(method, path, **kwargs),
                await self.routed.request(method, path, **kwargs),
            )

        return tuple(_comparable(r) for r in self.runner.run(both()))  # type: ignore[return-value]

    def close(self) -> None:
        self.runner.run(self.direct.aclose())
        self.runner.run(self.routed.aclose())


def _count_validate_route(app: Starlette) -> list[int]:
    route = app.router.routes[0]
    assert isinstance(route, Route) and route.path.endswith("/validate")
    calls, handle = [0], route.handle

    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        calls[0] += 1
        await handle(scope, receive, send)

    route.handle = counted  # type: ignore[method-assign]
    return calls


def _comparable(response: httpx.Response) -> tuple[Any, ...]:
    """Status, headers and body, the request id taken out (each request draws its own)."""
    rid = response.headers.get("x-request-id")
    assert rid, "every answer carries a request id"
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("x-request-id", "content-length")]
    body: Any = response.content
    if response.headers.get("content-type") == "application/json" and response.content:
        body = response.json()
        if isinstance(body, dict) and body.get("requestId") is not None:
            assert body.pop("requestId") == rid
    return response.status_code, headers, body


@pytest.fixture(scope="module")
def store() -> Iterator[tuple[EmbeddedRedis, redis.Redis]]:
    with EmbeddedRedis(password=CANARY) as server:
        client = redis.Redis.from_url(server.url)
        yield server, client
        client.close()


@pytest.fixture(scope="module")
def pair(store: tuple[EmbeddedRedis, redis.Redis]) -> Iterator[Pair]:
    server, _ = store
    runner = asyncio.Runner()
    state = BackendState(BackendConfig(), RedisService(store_settings({"REDIS_URL": server.url})))
    runner.run(state.start())
    both = Pair(runner, state)
    try:
        yield both
    finally:
        both.close()
        runner.run(state.aclose())
        runner.close()


def _stored(client: redis.Redis, value: bytes) -> str:
    sid = str(uuid.uuid4())
    client.set(f"session:{sid}", value, ex=60)
    return sid


def test_every_kind_of_answer_is_the_routers(pair: Pair, store: tuple[EmbeddedRedis, redis.Redis]) -> None:
    _, client = store
    now = 1_900_000_000_000
    valid = _stored(client, b'{"sessionId":"x","labId":"l","status":"active","expiresAt":%d}' % (now * 2))
    ended = _stored(client, b'{"sessionId":"x","status":"destroyed","expiresAt":%d}' % (now * 2))
    expired = _stored(client, b'{"sessionId":"x","status":"active","expiresAt":1}')
    corrupt = _stored(client, b"\x00not json")
    big = _stored(client, b'{"sessionId":"x","labId":%d,"status":"active","expiresAt":%d}' % (2**70, now * 2))
    direct, via_router = pair.answers("GET", f"/api/labs/session/{valid}/validate")
    assert direct == via_router and direct[0] == 200
    assert [calls[0] for calls in pair.routed_calls] == [0, 1]  # the shortcut was taken, and only by one
    seen = set()
    for sid in (valid, ended, expired, corrupt, big, str(uuid.uuid4()), "*", "a b", "x" * 200, "a%2Fb", "%00"):
        for method in ("GET", "HEAD", "POST"):
            direct, via_router = pair.answers(method, f"/api/labs/session/{quote(sid, safe='%')}/validate")
            assert direct == via_router, (method, sid)
            seen.add((method, direct[0], direct[2].get("code") if isinstance(direct[2], dict) else None))
    assert {("GET", 200, None), ("GET", 400, "INVALID_SESSION_ID"), ("GET", 404, "SESSION_NOT_FOUND")} <= seen
    assert {("GET", 404, "SESSION_ENDED"), ("GET", 404, "SESSION_EXPIRED"), ("HEAD", 200, None)} <= seen
    assert ("POST", 405, "METHOD_NOT_ALLOWED") in seen
    for path in ("/api/labs/session/validate", "/api/labs/session//validate", "/api/labs/session/x/validate/"):
        direct, via_router = pair.answers("GET", path)
        assert direct == via_router, path


def test_a_store_not_connected_is_the_same_503(store: tuple[EmbeddedRedis, redis.Redis]) -> None:
    server, _ = store
    runner = asyncio.Runner()
    state = BackendState(BackendConfig(), RedisService(store_settings({"REDIS_URL": server.url})))  # never started
    both = Pair(runner, state)
    try:
        direct, via_router = both.answers("GET", f"/api/labs/session/{uuid.uuid4()}/validate")
        assert direct == via_router
        assert direct[0] == 503 and direct[2]["code"] == "STORE_UNAVAILABLE" and direct[2]["valid"] is False
        assert ("retry-after", "1") in direct[1]
    finally:
        both.close()
        runner.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session_id=st.text(max_size=40) | st.uuids().map(str))
def test_fuzzed_ids_get_the_routers_answer(pair: Pair, session_id: str) -> None:
    direct, via_router = pair.answers("GET", f"/api/labs/session/{quote(session_id, safe='')}/validate")
    assert direct == via_router
