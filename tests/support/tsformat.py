"""Session values exactly as the TypeScript backend writes them (``JSON.stringify`` of its object).

Field order is the backend's; ``sandboxAccount`` holds what its AWS sandbox service returns,
secrets included. ``extraFields`` stands for anything a newer backend version may add.
"""

from __future__ import annotations

import json
from typing import Any

#: Field order of the TypeScript backend's session object.
TS_FIELDS = [
    "sessionId",
    "userId",
    "labId",
    "purchaseId",
    "startedAt",
    "createdAt",
    "expiresAt",
    "status",
    "terminalPort",
    "webSocketUrl",
    "sandboxAccount",
]

SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"


def ts_session(
    session_id: str,
    now_ms: int,
    *,
    minutes: int = 120,
    status: str = "active",
    created_ago_ms: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A session object as the TypeScript backend builds it, plus ``extra`` unknown fields."""
    created = now_ms - created_ago_ms
    value: dict[str, Any] = {
        "sessionId": session_id,
        "userId": "user-42",
        "labId": "lab-aws-101",
        "purchaseId": "pur_9XkQ",
        "startedAt": created,
        "createdAt": created,
        "expiresAt": created + minutes * 60_000,
        "status": status,
        "terminalPort": 7681,
        "webSocketUrl": f"wss://labs.example.com/terminal/{session_id}",
        "sandboxAccount": {
            "accountId": "123456789012",
            "accountName": "lab-sandbox-17",
            "email": "sandbox+17@example.com",
            "iamUserId": "AIDAEXAMPLE17",
            "iamUserName": "lab-user-17",
            "iamAccessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "iamSecretAccessKey": SECRET_ACCESS_KEY,
            "region": "us-east-1",
            "createdAt": created,
            "expiresAt": created + minutes * 60_000,
            "status": "ACTIVE",
        },
    }
    value.update(extra or {})
    return value


def ts_json(value: dict[str, Any]) -> str:
    """``JSON.stringify(value)``: no spaces, insertion order, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
