"""Where the notebooks and runbooks are: inside the installed package, or in the source tree.

The repository's top-level ``notebooks/`` and ``runbooks/`` are the source of truth. A wheel or
sdist install carries copies under ``labsession/_notebooks/`` (the build maps them there), so
``labsession health`` and ``labsession runbook`` work from any folder. An editable install or
a checkout has no such copy and uses the source tree next to the package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import ConfigError

__all__ = ["NOTEBOOK_DIRS", "copy_notebooks", "notebook_root"]

#: The folders under :func:`notebook_root` that hold notebooks.
NOTEBOOK_DIRS = ("notebooks", "runbooks")
_PACKAGE = Path(__file__).resolve().parent


def notebook_root() -> Path:
    """The folder that holds ``notebooks/`` and ``runbooks/`` (installed copy first)."""
    bundled = _PACKAGE / "_notebooks"
    if (bundled / "notebooks").is_dir():
        return bundled
    return _PACKAGE.parent


def copy_notebooks(destination: Path, *, overwrite: bool = False) -> list[Path]:
    """Copy every notebook and runbook into ``destination``/notebooks and ``destination``/runbooks.

    Returns the files written. Raises :class:`~labsession.errors.ConfigError` before writing
    anything when a file would be overwritten and ``overwrite`` is False: a user's edited
    notebook is never replaced by accident.
    """
    root = notebook_root()
    sources = [path for folder in NOTEBOOK_DIRS for path in sorted((root / folder).glob("*.ipynb"))]
    targets = [destination / path.parent.name / path.name for path in sources]
    existing = [target for target in targets if target.exists()]
    if existing and not overwrite:
        raise ConfigError(
            str(destination),
            f"already holds {len(existing)} of these notebooks (for example {existing[0].name}); "
            "pass --force to replace them",
        )
    for source, target in zip(sources, targets, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return targets
