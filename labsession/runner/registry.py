"""Which notebooks ``labsession health`` runs: a registry others can add to.

The diagnostic notebooks (``notebooks/01``–``04``) and the runbooks (:data:`RUNBOOKS`,
:data:`HEALTH_NOTEBOOKS`) are registered here. Another package adds its own health checks by
calling :func:`register` before the run starts, for example in a wrapper script that then
calls :func:`labsession.cli.main`.

Every registered notebook must follow the notebook conventions (:mod:`labsession.notebook`):
the common parameters, ``embedded=True`` picks up the runner's embedded target from the
environment, and a FAIL or ERROR raises at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..resources import notebook_root
from ..runbooks import (
    CONNECTIVITY_CAUSES,
    CONNECTIVITY_OK,
    InvalidSessionCause,
    LatencyMemoryCause,
    TerminalDisconnectsCause,
)

__all__ = [
    "DEFAULT_NOTEBOOKS",
    "HEALTH_NOTEBOOKS",
    "RUNBOOKS",
    "HealthNotebook",
    "RunbookSpec",
    "register",
    "registry",
    "runbook_dir",
]


@dataclass(frozen=True, slots=True)
class HealthNotebook:
    """One notebook ``labsession health`` executes.

    ``path`` is relative to :func:`~labsession.resources.notebook_root` (or absolute);
    ``parameters`` are extra papermill parameters (never credentials) merged over the run's
    common ones; ``name`` is the short name used in ``summary.json``, ``junit.xml`` and output
    file names.
    """

    name: str
    path: str
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Whether the notebook writes probe sessions (informational: it SKIPs them when read-only).
    writes: bool = False

    @property
    def file(self) -> Path:
        p = Path(self.path)
        return p if p.is_absolute() else notebook_root() / p


DEFAULT_NOTEBOOKS: tuple[HealthNotebook, ...] = (
    HealthNotebook("connection_check", "notebooks/01_connection_check.ipynb"),
    HealthNotebook("session_lifecycle", "notebooks/02_session_lifecycle.ipynb", writes=True),
    HealthNotebook("ttl_inspection", "notebooks/03_ttl_inspection.ipynb"),
    HealthNotebook("websocket_probe", "notebooks/04_websocket_probe.ipynb", writes=True),
)

_extra: list[HealthNotebook] = []


def register(notebook: HealthNotebook) -> None:
    """Add ``notebook`` to what ``labsession health`` runs (a name already registered is replaced)."""
    _extra[:] = [n for n in _extra if n.name != notebook.name]
    _extra.append(notebook)


def runbook_dir() -> Path:
    """The ``runbooks/`` folder: installed with the package, or the source tree's."""
    return notebook_root() / "runbooks"


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
    "redis_latency_memory": RunbookSpec(
        "redis_latency_memory",
        "why Redis is slow or full: latency, slow commands, memory, eviction, TTLs, big keys",
        "redis_latency_memory.ipynb",
        tuple(c.value for c in LatencyMemoryCause),
        (LatencyMemoryCause.NO_FAULT_FOUND.value,),
    ),
    # Not in HEALTH_NOTEBOOKS: it holds connections for a minute or more, and needs a session.
    "terminal_disconnects": RunbookSpec(
        "terminal_disconnects",
        "why a lab terminal's WebSocket keeps dropping",
        "terminal_disconnects.ipynb",
        tuple(c.value for c in TerminalDisconnectsCause),
        (TerminalDisconnectsCause.NO_FAULT_FOUND.value,),
    ),
}

#: The runbooks as ``labsession health`` checks (read by :func:`labsession.runner.registry.registry`):
#: with no session id, ``invalid_session`` checks the store, the instances' sharing, eviction
#: and visibility lag; ``redis_connectivity`` checks every layer down to PING.
HEALTH_NOTEBOOKS: list[HealthNotebook] = [
    HealthNotebook("runbook_redis_connectivity", "runbooks/redis_connectivity.ipynb"),
    HealthNotebook("runbook_invalid_session", "runbooks/invalid_session.ipynb", writes=True),
]


def registry() -> list[HealthNotebook]:
    """Every health notebook, defaults first, then :data:`HEALTH_NOTEBOOKS`, then registered ones.

    Names are unique (a later entry replaces an earlier one of the same name, in place).
    """
    found: list[HealthNotebook] = [*DEFAULT_NOTEBOOKS, *HEALTH_NOTEBOOKS]
    found.extend(_extra)
    out: dict[str, HealthNotebook] = {}
    for notebook in found:
        out[notebook.name] = notebook
    return list(out.values())
