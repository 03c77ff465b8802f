"""JsonResponse: orjson's bytes are Starlette's bytes for what the routes send; what orjson
refuses is still rendered, by Starlette."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from labsession.backend.jsonio import JsonResponse

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
