"""Which notebooks ``labsession health`` runs: a registry others can add to.

The diagnostic notebooks (``notebooks/01``–``04``) are registered here. Another package adds
its own health checks in one of two ways:

* a module-level ``HEALTH_NOTEBOOKS: list[HealthNotebook]`` in ``labsession.runbooks``
  (read by :func:`registry` when that package exists), or
* :func:`register` at import time of a module ``labsession health`` imports.

Every registered notebook must follow the notebook conventions (:mod:`labsession.notebook`):
the common parameters, ``embedded=True`` picks up the runner's embedded target from the
environment, and a FAIL or ERROR raises at the end.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_NOTEBOOKS", "ROOT", "HealthNotebook", "register", "registry"]

#: The repository (or source tree) root: notebook paths are relative to it.
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class HealthNotebook:
    """One notebook ``labsession health`` executes.

    ``path`` is relative to :data:`ROOT` (or absolute); ``parameters`` are extra papermill
    parameters (never credentials) merged over the run's common ones; ``name`` is the short
    name used in ``summary.json``, ``junit.xml`` and output file names.
    """

    name: str
    path: str
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Whether the notebook writes probe sessions (informational: it SKIPs them when read-only).
    writes: bool = False

    @property
    def file(self) -> Path:
        p = Path(self.path)
        return p if p.is_absolute() else ROOT / p


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


def registry() -> list[HealthNotebook]:
    """Every health notebook, defaults first, then ``labsession.runbooks.HEALTH_NOTEBOOKS``, then registered ones.

    Names are unique (a later entry replaces an earlier one of the same name, in place).
    """
    found: list[HealthNotebook] = list(DEFAULT_NOTEBOOKS)
    try:
        runbooks = importlib.import_module("labsession.runbooks")
    except ImportError:
        runbooks = None
    found.extend(getattr(runbooks, "HEALTH_NOTEBOOKS", []) or [])
    found.extend(_extra)
    out: dict[str, HealthNotebook] = {}
    for notebook in found:
        out[notebook.name] = notebook
    return list(out.values())
