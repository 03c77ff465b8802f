"""Which store does each backend instance use? Sampled through its diagnostics route.

Behind a load balancer one URL reaches several instances, so each URL is sampled several
times; every answer names the instance (when the backend tells) and the store it uses
(masked endpoint and server ``run_id``). Instances share one store exactly when every
answer names the same store. An instance that names none is either the TypeScript
backend (which never tells) or an instance still on the in-memory map: if others do
name a store, the mix is the classic cause of "Invalid session".

The HTTP side is :class:`labsession.probes.backend.BackendClient` (the same client the
WebSocket notebook uses); what is decided here is the runbook's stricter reading of it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..checks import CheckResult, Status
from ..masking import get_logger
from ..probes.backend import BackendClient
from ..probes.websocket import same_store
from ..store.service import StoreIdentity

__all__ = [
    "InstanceSample",
    "compare_stores",
    "sample_instances",
    "validate_through_backends",
]

log = get_logger(__name__)


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


async def sample_instances(
    urls: list[str] | tuple[str, ...], *, samples_per_url: int = 6, http_timeout: float = 3.0
) -> list[InstanceSample]:
    """Ask each URL's diagnostics route ``samples_per_url`` times, one request at a time per URL,
    each on a new connection (so a load balancer spreads them) and bounded by ``http_timeout`` s."""

    async def per_url(url: str) -> list[InstanceSample]:
        out = []
        for _ in range(samples_per_url):
            async with BackendClient(url, timeout=http_timeout) as client:
                answer, diag = await client.diagnostics()
            if diag is None or not answer.ok:
                out.append(InstanceSample(url, None, None, answer.error or f"HTTP {answer.status}"))
            else:
                out.append(InstanceSample(url, diag.instance_id, diag.store))
        return out

    batches = await asyncio.gather(*(per_url(u) for u in urls))
    return [sample for batch in batches for sample in batch]


def compare_stores(samples: list[InstanceSample], ours: StoreIdentity | None) -> tuple[CheckResult, bool]:
    """One check saying whether every instance shares the store ``ours`` (the runbook's own).

    Returns ``(check, split)``; ``split`` is True when the answers prove the instances do not
    all use one store, or not the one the runbook's URL names. Answers that name no store
    next to answers that do count as a split (an instance on an in-memory map).
    """
    answered = [s for s in samples if s.error is None]
    failed = [s for s in samples if s.error is not None]
    instances = sorted({s.instance or f"{s.url} (unnamed)" for s in answered})
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
        return CheckResult(
            "shared store",
            Status.ERROR if failed else Status.SKIP,
            f"no instance answered its diagnostics route ({reason})",
            data,
        ), False
    named = [s.store for s in answered if s.store is not None]
    if not named:
        return CheckResult(
            "shared store",
            Status.WARN,
            f"{len(instances)} instance(s) answered but none reports its store (the TypeScript backend "
            "does not); sharing is judged from session lookups instead",
            data,
        ), False
    split = len(stores) > 1 or any(same_store(named[0], other) is False for other in named[1:])
    if split:
        parts = ", ".join(f"{k}: {n} answer(s)" for k, n in stores.items())
        return CheckResult(
            "shared store",
            Status.FAIL,
            f"instances report different stores ({parts}); a session made on one is unknown to the others",
            data,
        ), True
    theirs = named[0]
    if ours is not None and same_store(theirs, ours) is False:
        return CheckResult(
            "shared store",
            Status.FAIL,
            f"every instance uses {theirs.endpoint} (run_id {theirs.run_id}), not the Redis that "
            f"the runbook's URL names ({ours.endpoint}, run_id {ours.run_id})",
            data,
        ), True
    note = f"; {len(failed)} sample(s) failed" if failed else ""
    key = theirs.run_id or theirs.endpoint
    return CheckResult(
        "shared store",
        Status.WARN if failed else Status.PASS,
        f"{len(answered)} answer(s) from {len(instances)} instance(s), all on one store ({key}){note}",
        data,
    ), False


async def validate_through_backends(
    urls: list[str] | tuple[str, ...], session_id: str, *, samples_per_url: int = 4, http_timeout: float = 3.0
) -> Counter[str]:
    """How each URL answers ``GET /api/labs/session/{id}/validate``, ``samples_per_url`` times, each
    on a new connection: a counter of ``"valid"``, ``"not found"``, ``"HTTP <code>"`` or ``"no answer"``."""
    outcomes: Counter[str] = Counter()
    for url in urls:
        for _ in range(samples_per_url):
            async with BackendClient(url, timeout=http_timeout) as client:
                answer = await client.validate(session_id)
            if answer.status is None:
                outcomes["no answer"] += 1
            elif answer.status == 200:
                outcomes["valid"] += 1
            elif answer.status == 404:
                outcomes["not found"] += 1
            else:
                outcomes[f"HTTP {answer.status}"] += 1
    return outcomes
