"""Which store does each backend instance use? Sampled through its diagnostics route.

Behind a load balancer one URL reaches several instances, so each URL is sampled several
times; every answer names the instance (when the backend tells) and the store it uses
(masked endpoint and server ``run_id``). Instances share one store exactly when every
answer names the same store. An instance that names none is either the TypeScript
backend (which never tells) or an instance still on the in-memory map: if others do
name a store, the mix is the classic cause of "Invalid session".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from ..checks import CheckResult, Status
from ..masking import get_logger, mask_text, mask_url
from ..redis_service import StoreIdentity

__all__ = [
    "DIAGNOSTICS_PATH",
    "InstanceSample",
    "compare_stores",
    "parse_diagnostics",
    "sample_instances",
    "validate_through_backends",
]

log = get_logger(__name__)

DIAGNOSTICS_PATH = "/api/diagnostics/websocket"


@dataclass(frozen=True, slots=True)
class InstanceSample:
    """One answer from ``url``'s diagnostics route.

    ``instance`` is the instance's self-reported id (``None`` when it does not say);
    ``store`` its store identity (``None`` when it reports none); ``error`` is set instead
    when the request failed (then the other two are ``None``).
    """

    url: str
    instance: str | None
    store: StoreIdentity | None
    error: str | None = None

    @property
    def store_key(self) -> str | None:
        """What identifies the store: its ``run_id`` when known, else its endpoint."""
        if self.store is None:
            return None
        return self.store.run_id or self.store.endpoint


def _pick(body: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in body and body[name] is not None:
            return body[name]
    return None


def parse_diagnostics(body: object) -> tuple[str | None, StoreIdentity | None]:
    """``(instance id, store identity)`` from a diagnostics JSON body; ``None`` for what is missing.

    Accepts the reference backend's shape (``instance`` and ``store`` objects) and tolerates
    flat variants; the TypeScript backend's body yields ``(None, None)``.
    """
    if not isinstance(body, dict):
        return None, None
    instance_raw = _pick(body, "instance", "instanceId", "instance_id")
    if isinstance(instance_raw, dict):
        instance_raw = _pick(instance_raw, "id", "instanceId", "name")
    instance = str(instance_raw) if instance_raw is not None else None
    store_raw = _pick(body, "store", "storeIdentity", "store_identity")
    if not isinstance(store_raw, dict):
        return instance, None
    # A store object may wrap the identity (``{"identity": {...}, "state": ...}``).
    nested = _pick(store_raw, "identity")
    if isinstance(nested, dict):
        store_raw = nested
    endpoint = _pick(store_raw, "endpoint", "address")
    run_id = _pick(store_raw, "runId", "run_id")
    if endpoint is None and run_id is None:
        return instance, None
    return instance, StoreIdentity(mask_text(str(endpoint or "?")), str(run_id) if run_id else None)


async def _sample_one(client: httpx.AsyncClient, url: str) -> InstanceSample:
    try:
        response = await client.get(url.rstrip("/") + DIAGNOSTICS_PATH)
        response.raise_for_status()
        instance, store = parse_diagnostics(response.json())
        return InstanceSample(url, instance, store)
    except (httpx.HTTPError, ValueError) as exc:
        return InstanceSample(url, None, None, error=f"{type(exc).__name__}: {mask_text(str(exc))[:160]}")


async def sample_instances(
    urls: list[str] | tuple[str, ...], *, samples_per_url: int = 6, http_timeout: float = 3.0
) -> list[InstanceSample]:
    """Ask each URL's diagnostics route ``samples_per_url`` times, one request at a time per URL
    (so a load balancer spreads them), each bounded by ``http_timeout`` seconds. A fresh connection
    is used for every sample so keep-alive does not pin all samples to one instance."""
    limits = httpx.Limits(max_keepalive_connections=0)

    async def per_url(url: str) -> list[InstanceSample]:
        out = []
        async with httpx.AsyncClient(timeout=http_timeout, limits=limits) as client:
            for _ in range(samples_per_url):
                out.append(await _sample_one(client, url))
        return out

    batches = await asyncio.gather(*(per_url(u) for u in urls))
    return [sample for batch in batches for sample in batch]


def compare_stores(samples: list[InstanceSample], ours: StoreIdentity | None) -> tuple[CheckResult, bool]:
    """One check saying whether every instance shares the store ``ours`` (the runbook's own).

    Returns ``(check, split)``; ``split`` is True when the answers prove the instances do not
    all use one store (or not the one ``REDIS_URL`` names).
    """
    answered = [s for s in samples if s.error is None]
    failed = [s for s in samples if s.error is not None]
    instances = sorted({s.instance or f"{mask_url(s.url)} (unnamed)" for s in answered})
    stores = Counter(s.store_key or "none" for s in answered)
    data: dict[str, Any] = {
        "samples": len(samples),
        "failed": len(failed),
        "instances": instances,
        "stores": dict(stores),
        "ours": ours.to_dict() if ours else None,
    }
    if not answered:
        reason = failed[0].error if failed else "no backend URL given"
        return CheckResult("shared store", Status.ERROR if failed else Status.SKIP,
                           f"no instance answered its diagnostics route ({reason})", data), False
    named = [s for s in answered if s.store is not None]
    if not named:
        return CheckResult(
            "shared store", Status.WARN,
            f"{len(instances)} instance(s) answered but none reports its store (the TypeScript backend "
            "does not); sharing is judged from session lookups instead", data), False
    if len(stores) > 1:
        parts = ", ".join(f"{k}: {n} answer(s)" for k, n in stores.items())
        return CheckResult(
            "shared store", Status.FAIL,
            f"instances report different stores ({parts}); a session made on one is unknown to the others",
            data), True
    key = named[0].store_key
    theirs = named[0].store
    verdict = _same_store(theirs, ours) if theirs is not None and ours is not None else None
    if verdict is False and theirs is not None and ours is not None:
        return CheckResult(
            "shared store", Status.FAIL,
            f"every instance uses {theirs.endpoint} (run_id {theirs.run_id}), not the Redis that "
            f"the runbook's URL names ({ours.endpoint}, run_id {ours.run_id})", data), True
    note = f"; {len(failed)} sample(s) failed" if failed else ""
    return CheckResult(
        "shared store", Status.WARN if failed else Status.PASS,
        f"{len(answered)} answer(s) from {len(instances)} instance(s), all on one store ({key}){note}", data), False


def _same_store(a: StoreIdentity, b: StoreIdentity) -> bool | None:
    """True/False when it can be told (``run_id`` on both sides, or equal endpoints), else ``None``."""
    if a.run_id and b.run_id:
        return a.run_id == b.run_id
    if a.endpoint == b.endpoint:
        return True
    return None


async def validate_through_backends(
    urls: list[str] | tuple[str, ...], session_id: str, *, samples_per_url: int = 4, http_timeout: float = 3.0
) -> Counter[str]:
    """How each URL answers ``GET /api/labs/session/{id}/validate``, ``samples_per_url`` times:
    a counter of ``"valid"``, ``"not found"``, ``"HTTP <code>"`` or the error type."""
    limits = httpx.Limits(max_keepalive_connections=0)
    outcomes: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=http_timeout, limits=limits) as client:
        for url in urls:
            for _ in range(samples_per_url):
                try:
                    response = await client.get(f"{url.rstrip('/')}/api/labs/session/{session_id}/validate")
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__] += 1
                    continue
                if response.status_code == 200:
                    outcomes["valid"] += 1
                elif response.status_code == 404:
                    outcomes["not found"] += 1
                else:
                    outcomes[f"HTTP {response.status_code}"] += 1
    return outcomes
