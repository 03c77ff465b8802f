"""Three ``labsession serve`` instances sharing one Redis and nothing else.

Every test runs twice: against three single-process servers, and against three servers of two
worker processes each (``--workers 2``), where each new connection lands on either worker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from labsession import EmbeddedRedis
from labsession.embedded.backends import BackendProcess

from support.backend_procs import GOOD_ORIGIN, Deployment, backend_deployment, close_of, connect, recv_json

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=[1, 2], ids=["processes", "2-workers-each"])
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    if request.param == 1:
        with backend_deployment(3) as started:
            yield started
        return
    with ExitStack() as stack:
        started = Deployment(stack.enter_context(EmbeddedRedis()))
        for index in range(3):
            started.backends.append(
                stack.enter_context(
                    BackendProcess(
                        started.redis.url,
                        allowed_origins=(GOOD_ORIGIN,),
                        instance_id=f"test-{index}",
                        workers=request.param,
                    )
                )
            )
        yield started


async def test_a_session_made_on_one_instance_works_on_every_other(deployment: Deployment) -> None:
    a, b, c = deployment.backends
    async with httpx.AsyncClient() as http:
        created = await http.post(a.url + "/api/labs/start", json={"userId": "u", "labId": "x", "purchaseId": "p"})
        sid = created.json()["sessionId"]
        for backend in (b, c):  # visible at once, no retry needed
            validate = await http.get(f"{backend.url}/api/labs/session/{sid}/validate")
            assert validate.status_code == 200 and validate.json()["valid"] is True
        extended = await http.post(f"{b.url}/api/labs/session/{sid}/extend", json={"minutes": 10})
        seen = await http.get(f"{c.url}/api/labs/session/{sid}")
        assert seen.json()["expiresAt"] == extended.json()["newExpiresAt"]
        async with connect(f"{c.ws_url}/terminal/{sid}") as ws:
            assert (await recv_json(ws))["type"] == "connected"
        ended = await http.post(f"{a.url}/api/labs/session/{sid}/end")
        assert ended.status_code == 200
        for backend in (b, c):
            gone = await http.get(f"{backend.url}/api/labs/session/{sid}/validate")
            assert gone.status_code == 404 and gone.json()["code"] == "SESSION_ENDED"


async def test_concurrent_extends_through_different_instances_add_up_exactly(deployment: Deployment) -> None:
    """The TypeScript backend kept 3 of 40; every one must count."""
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            deployment.a.url + "/api/labs/start", json={"userId": "u", "labId": "x", "purchaseId": "p"}
        )
        sid, expires = created.json()["sessionId"], created.json()["expiresAt"]
        n = 60
        replies = await asyncio.gather(
            *(
                http.post(f"{deployment.backends[i % 3].url}/api/labs/session/{sid}/extend", json={"minutes": 7})
                for i in range(n)
            )
        )
        assert [r.status_code for r in replies] == [200] * n
        final = await http.get(f"{deployment.b.url}/api/labs/session/{sid}/validate")
        assert final.json()["expiresAt"] == expires + n * 7 * 60_000
        assert sorted(r.json()["newExpiresAt"] for r in replies) == [expires + k * 7 * 60_000 for k in range(1, n + 1)]


async def test_end_then_validate_inside_the_grace_window_stays_ended(deployment: Deployment) -> None:
    """A session ended under 10 s after creation must not come back to life (the TypeScript grace revival)."""
    async with httpx.AsyncClient() as http:
        for _ in range(5):
            created = await http.post(
                deployment.a.url + "/api/labs/start", json={"userId": "u", "labId": "x", "purchaseId": "p"}
            )
            sid = created.json()["sessionId"]
            assert (await http.post(f"{deployment.b.url}/api/labs/session/{sid}/end")).status_code == 200
            for _ in range(3):
                for backend in deployment.backends:
                    validate = await http.get(f"{backend.url}/api/labs/session/{sid}/validate")
                    assert validate.status_code == 404, validate.text
                    assert validate.json()["valid"] is False
        async with connect(f"{deployment.backends[2].ws_url}/terminal/{sid}") as ws:
            assert (await recv_json(ws))["code"] == "SESSION_ENDED"
            assert (await close_of(ws))[0] == 4000


async def test_sockets_on_every_instance_close_when_one_instance_ends_the_session(deployment: Deployment) -> None:
    async with httpx.AsyncClient() as http:
        created = await http.post(
            deployment.a.url + "/api/labs/start", json={"userId": "u", "labId": "x", "purchaseId": "p"}
        )
        sid = created.json()["sessionId"]
        other = (
            await http.post(deployment.a.url + "/api/labs/start", json={"userId": "u", "labId": "x", "purchaseId": "p"})
        ).json()["sessionId"]
        sockets = [connect(f"{b.ws_url}/terminal/{sid}") for b in deployment.backends]
        opened = [await s.__aenter__() for s in sockets]
        bystander = await connect(f"{deployment.a.ws_url}/terminal/{other}").__aenter__()
        try:
            for ws in [*opened, bystander]:
                assert (await recv_json(ws))["type"] == "connected"
            assert (await http.post(f"{deployment.b.url}/api/labs/session/{sid}/end")).status_code == 200
            codes = await asyncio.gather(*(close_of(ws, within=10) for ws in opened))
            assert [code for code, _ in codes] == [4000, 4000, 4000]
            await bystander.send('{"type":"ping"}')
            assert (await recv_json(bystander))["type"] == "pong"
        finally:
            for ws in [*opened, bystander]:
                await ws.close()


async def test_unknown_id_is_not_found_on_every_instance(deployment: Deployment) -> None:
    async with httpx.AsyncClient() as http:
        sid = str(uuid.uuid4())
        replies = await asyncio.gather(
            *(http.get(f"{b.url}/api/labs/session/{sid}/validate") for b in deployment.backends)
        )
        assert {r.status_code for r in replies} == {404}
