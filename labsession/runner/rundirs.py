"""``--out DIR``: each run in its own dated folder, a ``latest`` link to the newest, ``--keep N`` of them.

A run id is its start time in UTC and six random hex digits (``20261126T063012Z-3fa9c1``), so
folders sort by time and two runs started in the same second never share one. ``latest`` is a
relative symbolic link, replaced atomically once a run's files are all written, so a reader
following it never sees half a run. Retention removes only folders named like a run id, oldest
first, never the current run's.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from pathlib import Path

__all__ = ["LATEST", "RUN_ID", "new_run_id", "point_latest", "prune_runs", "run_dirs"]

#: The name of the link to the newest finished run in ``--out DIR``.
LATEST = "latest"
#: What a run id (and so a run folder) looks like.
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def new_run_id(now: float | None = None) -> str:
    """A new run id for a run starting at ``now`` (Unix seconds; default: now)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


def run_dirs(root: Path) -> list[Path]:
    """The run folders in ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if RUN_ID.match(p.name) and p.is_dir() and not p.is_symlink())


def point_latest(root: Path, run_dir: Path) -> None:
    """Make ``root/latest`` point at ``run_dir`` (atomically: a new link renamed over the old one)."""
    link = root / LATEST
    temporary = root / f".{LATEST}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    os.symlink(run_dir.name, temporary, target_is_directory=True)
    os.replace(temporary, link)


def prune_runs(root: Path, keep: int, *, current: Path | None = None) -> list[Path]:
    """Remove all but the newest ``keep`` run folders of ``root`` (0 keeps all); returns those removed."""
    if keep <= 0:
        return []
    removed = []
    folders = [p for p in run_dirs(root) if current is None or p.resolve() != current.resolve()]
    excess = len(folders) + (1 if current is not None else 0) - keep
    for folder in folders[: max(0, excess)]:
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
