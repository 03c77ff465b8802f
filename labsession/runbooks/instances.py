"""Which store does each backend instance use? Sampled through its diagnostics route.

Behind a load balancer one URL reaches several instances, so each URL is sampled several
times; every answer names the instance (when the backend tells) and the store it uses
(masked endpoint, server ``run_id``, replication id and offset, database number and key
prefix). Instances share one store when every answer names one data set (one server, or a
master and its replicas) read through one keyspace. An instance that names none is either the TypeScript
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
from ..store.service import StoreIdentity

__all__ = [
    "InstanceSample",
    "StoreComparison",
    "compare_stores",
    "data_sets",
    "keyspace",
    "sample_instance",
    "sample_instances",
    "validate_through_backends",
]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class InstanceSample:
    """One answer from ``url``'s diagnostics route.

    ``instance`` is the instance's self-reported id (``None`` when it does not say);
    ``store`` its store identity (``None`` when it reports none); ``error`` is set instead
    when the request failed (then the other two are ``None``). ``clock_offset_s`` is the
    instance's clock minus ours, seconds, from its HTTP ``Date`` header (``None`` without one).
    """

    url: str
    instance: str | None
    store: StoreIdentity | None
    error: str | None = None
    clock_offset_s: float | None = None

    @property
    def store_key(self) -> str | None:
        """What identifies the store: its ``run_id`` when known, else its endpoint."""
        if self.store is None:
            return None
        return self.store.run_id or self.store.endpoint

    @property
    def label(self) -> str:
        """The instance's id, or its URL when it does not say."""
        return self.instance or f"{self.url} (unnamed)"


async def sample_instances(
    urls: list[str] | tuple[str, ...], *, samples_per_url: int = 6, http_timeout: float = 3.0
) -> list[InstanceSample]:
    """Ask each URL's diagnostics route ``samples_per_url`` times, one request at a time per URL,
    each on a new connection (so a load balancer spreads them) and bounded by ``http_timeout`` s."""

    async def per_url(url: str) -> list[InstanceSample]:
        out = []
        for _ in range(samples_per_url):
            out.append(await sample_instance(url, http_timeout=http_timeout))
        return out

    batches = await asyncio.gather(*(per_url(u) for u in urls))
    return [sample for batch in batches for sample in batch]


async def sample_instance(url: str, *, http_timeout: float = 3.0) -> InstanceSample:
    """One diagnostics answer from ``url``, on a new connection, bounded by ``http_timeout`` s."""
    async with BackendClient(url, timeout=http_timeout) as client:
        answer, diag = await client.diagnostics(count=False)
    if diag is None or not answer.ok:
        return InstanceSample(url, None, None, answer.error or f"HTTP {answer.status}", answer.clock_offset_s)
    return InstanceSample(url, diag.instance_id, diag.store, clock_offset_s=answer.clock_offset_s)


@dataclass(frozen=True, slots=True)
class StoreComparison:
    """What the ``shared store`` step found.

    ``split``: the instances read different data sets (or not the runbook's);
    ``keyspace``: one data set, but different database numbers or key prefixes;
    ``replicas``: one answer from each instance that reads the data set through a replica
    (its lag is the ``replication`` step's business); ``master``: the data set's master as
    reported by the runbook's Redis or an instance (``None`` when none reported one).
    """

    check: CheckResult
    split: bool = False
    keyspace: bool = False
    replicas: tuple[InstanceSample, ...] = ()
    master: StoreIdentity | None = None
    #: The runbook's own Redis is the master of ``master`` (so its offset can be read directly).
    ours_is_master: bool = False


def data_sets(identities: list[StoreIdentity]) -> list[set[int]]:
    """Group ``identities`` (by index) into data sets: two are one data set when they name the same
    server (``run_id``, else endpoint) or the same replication id (a master and its replicas)."""
    parent = list(range(len(identities)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(identities):
        for j in range(i):
            b = identities[j]
            same_server = (a.run_id or a.endpoint) == (b.run_id or b.endpoint)
            same_data = a.replid is not None and a.replid == b.replid
            if same_server or same_data:
                parent[root(i)] = root(j)
    groups: dict[int, set[int]] = {}
    for i in range(len(identities)):
        groups.setdefault(root(i), set()).add(i)
    return list(groups.values())


def keyspace(identity: StoreIdentity) -> str:
    """``db N, prefix 'P'`` with ``?`` for what is not reported."""
    db = "?" if identity.db is None else str(identity.db)
    prefix = "?" if identity.key_prefix is None else repr(identity.key_prefix)
    return f"db {db}, prefix {prefix}"


def _keyspaces_differ(a: StoreIdentity, b: StoreIdentity) -> bool:
    """True only when both report a value and the values differ (unknown is no evidence)."""
    return (a.db is not None and b.db is not None and a.db != b.db) or (
        a.key_prefix is not None and b.key_prefix is not None and a.key_prefix != b.key_prefix
    )


def compare_stores(samples: list[InstanceSample], ours: StoreIdentity | None) -> StoreComparison:
    """The ``shared store`` step: do all instances read one data set, through one keyspace, and is it
    the one ``ours`` (the runbook's Redis) names?

    Servers are compared by ``run_id`` and replication id, so an instance reading through a replica
    of the same data is not a split (its lag is judged by the ``replication`` step). Answers that
    name no store next to answers that do count as a split (an instance on an in-memory map).
    """
    answered = [s for s in samples if s.error is None]
    failed = [s for s in samples if s.error is not None]
    instances = sorted({s.label for s in answered})
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
        return StoreComparison(
            CheckResult(
                "shared store",
                Status.ERROR if failed else Status.SKIP,
                f"no instance answered its diagnostics route ({reason})",
                data,
            )
        )
    named = [s for s in answered if s.store is not None]
    if not named:
        return StoreComparison(
            CheckResult(
                "shared store",
                Status.WARN,
                f"{len(instances)} instance(s) answered but none reports its store (the TypeScript backend "
                "does not); sharing is judged from session lookups instead",
                data,
            )
        )
    if len(named) < len(answered):
        parts = ", ".join(f"{k}: {n} answer(s)" for k, n in stores.items())
        return StoreComparison(
            CheckResult(
                "shared store",
                Status.FAIL,
                f"some instances report no store ({parts}); a session made on one is unknown to the others",
                data,
            ),
            split=True,
        )
    identities = [s.store for s in named if s.store is not None]
    everyone = [*identities, *([ours] if ours is not None else [])]
    groups = data_sets(everyone)
    theirs_groups = [g for g in groups if any(i < len(identities) for i in g)]
    data["dataSets"] = len(theirs_groups)
    if len(theirs_groups) > 1:
        parts = ", ".join(f"{k}: {n} answer(s)" for k, n in stores.items())
        why = "" if all(i.replid for i in identities) else " (not every instance reports a replication id)"
        return StoreComparison(
            CheckResult(
                "shared store",
                Status.FAIL,
                f"instances report different stores ({parts}), not one data set{why}; a session made on one "
                "is unknown to the others",
                data,
            ),
            split=True,
        )
    theirs = identities[0]
    if ours is not None and len(groups) > 1:
        return StoreComparison(
            CheckResult(
                "shared store",
                Status.FAIL,
                f"every instance uses {theirs.endpoint} (run_id {theirs.run_id}), not the Redis that "
                f"the runbook's URL names ({ours.endpoint}, run_id {ours.run_id})",
                data,
            ),
            split=True,
        )
    spaces = sorted({(s.label, keyspace(s.store)) for s in named if s.store is not None})
    data["keyspaces"] = {label: space for label, space in spaces}
    mismatch = any(_keyspaces_differ(a, b) for a in identities for b in identities)
    if mismatch:
        shown = "; ".join(f"{label}: {space}" for label, space in spaces)
        return StoreComparison(
            CheckResult(
                "shared store",
                Status.FAIL,
                f"instances read one Redis data set through different keyspaces ({shown}); a session "
                "written under one is invisible under another",
                data,
            ),
            keyspace=True,
        )
    if ours is not None and any(_keyspaces_differ(theirs_one, ours) for theirs_one in identities):
        return StoreComparison(
            CheckResult(
                "shared store",
                Status.FAIL,
                f"the instances read {keyspace(theirs)}, but this runbook reads {keyspace(ours)} of the same "
                "data set (set REDIS_URL's database number and SESSION_KEY_PREFIX for the runbook as the "
                "instances have them)",
                data,
            ),
            keyspace=True,
        )
    # The runbook's own Redis first: its offset is read directly, not through an instance.
    masters = [i for i in reversed(everyone) if i.role == "master"]
    master = masters[0] if masters else None
    replicas: dict[str, InstanceSample] = {}
    for sample in named:
        if sample.store is not None and sample.store.is_replica:
            replicas.setdefault(sample.label, sample)
    servers = {i.run_id or i.endpoint for i in identities}
    note = f"; {len(failed)} sample(s) failed" if failed else ""
    key = theirs.run_id or theirs.endpoint
    if len(servers) > 1 or replicas:
        text = (
            f"{len(answered)} answer(s) from {len(instances)} instance(s), one data set (replication id "
            f"{theirs.replid}) on {len(servers)} server(s); {len(replicas)} instance(s) read through a replica "
            f"({', '.join(sorted(replicas))}), whose lag the replication step judges{note}"
        )
    else:
        text = f"{len(answered)} answer(s) from {len(instances)} instance(s), all on one store ({key}){note}"
    return StoreComparison(
        CheckResult("shared store", Status.WARN if failed else Status.PASS, text, data),
        replicas=tuple(replicas.values()),
        master=master,
        ours_is_master=ours is not None and master is ours,
    )


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
