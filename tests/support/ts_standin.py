"""A stand-in for the TypeScript lab backend, speaking exactly what docs/contract.md observed of it.

Not a mock of our code: a real HTTP + WebSocket server on a loopback port, over a real Redis,
with the TypeScript backend's response shapes and flaws (``activeSessions`` ids in diagnostics,
credentials with a secret in the start response, any origin accepted then closed, the grace
period reviving an ended session, non-atomic extend). The probes must diagnose it without
crashing and without leaking its secret.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from labsession.embedded.redis_server import free_port

SECRET = "ts-standin-SECRET-wJalrXUtnFEMI"


def build_app(redis_url: str) -> Starlette:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)

    def now() -> int:
        return int(time.time() * 1000)

    async def load(sid: str) -> dict[str, Any] | None:
        raw = await client.get(f"session:{sid}")
        if raw is None:
            return None
        try:
            data: dict[str, Any] = json.loads(raw)
        except ValueError:
            await client.delete(f"session:{sid}")
            return None
        return data

    async def lookup(sid: str) -> dict[str, Any] | None:
        """The observed validation rules, writes included."""
        data = await load(sid)
        if data is None:
            return None
        if data["expiresAt"] <= now():
            data["status"] = "expired"
            await client.set(f"session:{sid}", json.dumps(data), ex=60)
            return None
        if data["status"] != "active":
            if now() - data["createdAt"] < 10_000:  # grace period: revived
                data["status"] = "active"
                await client.set(f"session:{sid}", json.dumps(data), ex=max(1, (data["expiresAt"] - now()) // 1000))
                return data
            return None
        return data

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "timestamp": "2024-01-01T00:00:00.000Z"})

    async def diagnostics(request: Request) -> JSONResponse:
        keys = await client.keys("session:*")
        return JSONResponse(
            {
                "status": "ok",
                "websocketEndpoint": "/terminal/:sessionId",
                "supportedProtocols": ["ws", "wss"],
                "corsOrigins": ["http://localhost:3000"],
                "awsRegion": "us-east-1",
                "timestamp": "2024-01-01T00:00:00.000Z",
                "activeSessions": [k.split(":", 1)[1] for k in keys],
            }
        )

    async def start(request: Request) -> JSONResponse:
        body = await request.json()
        if not all(body.get(k) for k in ("userId", "labId", "purchaseId")):
            return JSONResponse({"error": "Missing required fields"}, status_code=400)
        sid = str(uuid.uuid4())
        created = now()
        record = {
            "sessionId": sid,
            "userId": body["userId"],
            "labId": body["labId"],
            "purchaseId": body["purchaseId"],
            "startedAt": created,
            "createdAt": created,
            "expiresAt": created + 7_200_000,
            "status": "active",
            "terminalPort": 7681,
            "webSocketUrl": f"ws://localhost/terminal/{sid}",
            "sandboxAccount": {"accountId": "123", "iamAccessKeyId": "AKIA1", "iamSecretAccessKey": SECRET},
        }
        await client.set(f"session:{sid}", json.dumps(record), ex=7200)
        return JSONResponse(
            {
                "success": True,
                "session": {
                    "sessionId": sid,
                    "webSocketUrl": record["webSocketUrl"],
                    "expiresAt": record["expiresAt"],
                    "credentials": {"accessKeyId": "AKIA1", "secretAccessKey": SECRET, "region": "us-east-1"},
                },
            }
        )

    async def validate(request: Request) -> JSONResponse:
        sid = request.path_params["sid"]
        data = await lookup(sid)
        if data is None:
            return JSONResponse(
                {"valid": False, "error": "Session not found or expired", "sessionId": sid}, status_code=404
            )
        return JSONResponse(
            {
                "valid": True,
                "sessionId": sid,
                "labId": data["labId"],
                "status": data["status"],
                "expiresAt": data["expiresAt"],
                "expiresIn": (data["expiresAt"] - now()) // 1000,
            }
        )

    async def extend(request: Request) -> JSONResponse:
        sid = request.path_params["sid"]
        minutes = (await request.json()).get("minutes", 30)
        data = await load(sid)
        if data is None:
            return JSONResponse({"error": "Session not found"}, status_code=404)
        data["expiresAt"] += minutes * 60_000
        await client.set(f"session:{sid}", json.dumps(data), ex=max(1, (data["expiresAt"] - now()) // 1000))
        return JSONResponse({"success": True, "newExpiresAt": data["expiresAt"]})

    async def end(request: Request) -> JSONResponse:
        sid = request.path_params["sid"]
        data = await load(sid)
        if data is not None:
            data["status"] = "destroyed"
            await client.set(f"session:{sid}", json.dumps(data), ex=60)
        return JSONResponse({"success": True})

    async def terminal(websocket: WebSocket) -> None:
        await websocket.accept()  # any origin
        sid = websocket.path_params["sid"]
        data = None
        for delay in (0, 0.1, 0.2, 0.4):
            await asyncio.sleep(delay)
            await client.keys("session:*")
            data = await lookup(sid)
            if data is not None:
                break
        if data is None:
            await websocket.send_text(
                json.dumps(
                    {
                        "type": "error",
                        "message": "Session not found or expired",
                        "code": "SESSION_NOT_FOUND",
                        "sessionId": sid,
                    }
                )
            )
            await websocket.close(4000, "Invalid session")
            return
        if websocket.headers.get("origin") not in (None, "http://localhost:3000"):
            await websocket.close(1000)  # what a client sees as "accepted, then closed"
            return
        await websocket.send_text(json.dumps({"type": "connected", "sessionId": sid}))
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                if message.get("type") == "ping":
                    await websocket.send_text(json.dumps({"type": "pong"}))
        except WebSocketDisconnect:
            return

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/health", health),
            Route("/api/diagnostics/websocket", diagnostics),
            Route("/api/labs/start", start, methods=["POST"]),
            Route("/api/labs/session/{sid}/validate", validate),
            Route("/api/labs/session/{sid}/extend", extend, methods=["POST"]),
            Route("/api/labs/session/{sid}/end", end, methods=["POST"]),
            WebSocketRoute("/terminal/{sid}", terminal),
        ],
    )


@contextmanager
def ts_backend(redis_url: str) -> Iterator[str]:
    """Serve the stand-in on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(redis_url), host="127.0.0.1", port=port, log_level="error", lifespan="on", ws="websockets-sansio"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the TypeScript stand-in did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
