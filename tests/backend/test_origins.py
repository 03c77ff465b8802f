"""Origins without a server: :func:`normalize_origin`, :func:`parse_origins`, :class:`OriginPolicy` and
:class:`CorsMiddleware` driven as the ASGI app it is (tests/backend/test_http_routes.py has the same
rules against real ``labsession serve`` processes)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labsession.backend.config import normalize_origin, parse_origins
from labsession.backend.jsonio import REQUEST_ID_KEY
from labsession.backend.origins import CorsMiddleware, OriginPolicy

APP = "https://app.example.com"
LOCAL = "http://localhost:3000"


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("https://app.example.com", APP),
        ("  HTTPS://App.Example.COM  ", APP),
        ("https://app.example.com/", APP),  # a bare "/" path is still an origin
        ("https://app.example.com:443", APP),  # the default port is dropped
        ("http://app.example.com:80", "http://app.example.com"),
        ("http://app.example.com:443", "http://app.example.com:443"),  # 443 is not http's default
        ("https://app.example.com:80", "https://app.example.com:80"),  # nor 80 https's
        ("http://app.example.com:81", "http://app.example.com:81"),
        ("https://app.example.com:444", "https://app.example.com:444"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[::1]", "http://[::1]"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
    ],
)
def test_an_origin_is_normalized_to_scheme_host_and_a_non_default_port(origin: str, normalized: str) -> None:
    assert normalize_origin(origin) == normalized


@pytest.mark.parametrize(
    "origin",
    [
        "",
        "   ",
        "null",
        "garbage",
        "app.example.com",
        "ftp://app.example.com",
        "ws://app.example.com",
        "file:///etc/passwd",
        "http://",
        "http:///path",
        "https://app.example.com/x",
        "https://app.example.com/x/",
        "https://app.example.com?x=1",
        "https://app.example.com/?x=1",
        "https://app.example.com#f",
        "https://user@app.example.com",
        "https://:pw@app.example.com",
        "https://u:pw@app.example.com",
        "https://app.example.com:99999",
        "https://app.example.com:port",
        "http://[::1",
        "https://app example.com",
        "https://app.example.com\\@evil.example",
        "https://app.exa\tmple.com",
        "https://app.example.com\n.evil",
        "https://app.exam\rple.com",
    ],
)
def test_anything_but_an_origin_normalizes_to_none(origin: str) -> None:
    assert normalize_origin(origin) is None


def test_an_origin_is_at_most_255_characters() -> None:
    longest = "http://" + "a" * 248
    assert len(longest) == 255
    assert normalize_origin(longest) == longest
    assert normalize_origin(longest + "a") is None


def test_parse_origins_normalizes_skips_blanks_and_drops_duplicates_in_order() -> None:
    raw = " https://B.example.com , ,http://a.example.com:80,https://b.example.com:443,, http://a.example.com "
    assert parse_origins(raw) == ("https://b.example.com", "http://a.example.com")
    assert parse_origins("") == ()
    assert parse_origins(" , ") == ()


def test_parse_origins_names_the_first_bad_item() -> None:
    with pytest.raises(ValueError, match=r"'https://x.example/path' is not an origin"):
        parse_origins("https://ok.example, https://x.example/path ,nonsense")


def test_a_policy_keeps_the_normalized_origins_and_drops_what_is_not_one() -> None:
    policy = OriginPolicy(["HTTPS://App.Example.com:443", "garbage", "", LOCAL, LOCAL])
    assert policy.allowed == frozenset({APP, LOCAL})
    assert OriginPolicy([]).allowed == frozenset()


@pytest.mark.parametrize(
    ("origin", "granted"),
    [
        (APP, APP),
        ("https://APP.example.com:443", APP),
        (LOCAL, LOCAL),
        ("https://example.com", None),
        ("https://evilapp.example.com", None),
        ("https://app.example.com.evil.example", None),
        ("http://app.example.com", None),
        ("https://app.example.com:8443", None),
        ("null", None),
        ("", None),
    ],
)
def test_a_policy_matches_equal_origins_only(origin: str, granted: str | None) -> None:
    policy = OriginPolicy([APP, LOCAL])
    assert policy.match(origin) == granted
    assert policy.allows(origin) is (granted is not None)


def test_no_origin_header_is_allowed_an_empty_policy_allows_no_origin() -> None:
    assert OriginPolicy([APP]).allows(None) is True
    assert OriginPolicy([]).allows(None) is True
    assert OriginPolicy([]).allows(APP) is False
    assert OriginPolicy([]).match(APP) is None


# -- CorsMiddleware as an ASGI app ---------------------------------------------------------------


class Inner:
    """The app behind the middleware: answers 200 ``inner`` and records that it was called."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls.append(scope)
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-request-id", b"rid-1")],
            }
        )
        await send({"type": "http.response.body", "body": b"inner"})


async def call(
    middleware: CorsMiddleware, method: str = "GET", headers: dict[str, str] | None = None, **scope: Any
) -> tuple[int | None, dict[str, str], bytes, list[dict[str, Any]]]:
    """(status, response headers, body, raw messages) of one request through ``middleware``."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    full = {
        "type": "http",
        "method": method,
        "path": "/health",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        **scope,
    }
    await middleware(full, receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    status = start["status"] if start else None
    got: dict[str, str] = {}
    for name, value in (start or {}).get("headers", []):
        key = name.decode().lower()
        got[key] = f"{got[key]}, {value.decode()}" if key in got else value.decode()
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, got, body, sent


def test_max_age_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        CorsMiddleware(Inner(), OriginPolicy([APP]), 30)  # type: ignore[misc]


def cors(max_age: int | None = None) -> tuple[CorsMiddleware, Inner]:
    inner = Inner()
    policy = OriginPolicy([APP, LOCAL])
    middleware = CorsMiddleware(inner, policy) if max_age is None else CorsMiddleware(inner, policy, max_age=max_age)
    return middleware, inner


async def test_a_request_without_origin_passes_untouched() -> None:
    middleware, inner = cors()
    # Header names on either side of "origin" in byte order: only the name itself counts.
    status, headers, body, _ = await call(middleware, headers={"Host": "h", "Accept": "*/*", "User-Agent": "curl"})
    assert (status, body, len(inner.calls)) == (200, b"inner", 1)
    assert "access-control-allow-origin" not in headers
    assert "vary" not in headers


async def test_an_allowed_origin_gets_exactly_itself_back() -> None:
    middleware, inner = cors()
    status, headers, body, _ = await call(middleware, headers={"Host": "h", "Origin": "HTTPS://app.example.com:443"})
    assert (status, body, len(inner.calls)) == (200, b"inner", 1)
    assert headers["access-control-allow-origin"] == APP  # normalized, never "*" nor the raw header
    assert headers["access-control-expose-headers"] == "X-Request-ID"
    assert headers["vary"] == "Origin"
    assert headers["content-type"] == "text/plain"


async def test_an_options_request_that_is_no_preflight_reaches_the_app_with_a_grant() -> None:
    middleware, inner = cors()
    status, headers, body, _ = await call(middleware, "OPTIONS", {"Origin": APP})
    assert (status, body, len(inner.calls)) == (200, b"inner", 1)
    assert headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
async def test_only_options_can_be_a_preflight(method: str) -> None:
    middleware, inner = cors()
    status, headers, body, _ = await call(middleware, method, {"Origin": APP, "Access-Control-Request-Method": "POST"})
    assert (status, body, len(inner.calls)) == (200, b"inner", 1)
    assert headers["access-control-allow-origin"] == APP


async def test_a_preflight_is_answered_here_with_the_headers_asked_for_that_are_allowed() -> None:
    middleware, inner = cors()
    status, headers, body, _ = await call(
        middleware,
        "OPTIONS",
        {
            "Origin": LOCAL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": " Content-Type , X-Evil,authorization",
        },
    )
    assert (status, body, inner.calls) == (204, b"", [])
    assert headers == {
        "access-control-allow-origin": LOCAL,
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": "content-type, authorization",
        "access-control-max-age": "600",
        "vary": "Origin",
        "content-length": "0",
    }


async def test_a_preflight_asking_for_no_allowed_header_is_told_every_allowed_one() -> None:
    middleware, _ = cors(max_age=30)
    for asked in ({}, {"Access-Control-Request-Headers": "x-evil"}):
        status, headers, _, _ = await call(
            middleware, "OPTIONS", {"Origin": APP, "Access-Control-Request-Method": "POST", **asked}
        )
        assert status == 204
        assert headers["access-control-allow-headers"] == "content-type, x-request-id, authorization"
        assert headers["access-control-max-age"] == "30"


@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS"])
@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://app.example.com", "https://app.example.com/x"]
)
async def test_a_refused_origin_gets_403_and_no_grant_and_never_reaches_the_app(method: str, origin: str) -> None:
    middleware, inner = cors()
    status, headers, body, sent = await call(
        middleware, method, {"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert (status, inner.calls) == (403, [])
    assert json.loads(body) == {"error": "Origin not allowed", "code": "ORIGIN_REFUSED"}
    assert headers == {"content-type": "application/json", "vary": "Origin", "content-length": str(len(body))}
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


async def test_a_refusal_carries_the_request_id_when_there_is_one() -> None:
    middleware, _ = cors()
    _, _, body, _ = await call(middleware, headers={"Origin": "https://evil.example"}, **{REQUEST_ID_KEY: "rid-42"})
    assert json.loads(body) == {"error": "Origin not allowed", "code": "ORIGIN_REFUSED", "requestId": "rid-42"}
    _, _, body, _ = await call(middleware, headers={"Origin": "https://evil.example"}, **{REQUEST_ID_KEY: ""})
    assert "requestId" not in json.loads(body)


async def test_websocket_and_lifespan_scopes_pass_through_whatever_their_origin() -> None:
    # The WebSocket endpoint checks the origin itself, to answer 403 in the handshake.
    middleware, inner = cors()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for kind in ("websocket", "lifespan"):
        scope = {"type": kind, "path": "/terminal/x", "headers": [(b"origin", b"https://evil.example")]}
        await middleware(scope, receive, send)
    assert [c["type"] for c in inner.calls] == ["websocket", "lifespan"]
    assert sent == []


async def test_only_the_response_start_gets_the_grant_never_a_later_message() -> None:
    async def with_trailers(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"x", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"1")], "more_trailers": False})

    _, headers, _, sent = await call(CorsMiddleware(with_trailers, OriginPolicy([APP])), headers={"Origin": APP})
    assert headers["access-control-allow-origin"] == APP
    assert sent[1] == {"type": "http.response.body", "body": b"x", "more_body": False}
    assert sent[2] == {"type": "http.response.trailers", "headers": [(b"x-checksum", b"1")], "more_trailers": False}
