"""One session, one answer, whatever its id: a session a peer stored under a non-UUID id (the
TypeScript repository's own Redis test script writes ``test-session-<ms>``) is listed, validated
over HTTP, and diagnosed by the runbook alike."""

from __future__ import annotations

import time

import httpx
import redis

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings, ValidationReason
from labsession.embedded.backends import BackendProcess
from labsession.runbooks import InvalidSessionCause, InvalidSessionInputs, diagnose_invalid_session

from support.tsformat import ts_json, ts_session

PEER_ID = "test-session-1796197253000"


async def test_a_peer_id_is_listed_validated_served_and_diagnosed(embedded_redis: EmbeddedRedis) -> None:
    raw = redis.Redis.from_url(embedded_redis.url)
    raw.set(f"session:{PEER_ID}", ts_json(ts_session(PEER_ID, int(time.time() * 1000))), ex=7200)
    raw.close()
    settings = Settings.from_url(embedded_redis.url)
    async with RedisService(settings) as store:
        sessions = LabSessionService(store)
        assert PEER_ID in await sessions.active_ids()
        assert (await sessions.validate(PEER_ID)).reason is ValidationReason.OK
    diagnosis = await diagnose_invalid_session(settings, InvalidSessionInputs(session_id=PEER_ID))
    assert diagnosis.cause == InvalidSessionCause.NO_FAULT_FOUND, diagnosis.to_dict()
    with BackendProcess(embedded_redis.url, instance_id="peer-ids") as backend:
        async with httpx.AsyncClient(base_url=str(backend.url), timeout=5) as http:
            answer = await http.get(f"/api/labs/session/{PEER_ID}/validate")
            refused = await http.get("/api/labs/session/session:x/validate")
    assert answer.status_code == 200 and answer.json()["valid"] is True, answer.text
    assert refused.status_code == 400 and refused.json()["code"] == "INVALID_SESSION_ID"
