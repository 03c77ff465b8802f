"""JsonResponse: orjson's bytes are Starlette's bytes for what the routes send; what orjson
refuses is still rendered, by Starlette."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from labsession.backend.jsonio import JsonResponse, send_json

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text()
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20
)


@given(documents)
def test_the_same_bytes_as_starlette_for_plain_json(content: object) -> None:
    assert JsonResponse(content).body == JSONResponse(content).body


@pytest.mark.parametrize("content", [{"big": 2**70}, {1: "non-str key"}])
def test_what_orjson_refuses_is_rendered_by_starlette(content: object) -> None:
    body = JsonResponse(content).body
    assert body == JSONResponse(content).body
    assert json.loads(body) == json.loads(json.dumps(content))


@pytest.mark.parametrize("status", [200, 404])
@pytest.mark.parametrize("content", [{"valid": True, "sessionId": "é", "expiresIn": 7}, {"big": 2**70}])
async def test_send_json_sends_what_a_json_response_sends(status: int, content: object) -> None:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[list[dict[str, object]]] = [[], []]
    await JsonResponse(content, status_code=status)({"type": "http"}, receive, _collect(sent[0]))
    await send_json(_collect(sent[1]), status, content)
    assert sent[0] == sent[1]
    assert sent[1][0]["status"] == status and json.loads(sent[1][1]["body"]) == json.loads(json.dumps(content))  # type: ignore[arg-type]


def _collect(into: list[dict[str, object]]) -> Any:
    async def send(message: dict[str, object]) -> None:
        into.append(message)

    return send
