"""Every HTTP route of docs/contract.md's "labsession" column, against two real ``labsession serve`` processes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from labsession.backend import OriginPolicy

from support import CANARY
from support.backend_procs import EVIL_ORIGIN, GOOD_ORIGIN, Deployment, backend_deployment

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with backend_deployment(2, password=CANARY) as started:
        yield started


@pytest.fixture(scope="module")
def store(deployment: Deployment) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(deployment.redis.url)
    yield client
    client.close()


def start(base: str, **body: object) -> dict[str, object]:
    payload = {"userId": "u-1", "labId": "lab-7", "purchaseId": "p-3", **body}
    response = httpx.post(f"{base}/api/labs/start", json=payload)
    assert response.status_code == 201, response.text
    data = response.json()
    assert isinstance(data, dict)
    return data


def test_health_is_liveness_with_store_state(deployment: Deployment) -> None:
    body = httpx.get(deployment.a.url + "/health").json()
    assert body["status"] == "ok"
    assert body["instanceId"] == "test-0"
    assert body["store"]["state"] == "up"
    assert body["timestamp"].endswith("Z")


def test_readiness_pings_the_store(deployment: Deployment) -> None:
    response = httpx.get(deployment.b.url + "/health/ready")
    assert response.status_code == 200
    assert response.json()["store"]["state"] == "up"


def test_diagnostics_without_a_count_walk_no_keys(deployment: Deployment, store: redis.Redis) -> None:
    # Runbooks poll this route (uptime, a replica's offset); the count is a SCAN of the whole keyspace.
    def scans() -> int:
        return int(store.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))

    before = scans()
    body = httpx.get(deployment.a.url + "/api/diagnostics/websocket?count=false").json()
    assert scans() == before and "sessionCount" not in body
    assert body["instance"]["id"] == deployment.a.instance_id and body["store"]["runId"]
    counted = httpx.get(deployment.a.url + "/api/diagnostics/websocket").json()
    assert scans() > before and counted["sessionCount"] == len(store.keys("session:*"))


def test_diagnostics_show_identity_and_a_count_never_ids(deployment: Deployment, store: redis.Redis) -> None:
    created = [start(deployment.a.url)["sessionId"] for _ in range(3)]
    bodies = [httpx.get(b.url + "/api/diagnostics/websocket").json() for b in deployment.backends]
    for body, backend in zip(bodies, deployment.backends, strict=True):
        assert body["status"] == "ok"
        assert body["websocketEndpoint"] == "/terminal/:sessionId"
        assert body["corsOrigins"] == [GOOD_ORIGIN]
        assert body["instance"]["id"] == backend.instance_id
        assert body["instance"]["version"]
        assert body["instance"]["uptimeSeconds"] > 0
        assert body["instance"]["openWebSockets"] == 0
        assert body["sessionCount"] == len(store.keys("session:*")) >= 3
        assert body["store"]["endpoint"] == f"127.0.0.1:{deployment.redis.port}"
        text = json.dumps(body)
        assert not any(sid in text for sid in created)
        assert "activeSessions" not in body
    # Both instances report the same store: same run_id, and the same data set and keyspace.
    assert bodies[0]["store"]["runId"] == bodies[1]["store"]["runId"] == store.info("server")["run_id"]
    replication = store.info("replication")
    for body in bodies:
        assert body["store"]["role"] == "master" and body["store"]["replId"] == replication["master_replid"]
        assert isinstance(body["store"]["replOffset"], int) and "replLink" not in body["store"]  # a master has none
        assert (body["store"]["db"], body["store"]["keyPrefix"]) == (0, "session:")


def test_start_creates_a_session_with_the_typescript_layout(deployment: Deployment, store: redis.Redis) -> None:
    data = start(deployment.a.url)
    sid = str(data["sessionId"])
    assert uuid.UUID(sid).version == 4
    assert data["webSocketUrl"] == f"{deployment.a.ws_url}/terminal/{sid}"
    assert data["session"] == {k: data[k] for k in ("sessionId", "webSocketUrl", "expiresAt")}
    raw = json.loads(store.get(f"session:{sid}"))
    assert raw["status"] == "active" and raw["labId"] == "lab-7" and raw["expiresAt"] == data["expiresAt"]
    assert 7190 <= store.ttl(f"session:{sid}") <= 7200
    assert "credentials" not in data


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"labId": "l", "purchaseId": "p"}, "userId"),
        ({"userId": "u", "purchaseId": "p"}, "labId"),
        ({"userId": "u", "labId": "l"}, "purchaseId"),
        ({"userId": 5, "labId": "l", "purchaseId": "p"}, "userId"),
        ({"userId": "u", "labId": ["l"], "purchaseId": "p"}, "labId"),
        ({"userId": "u", "labId": "l", "purchaseId": "p" * 300}, "purchaseId"),
        ({"userId": "u\n", "labId": "l", "purchaseId": "p"}, "userId"),
        ({"userId": "u", "labId": "l", "purchaseId": "p", "token": 7}, "token"),
    ],
)
def test_start_names_the_bad_field(deployment: Deployment, body: dict[str, object], field: str) -> None:
    response = httpx.post(deployment.a.url + "/api/labs/start", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_FIELD"
    assert response.json()["field"] == field


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b'"text"', b"{", b"\xff\xfe"])
def test_start_rejects_bodies_that_are_not_objects(deployment: Deployment, raw: bytes) -> None:
    response = httpx.post(
        deployment.a.url + "/api/labs/start", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "BAD_REQUEST"


def test_oversized_body_is_413(deployment: Deployment) -> None:
    response = httpx.post(deployment.a.url + "/api/labs/start", content=b"{" + b" " * 40_000 + b"}")
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_get_session_shows_no_credentials(deployment: Deployment, store: redis.Redis) -> None:
    sid = str(start(deployment.a.url)["sessionId"])
    key = f"session:{sid}"
    record = json.loads(store.get(key))
    record["sandboxAccount"] = {"iamAccessKeyId": "AKIAEXAMPLE", "iamSecretAccessKey": "s3cr3t-" + CANARY}
    record["apiToken"] = "tok-" + CANARY
    store.set(key, json.dumps(record), ex=600)
    response = httpx.get(f"{deployment.b.url}/api/labs/session/{sid}")
    assert response.status_code == 200
    body = response.json()
    assert body["sessionId"] == sid and body["labId"] == "lab-7" and body["status"] == "active"
    assert CANARY not in response.text and "AKIA" not in response.text and "sandbox" not in response.text


def test_validate_keeps_the_typescript_field_names(deployment: Deployment) -> None:
    data = start(deployment.a.url)
    response = httpx.get(f"{deployment.b.url}/api/labs/session/{data['sessionId']}/validate")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"valid", "sessionId", "labId", "status", "expiresAt", "expiresIn"}
    assert body["valid"] is True and body["expiresAt"] == data["expiresAt"]
    assert 7190 <= body["expiresIn"] <= 7200


def test_unknown_session_is_404_everywhere(deployment: Deployment) -> None:
    sid = str(uuid.uuid4())
    base = f"{deployment.a.url}/api/labs/session/{sid}"
    validate = httpx.get(base + "/validate")
    assert validate.status_code == 404
    assert validate.json()["valid"] is False
    assert validate.json()["error"] == "Session not found or expired"
    assert validate.json()["sessionId"] == sid
    assert validate.json()["code"] == "SESSION_NOT_FOUND"
    for response in (httpx.get(base), httpx.post(base + "/extend", json={}), httpx.post(base + "/end")):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "SESSION_NOT_FOUND"


@pytest.mark.parametrize("bad", ["-abc", "a:b", "a%20b", "../../etc", "%2A", "session:*", "x" * 500])
def test_malformed_ids_are_400_without_touching_redis(deployment: Deployment, store: redis.Redis, bad: str) -> None:
    before = int(store.info("stats")["total_commands_processed"])
    response = httpx.get(f"{deployment.a.url}/api/labs/session/{bad}/validate")
    assert response.status_code in (400, 404)
    body = response.json()
    assert body["code"] in ("INVALID_SESSION_ID", "NOT_FOUND")
    after = int(store.info("stats")["total_commands_processed"])
    assert after - before <= 3  # our INFO, plus at most the monitor's PINGs of the two instances


@pytest.mark.parametrize("minutes", [-5, 0, 1441, 2.5, "30", True, None, [30]])
def test_extend_validates_minutes(deployment: Deployment, minutes: object) -> None:
    sid = start(deployment.a.url)["sessionId"]
    response = httpx.post(f"{deployment.a.url}/api/labs/session/{sid}/extend", json={"minutes": minutes})
    assert response.status_code == 400
    assert response.json() == {**response.json(), "code": "INVALID_FIELD", "field": "minutes"}


@pytest.mark.parametrize("minutes", [0, 1441, "30", True])
@pytest.mark.parametrize("known", [True, False], ids=["live", "unknown"])
def test_bad_minutes_answer_one_exact_body(deployment: Deployment, minutes: object, known: bool) -> None:
    """A bad ``minutes`` is refused before the session is looked up, with the same bytes every time."""
    sid = start(deployment.a.url)["sessionId"] if known else str(uuid.uuid4())
    response = httpx.post(
        f"{deployment.a.url}/api/labs/session/{sid}/extend",
        json={"minutes": minutes},
        headers={"X-Request-ID": "rid-minutes"},
    )
    assert response.status_code == 400
    assert response.content == (
        b'{"error":"minutes must be a whole number from 1 to 1440","code":"INVALID_FIELD",'
        b'"field":"minutes","requestId":"rid-minutes"}'
    )


def test_extend_adds_minutes_and_moves_the_ttl(deployment: Deployment, store: redis.Redis) -> None:
    data = start(deployment.a.url)
    sid = data["sessionId"]
    default = httpx.post(f"{deployment.b.url}/api/labs/session/{sid}/extend")
    assert default.status_code == 200
    assert default.json()["newExpiresAt"] == int(str(data["expiresAt"])) + 30 * 60_000
    five = httpx.post(f"{deployment.a.url}/api/labs/session/{sid}/extend", json={"minutes": 5})
    assert five.json()["success"] is True
    assert five.json()["newExpiresAt"] == int(str(data["expiresAt"])) + 35 * 60_000
    assert store.ttl(f"session:{sid}") > 7200 + 34 * 60


def test_end_is_idempotent_and_ended_stays_ended(deployment: Deployment, store: redis.Redis) -> None:
    sid = start(deployment.a.url)["sessionId"]
    first = httpx.post(f"{deployment.a.url}/api/labs/session/{sid}/end")
    again = httpx.post(f"{deployment.b.url}/api/labs/session/{sid}/end")
    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == again.json()["status"] == "destroyed"
    assert 55 <= store.ttl(f"session:{sid}") <= 60
    for base in (deployment.a.url, deployment.b.url):
        validate = httpx.get(f"{base}/api/labs/session/{sid}/validate")
        assert validate.status_code == 404 and validate.json()["code"] == "SESSION_ENDED"
        extend = httpx.post(f"{base}/api/labs/session/{sid}/extend", json={"minutes": 5})
        assert extend.status_code == 409 and extend.json()["code"] == "SESSION_ENDED"


def test_expired_and_corrupt_values_are_reported_not_destroyed(deployment: Deployment, store: redis.Redis) -> None:
    sid = str(uuid.uuid4())
    now = int(time.time() * 1000)
    record = {
        "sessionId": sid,
        "labId": "l",
        "userId": "u",
        "purchaseId": "p",
        "createdAt": now - 60_000,
        "startedAt": now - 60_000,
        "expiresAt": now - 1000,
        "status": "active",
    }
    store.set(f"session:{sid}", json.dumps(record), ex=60)
    expired = httpx.get(f"{deployment.a.url}/api/labs/session/{sid}/validate")
    assert expired.status_code == 404 and expired.json()["code"] == "SESSION_EXPIRED"
    corrupt_id = str(uuid.uuid4())
    store.set(f"session:{corrupt_id}", b"\x00not json", ex=60)
    corrupt = httpx.get(f"{deployment.a.url}/api/labs/session/{corrupt_id}/validate")
    assert corrupt.status_code == 404 and corrupt.json()["code"] == "SESSION_CORRUPT"
    assert store.get(f"session:{corrupt_id}") == b"\x00not json"


def test_unknown_route_and_wrong_method_are_json(deployment: Deployment) -> None:
    missing = httpx.get(deployment.a.url + "/api/nothing/here")
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    wrong = httpx.get(deployment.a.url + "/api/labs/start")
    assert wrong.status_code == 405 and wrong.json()["code"] == "METHOD_NOT_ALLOWED"
    assert missing.headers["x-request-id"] == missing.json()["requestId"]


def test_cors_grants_exactly_the_allowed_origin(deployment: Deployment) -> None:
    ok = httpx.get(deployment.a.url + "/health", headers={"Origin": GOOD_ORIGIN})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == GOOD_ORIGIN
    assert "origin" in ok.headers["vary"].lower()
    preflight = httpx.options(
        deployment.a.url + "/api/labs/start",
        headers={
            "Origin": GOOD_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == GOOD_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]


@pytest.mark.parametrize(
    "origin",
    [
        EVIL_ORIGIN,
        "http://evil.example",
        "null",
        "http://app.example.test:81",
        "https://app.example.test",
        "http://app.example.test/x",
        "garbage",
        # same scheme, the allowed host as a suffix or a parent: still other origins
        "http://evilapp.example.test",
        "http://sub.app.example.test",
        "http://x.y.app.example.test",
        "http://pp.example.test",
        "http://example.test",
    ],
)
def test_refused_origins_get_no_grant_and_never_500(deployment: Deployment, origin: str) -> None:
    for response in (
        httpx.get(deployment.a.url + "/health", headers={"Origin": origin}),
        httpx.post(deployment.a.url + "/api/labs/start", headers={"Origin": origin}, json={}),
        httpx.options(
            deployment.a.url + "/api/labs/start", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        ),
    ):
        assert response.status_code == 403, (origin, response.status_code)
        assert "access-control-allow-origin" not in response.headers
        assert response.json()["code"] == "ORIGIN_REFUSED"


@pytest.mark.parametrize(
    ("origin", "granted"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://App.Example.com:443", "https://app.example.com"),  # normalized, then compared
        ("https://evilapp.example.com", None),  # the allowed host as a suffix
        ("https://sub.app.example.com", None),  # a subdomain
        ("https://example.com", None),  # a parent domain
        ("https://app.example.com.evil.example", None),  # the allowed origin as a prefix
        ("http://app.example.com", None),  # another scheme
        ("https://app.example.com:8443", None),  # another port
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://evillocalhost:3000", None),
        ("http://localhost:30000", None),
    ],
)
def test_origin_policy_grants_only_an_equal_origin(origin: str, granted: str | None) -> None:
    policy = OriginPolicy(["https://app.example.com", "http://localhost:3000"])
    assert policy.match(origin) == granted
    assert policy.allows(origin) is (granted is not None)


def test_no_response_and_no_log_line_carries_the_password(deployment: Deployment) -> None:
    sid = start(deployment.a.url)["sessionId"]
    texts = []
    for path in (
        "/health",
        "/health/ready",
        "/api/diagnostics/websocket",
        f"/api/labs/session/{sid}",
        f"/api/labs/session/{sid}/validate",
        "/api/labs/session/nope/validate",
        "/nope",
    ):
        texts.append(httpx.get(deployment.b.url + path).text)
    texts.append(httpx.post(f"{deployment.b.url}/api/labs/session/{sid}/extend", json={"minutes": 1}).text)
    texts.append(httpx.post(f"{deployment.b.url}/api/labs/session/{sid}/end").text)
    assert all(CANARY not in text for text in texts)
    output = deployment.output()
    assert "event=http" in output
    assert CANARY not in output
    assert sid not in output  # ids (terminal credentials) are cut to 8 characters in logs
    assert "Traceback" not in output
