"""WebSocket probe: per-instance health and diagnostics, the ``/terminal`` handshake, invalid and
valid sessions, refused origins, and which instances (and stores) answer behind one URL.

Works with both backends of docs/contract.md: what the TypeScript backend does not report (an
instance or store identity) is a WARN saying it is unknown, never a crash. Times are ms.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..checks import CheckResult, Status
from ..store.service import StoreIdentity
from .backend import BackendClient, Diagnostics, WsOutcome, to_ws_url, ws_session
from .stats import percentile

__all__ = [
    "REFUSED_ORIGIN",
    "BalancerSample",
    "InstanceInfo",
    "check_instance",
    "probe_refused_origin",
    "probe_unknown_session",
    "probe_valid_session",
    "sample_balancer",
    "same_store",
]

#: An origin no configuration should allow.
REFUSED_ORIGIN = "https://labsession-probe.invalid"


def same_store(a: StoreIdentity, b: StoreIdentity) -> bool | None:
    """Whether ``a`` and ``b`` read the same sessions: one server (``run_id``) or one data set
    through a replica (``replid``), in the same database and key prefix where both report them;
    by endpoint when neither server is named; ``None`` when unknowable. A replica that lags is
    still the same store here (the invalid_session runbook measures the lag)."""
    if a.db is not None and b.db is not None and a.db != b.db:
        return False
    if a.key_prefix is not None and b.key_prefix is not None and a.key_prefix != b.key_prefix:
        return False
    if a.run_id and b.run_id:
        if a.run_id == b.run_id:
            return True
        return bool(a.replid and a.replid == b.replid)
    if a.endpoint and b.endpoint and "?" not in (a.endpoint, b.endpoint):
        return a.endpoint == b.endpoint
    return None


@dataclass(slots=True)
class InstanceInfo:
    """What one backend URL said about itself; ``diagnostics`` is ``None`` when it did not answer."""

    url: str
    health_status: int | None
    health_ms: float
    diagnostics: Diagnostics | None
    checks: list[CheckResult] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        d = self.diagnostics
        return {
            "url": self.url,
            "health": self.health_status,
            "healthMs": round(self.health_ms, 1),
            "backend": d.flavour if d else None,
            "instance": d.instance_id if d else None,
            "store": (d.store.run_id or d.store.endpoint) if d and d.store else None,
            "sessions": d.session_count if d else None,
        }


async def check_instance(url: str, *, timeout: float = 5.0, our_store: StoreIdentity | None = None) -> InstanceInfo:
    """``GET /health`` and the diagnostics route of one instance, as checks."""
    async with BackendClient(url, timeout=timeout) as client:
        health = await client.health()
        answer, diag = await client.diagnostics()
    info = InstanceInfo(url, health.status, health.elapsed_ms, diag)
    if health.ok:
        info.checks.append(
            CheckResult(f"health {url}", Status.PASS, f"/health answered {health.status} in {health.elapsed_ms:.1f} ms")
        )
    else:
        info.checks.append(
            CheckResult(f"health {url}", Status.FAIL, f"/health: {health.error or f'HTTP {health.status}'}")
        )
    if diag is None or not answer.ok:
        what = answer.error or f"HTTP {answer.status}"
        info.checks.append(
            CheckResult(f"diagnostics {url}", Status.FAIL, f"diagnostics route: {what}", {"response": answer.body})
        )
        return info
    evidence = f"{diag.flavour} backend, {diag.session_count} sessions"
    if diag.lists_session_ids:
        info.checks.append(
            CheckResult(
                f"diagnostics {url}",
                Status.WARN,
                f"{evidence}; it publishes every session id (the only credential /terminal asks for) — ids hidden here",
            )
        )
    else:
        info.checks.append(CheckResult(f"diagnostics {url}", Status.PASS, evidence))
    if diag.store is None:
        info.checks.append(
            CheckResult(
                f"store identity {url}",
                Status.WARN,
                "the instance does not report which store it uses: sharing is unknown",
            )
        )
    elif our_store is not None and same_store(diag.store, our_store) is False:
        info.checks.append(
            CheckResult(
                f"store identity {url}",
                Status.FAIL,
                f"the instance uses store {diag.store.endpoint} (run_id "
                f"{(diag.store.run_id or '?')[:12]}), not the Redis this notebook inspects "
                f"({our_store.endpoint})",
            )
        )
    else:
        info.checks.append(
            CheckResult(
                f"store identity {url}",
                Status.PASS,
                f"store {diag.store.endpoint} (run_id {(diag.store.run_id or '?')[:12]})",
            )
        )
    return info


async def probe_unknown_session(
    base_url: str, *, timeout: float = 5.0, expected_close_ms: float = 2000.0
) -> tuple[CheckResult, WsOutcome]:
    """Connect with a random (unknown) session id: expect an error and close 4000 within ``expected_close_ms``."""
    outcome = await ws_session(to_ws_url(base_url), str(uuid.uuid4()), timeout=timeout, wait_close=True)
    name = f"unknown session {base_url}"
    data = outcome.to_dict()
    if outcome.close_code == 4000:
        took = outcome.close_ms or 0.0
        text = (
            f"handshake {outcome.handshake_ms or 0:.1f} ms, then {outcome.first_code or outcome.first_type} and "
            f"close 4000 after {took:.0f} ms (expected within {expected_close_ms:.0f} ms)"
        )
        if took <= expected_close_ms:
            return CheckResult(name, Status.PASS, text, data), outcome
        return CheckResult(name, Status.WARN, text, data, timing="closed later than expected"), outcome
    if outcome.connected:
        return CheckResult(name, Status.FAIL, "a random session id was accepted as connected", data), outcome
    return CheckResult(
        name,
        Status.FAIL,
        f"expected close 4000; got first={outcome.first_type} "
        f"close={outcome.close_code} refused={outcome.refused_status} error={outcome.error}",
        data,
    ), outcome


async def probe_valid_session(
    base_url: str, session_id: str, *, pings: int = 5, timeout: float = 5.0, origin: str | None = None
) -> tuple[CheckResult, WsOutcome]:
    """Connect with a valid session: expect ``connected`` and ``pings`` pongs (round trips in the outcome)."""
    outcome = await ws_session(to_ws_url(base_url), session_id, origin=origin, pings=pings, timeout=timeout)
    name = f"valid session {base_url}"
    if outcome.connected and len(outcome.ping_rtts_ms) == pings:
        p50 = percentile(outcome.ping_rtts_ms, 50) or 0.0
        p99 = percentile(outcome.ping_rtts_ms, 99) or 0.0
        return CheckResult(
            name,
            Status.PASS,
            f"connected after {outcome.first_ms or 0:.1f} ms; {pings} pings, RTT p50 {p50:.2f} ms, p99 {p99:.2f} ms",
            outcome.to_dict(),
        ), outcome
    return CheckResult(
        name,
        Status.FAIL,
        f"expected connected and {pings} pongs; got first={outcome.first_type} "
        f"code={outcome.first_code} close={outcome.close_code} error={outcome.error}",
        outcome.to_dict(),
    ), outcome


async def probe_refused_origin(
    base_url: str, *, allowed: tuple[str, ...] = (), timeout: float = 5.0
) -> list[CheckResult]:
    """Handshakes from origins that must be refused: an unrelated one and, when an allowed origin
    is known, that origin with a suffix (a substring match lets it through)."""
    origins = [REFUSED_ORIGIN]
    if allowed:
        origins.append(allowed[0].rstrip("/") + ".evil.example")
    out: list[CheckResult] = []
    for origin in origins:
        outcome = await ws_session(
            to_ws_url(base_url), str(uuid.uuid4()), origin=origin, timeout=timeout, wait_close=True
        )
        name = f"refused origin {base_url} ({origin})"
        if outcome.refused_status is not None:
            out.append(
                CheckResult(
                    name, Status.PASS, f"handshake refused with HTTP {outcome.refused_status}", outcome.to_dict()
                )
            )
        elif outcome.handshake_ms is not None:
            out.append(
                CheckResult(
                    name,
                    Status.FAIL,
                    f"handshake from a disallowed origin was accepted (then close "
                    f"{outcome.close_code}); check the origin allow-list",
                    outcome.to_dict(),
                )
            )
        else:
            out.append(CheckResult(name, Status.FAIL, f"no handshake answer: {outcome.error}", outcome.to_dict()))
    return out


@dataclass(slots=True)
class BalancerSample:
    """Which instances and stores answered ``n`` diagnostics requests through one URL."""

    url: str
    requests: int = 0
    failures: int = 0
    instances: Counter[str] = field(default_factory=Counter)
    stores: dict[str, StoreIdentity | None] = field(default_factory=dict)

    def check(self, our_store: StoreIdentity | None = None) -> CheckResult:
        name = f"instances behind {self.url}"
        data = {"requests": self.requests, "failures": self.failures, "instances": dict(self.instances)}
        if not self.instances:
            return CheckResult(name, Status.FAIL, f"no answer in {self.requests} requests", data)
        known = {k: v for k, v in self.stores.items() if v is not None}
        unknown = [k for k, v in self.stores.items() if v is None]
        spread = f"{len(self.instances)} instance(s) answered {self.requests} requests"
        if self.failures:
            spread += f" ({self.failures} failed)"
        identities = list(known.values())
        split = any(same_store(identities[0], other) is False for other in identities[1:]) if identities else False
        if our_store is not None:
            split = split or any(same_store(our_store, other) is False for other in identities)
        if split:
            stores = ", ".join(f"{k}: {(v.run_id or v.endpoint)[:12]}" for k, v in known.items())
            return CheckResult(
                name,
                Status.FAIL,
                f"{spread}; they do NOT share one store ({stores}): a session made on one is invalid on another",
                data,
            )
        if unknown:
            return CheckResult(
                name, Status.WARN, f"{spread}; {len(unknown)} report no store identity, so sharing is unknown", data
            )
        return CheckResult(name, Status.PASS, f"{spread}, all on one store", data)


async def sample_balancer(url: str, n: int = 8, *, timeout: float = 5.0, concurrency: int = 4) -> BalancerSample:
    """``n`` diagnostics requests through ``url``, each on a new connection, at most ``concurrency`` at once."""
    sample = BalancerSample(url)
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate, BackendClient(url, timeout=timeout) as client:
            answer, diag = await client.diagnostics()
        sample.requests += 1
        if diag is None or not answer.ok:
            sample.failures += 1
            return
        name = diag.instance_id or f"(unnamed #{index})"
        sample.instances[name] += 1
        sample.stores[name] = diag.store

    await asyncio.gather(*(one(i) for i in range(n)))
    return sample
