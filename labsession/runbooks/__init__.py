"""Incident runbooks: the logic behind ``runbooks/*.ipynb`` and ``labsession runbook NAME``.

Each runbook takes typed inputs, runs its steps (each a :class:`~labsession.checks.CheckResult`
with evidence) and returns a :class:`Diagnosis` naming one cause code and its remedy, which
it also records in ``Report.facts["cause"]`` and ``Report.facts["remedy"]``.

``RUNBOOKS`` lists them for the CLI and for ``labsession health``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..health_registry import HealthNotebook
from .base import Diagnosis, conclude
from .invalid_session import (
    LOOKUP_RETRY_WINDOW_MS,
    InvalidSessionCause,
    InvalidSessionInputs,
    diagnose_invalid_session,
)
from .redis_connectivity import CAUSES as CONNECTIVITY_CAUSES
from .redis_connectivity import OK as CONNECTIVITY_OK
from .redis_connectivity import diagnose_redis_connectivity

__all__ = [
    "HEALTH_NOTEBOOKS",
    "LOOKUP_RETRY_WINDOW_MS",
    "RUNBOOKS",
    "CONNECTIVITY_CAUSES",
    "CONNECTIVITY_OK",
    "Diagnosis",
    "InvalidSessionCause",
    "InvalidSessionInputs",
    "RunbookSpec",
    "conclude",
    "diagnose_invalid_session",
    "diagnose_redis_connectivity",
    "runbook_dir",
]


def runbook_dir() -> Path:
    """The ``runbooks/`` folder of the source tree (next to the ``labsession`` package)."""
    return Path(__file__).resolve().parents[2] / "runbooks"


@dataclass(frozen=True, slots=True)
class RunbookSpec:
    """A runbook: its ``name``, a one-line ``title``, its notebook file, the cause codes it can
    name, the codes that mean "nothing wrong", and the parameters a health run passes."""

    name: str
    title: str
    notebook: str
    causes: tuple[str, ...]
    healthy: tuple[str, ...]
    health_parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return runbook_dir() / self.notebook


RUNBOOKS: dict[str, RunbookSpec] = {
    "invalid_session": RunbookSpec(
        "invalid_session",
        "why a WebSocket connect says 'Invalid session' (close 4000)",
        "invalid_session.ipynb",
        tuple(c.value for c in InvalidSessionCause),
        (InvalidSessionCause.NO_FAULT_FOUND.value,),
    ),
    "redis_connectivity": RunbookSpec(
        "redis_connectivity",
        "why a connection to Redis fails, layer by layer",
        "redis_connectivity.ipynb",
        CONNECTIVITY_CAUSES,
        (CONNECTIVITY_OK,),
    ),
}

#: The runbooks as ``labsession health`` checks (read by :func:`labsession.health_registry.registry`):
#: with no session id, ``invalid_session`` checks the store, the instances' sharing, eviction
#: and visibility lag; ``redis_connectivity`` checks every layer down to PING.
HEALTH_NOTEBOOKS: list[HealthNotebook] = [
    HealthNotebook("runbook_redis_connectivity", "runbooks/redis_connectivity.ipynb"),
    HealthNotebook("runbook_invalid_session", "runbooks/invalid_session.ipynb", writes=True),
]
