"""What Redis's ``maxmemory-policy`` means for session keys: the one judgement every check shares.

Every session key carries a TTL. So ``volatile-*`` policies, which evict only keys with a TTL,
evict exactly the sessions (before any key without one), and ``allkeys-*`` policies may evict
them like any other key; either way a live lab loses its session and the user sees "Invalid
session". ``noeviction`` makes a full Redis refuse writes instead: new sessions fail loudly,
existing ones are kept. With ``maxmemory`` 0 (no limit) nothing is evicted whatever the policy,
but the policy decides what happens the day a limit is set, so it is still judged.

The facts come from ``INFO`` (``maxmemory_policy``, ``maxmemory``, ``evicted_keys``), never
``CONFIG GET``, which a read-only ACL user may not run. ``docs/eviction.md`` has the reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import Status

__all__ = ["EVICTION_REMEDY", "EvictionJudgement", "can_evict_sessions", "judge_eviction"]

#: What to do when sessions may be evicted.
EVICTION_REMEDY = (
    "set maxmemory-policy noeviction with memory headroom (or give sessions a Redis or database of their own); "
    "on Upstash keep eviction disabled for the sessions database"
)


def can_evict_sessions(policy: str | None) -> bool | None:
    """True when ``policy`` may evict a session key, False for ``noeviction``, None when unknown."""
    if policy is None:
        return None
    name = policy.strip().lower()
    if name == "noeviction":
        return False
    if name.startswith(("volatile-", "allkeys-")):
        return True
    return None


def _why(policy: str) -> str:
    if policy.lower().startswith("volatile-"):
        return "it evicts keys that have a TTL, and every session key has one"
    return "it may evict any key, live sessions included"


@dataclass(frozen=True, slots=True)
class EvictionJudgement:
    """The policy's verdict (``policy_status``/``policy_evidence``), the evictions' verdict
    (``evictions_status``/``evictions_evidence``), and whether sessions may already be lost."""

    policy: str | None
    evicted_keys: int | None
    policy_status: Status
    policy_evidence: str
    evictions_status: Status
    evictions_evidence: str
    sessions_may_be_lost: bool

    @property
    def status(self) -> Status:
        """The worse of the two verdicts."""
        worse = max((self.policy_status, self.evictions_status), key=lambda s: s.rank)
        return worse


def judge_eviction(policy: str | None, evicted_keys: int | None, maxmemory: int | None = None) -> EvictionJudgement:
    """Judge ``policy`` and ``evicted_keys`` (since the server started; ``None`` = hidden).

    Policy: PASS for ``noeviction``; WARN when it can evict session keys (unless ``maxmemory``
    is 0, no limit: PASS, noting the risk) or when it is hidden or unknown. Evictions: FAIL when
    keys were evicted under a policy that can evict sessions (or a hidden one); WARN when keys
    were evicted under ``noeviction`` (an earlier policy did it) or the count is hidden; else PASS.
    """
    risk = can_evict_sessions(policy)
    if policy is None:
        policy_status, policy_text = (
            Status.WARN,
            (
                "maxmemory-policy is hidden by the provider; cannot rule out that session keys are evicted "
                "when memory is full"
            ),
        )
    elif risk is False:
        policy_status, policy_text = (
            Status.PASS,
            (f"maxmemory-policy {policy}: a full Redis refuses writes rather than drop sessions"),
        )
    elif risk is None:
        policy_status, policy_text = Status.WARN, f"maxmemory-policy {policy} is not one labsession knows"
    elif maxmemory == 0:
        policy_status, policy_text = (
            Status.PASS,
            (
                f"maxmemory-policy {policy} with no memory limit evicts nothing today; once maxmemory is set it "
                f"can evict session keys: {_why(policy)}"
            ),
        )
    else:
        policy_status, policy_text = (
            Status.WARN,
            (f"maxmemory-policy {policy} can evict session keys when memory is full: {_why(policy)}; use noeviction"),
        )
    lost = False
    if evicted_keys is None:
        evictions_status, evictions_text = Status.WARN, "the provider hides evicted_keys; eviction cannot be ruled out"
    elif evicted_keys == 0:
        evictions_status, evictions_text = Status.PASS, "no key was evicted since the server started"
    elif risk is False:
        evictions_status, evictions_text = (
            Status.WARN,
            (
                f"{evicted_keys} keys were evicted since the server started, under an earlier policy than "
                f"{policy}; sessions may have vanished then"
            ),
        )
    else:
        lost = True
        evictions_status, evictions_text = (
            Status.FAIL,
            (
                f"{evicted_keys} keys were evicted since the server started under maxmemory-policy "
                f"{policy or 'hidden'}; sessions may have vanished early"
            ),
        )
    return EvictionJudgement(policy, evicted_keys, policy_status, policy_text, evictions_status, evictions_text, lost)
