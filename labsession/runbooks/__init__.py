"""Incident runbooks: the logic behind ``runbooks/*.ipynb`` and ``labsession runbook NAME``.

Each runbook takes typed inputs, runs its steps (each a :class:`~labsession.checks.CheckResult`
with evidence) and returns a :class:`Diagnosis` naming one cause code and its remedy, which
it also records in ``Report.facts["cause"]`` and ``Report.facts["remedy"]``.

Diagnosis logic only: which notebook runs a runbook, and how, is the runner's business
(:mod:`labsession.runner.registry`).
"""

from __future__ import annotations

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
from .redis_latency_memory import LatencyMemoryCause, LatencyMemoryInputs, diagnose_redis_latency_memory
from .terminal_disconnects import (
    TerminalDisconnectsCause,
    TerminalDisconnectsInputs,
    diagnose_terminal_disconnects,
)

__all__ = [
    "LOOKUP_RETRY_WINDOW_MS",
    "CONNECTIVITY_CAUSES",
    "CONNECTIVITY_OK",
    "Diagnosis",
    "InvalidSessionCause",
    "InvalidSessionInputs",
    "LatencyMemoryCause",
    "LatencyMemoryInputs",
    "TerminalDisconnectsCause",
    "TerminalDisconnectsInputs",
    "conclude",
    "diagnose_invalid_session",
    "diagnose_redis_connectivity",
    "diagnose_redis_latency_memory",
    "diagnose_terminal_disconnects",
]
