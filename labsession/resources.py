"""Where the notebooks and runbooks are: inside the installed package, or in the source tree.

The repository's top-level ``notebooks/`` and ``runbooks/`` are the source of truth. A wheel or
sdist install carries copies under ``labsession/_notebooks/`` (the build maps them there), so
``labsession health`` and ``labsession runbook`` work from any folder. An editable install or
a checkout has no such copy and uses the source tree next to the package.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["NOTEBOOK_DIRS", "notebook_root"]

#: The folders under :func:`notebook_root` that hold notebooks.
NOTEBOOK_DIRS = ("notebooks", "runbooks")
_PACKAGE = Path(__file__).resolve().parent


def notebook_root() -> Path:
    """The folder that holds ``notebooks/`` and ``runbooks/`` (installed copy first)."""
    bundled = _PACKAGE / "_notebooks"
    if (bundled / "notebooks").is_dir():
        return bundled
    return _PACKAGE.parent

