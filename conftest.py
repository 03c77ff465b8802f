"""Root conftest: the embedded target the notebook kernels diagnose under ``pytest --nbval-lax``.

nbval runs every notebook cell as a test item, and fixtures do not run for those items, so
the target is started in :func:`pytest_sessionstart` — one embedded Redis and two reference
backend instances — and handed to the kernels through environment variables (kernels inherit
this process's environment; credentials never become notebook parameters). It is started only
when the run collects notebooks (``notebooks/``, ``runbooks/`` or an ``.ipynb`` path), so a
targeted ``pytest tests/test_x.py`` does not pay for it.

Output checks: a cell tagged ``nbval-check-output`` is compared with the output committed in
the notebook, sanitized by ``nbval_sanitize.cfg``; every other cell only has to run. The
comparison uses each output's ``text/plain``: the HTML twin of a table says the same thing with
markup, and the verdict's machine-readable report (:data:`~labsession.checks.REPORT_MIME`) holds
raw timings no regex can mask, so both are left out of it (:func:`pytest_collection_modifyitems`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from labsession.checks import REPORT_MIME
from labsession.embedded.target import embedded_env, start_embedded_target

_NOTEBOOK_DIRS = ("notebooks", "runbooks")
#: MIME types nbval leaves out of the output comparison, besides its own (metadata, images, widget ids).
NBVAL_SKIP_COMPARE = ("text/html", REPORT_MIME)
_stop: list[Callable[[], None]] = []
_saved: dict[str, str | None] = {}
_state: list[tuple[str, str | None]] = []
_notebook_state: list[str | None] = []
_notebook_dir: list[str] = []


def _collects_notebooks(config: pytest.Config) -> bool:
    # The repository's own notebooks/ and runbooks/ folders only: tests/runbooks/ holds no notebook.
    folders = {config.rootpath / d for d in _NOTEBOOK_DIRS}
    for arg in config.args or []:
        path = Path(str(arg).split("::", 1)[0]).resolve()
        if path.suffix == ".ipynb" or any(path == f or path in f.parents or f in path.parents for f in folders):
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    """No test (nor a kernel or ``labsession health`` it starts) writes the user's own run history:
    the default history lives under ``$XDG_STATE_HOME``, here a folder of this test session."""
    state = tempfile.mkdtemp(prefix="labsession-test-state-")
    _state.append((state, os.environ.get("XDG_STATE_HOME")))
    os.environ["XDG_STATE_HOME"] = state


def pytest_unconfigure(config: pytest.Config) -> None:
    while _state:
        state, old = _state.pop()
        if old is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = old
        shutil.rmtree(state, ignore_errors=True)
    while _notebook_dir:
        shutil.rmtree(_notebook_dir.pop(), ignore_errors=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Notebook kernels (started at a notebook's first cell) get a run history of their own, empty:
    a module-scoped fixture may have run ``labsession health`` with the session's, and
    ``06_health_history`` must find no history to show what it committed."""
    if item.path.suffix == ".ipynb":
        if not _notebook_dir:
            _notebook_dir.append(tempfile.mkdtemp(prefix="labsession-notebook-state-"))
        _notebook_state[:] = [os.environ.get("XDG_STATE_HOME")]
        os.environ["XDG_STATE_HOME"] = _notebook_dir[0]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    if _notebook_state:
        old = _notebook_state.pop()
        if old is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = old


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _collects_notebooks(session.config):
        return
    redis_url, backend_urls, stop = start_embedded_target(2)
    _stop.append(stop)
    for name, value in embedded_env(redis_url, backend_urls).items():
        _saved[name] = os.environ.get(name)
        os.environ[name] = value


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for name, old in _saved.items():
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
    _saved.clear()
    while _stop:
        _stop.pop()()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make nbval compare the ``text/plain`` of checked cells only (see the module docstring)."""
    for item in items:
        notebook = item.parent
        skip = getattr(notebook, "skip_compare", None)  # set by nbval's notebook collector only
        if isinstance(skip, tuple) and not set(NBVAL_SKIP_COMPARE) <= set(skip):
            notebook.skip_compare = (*skip, *NBVAL_SKIP_COMPARE)
