"""A backend whose Redis has never answered: it runs, says so, and still judges input first."""

from __future__ import annotations

import uuid

import httpx
import pytest

from labsession.embedded.backends import BackendProcess
from labsession.embedded.redis_server import free_port

from support import CANARY

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
