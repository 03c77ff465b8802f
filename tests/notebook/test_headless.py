"""Plain papermill, as a scheduler runs it: a headless run never switches to an embedded target by
itself, and an unknown or misspelled parameter stops it. Real kernels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from labsession.checks import REPORT_MIME
from labsession.embedded.redis_server import free_port
from labsession.embedded.target import EMBEDDED_BACKENDS_ENV, EMBEDDED_REDIS_URL_ENV
from labsession.notebook.target import INTERACTIVE_ENV

from support import REPO

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(180)]
BOOK = REPO / "notebooks" / "03_ttl_inspection.ipynb"


@pytest.fixture(autouse=True)
def headless(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel as cron starts it: no runner's embedded target, no Jupyter server session."""
    for name in (EMBEDDED_REDIS_URL_ENV, EMBEDDED_BACKENDS_ENV, INTERACTIVE_ENV, "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


def run(tmp_path: Path, **parameters: Any) -> tuple[str | None, dict[str, Any] | None]:
    """(the error papermill raised, or None; the report the notebook displayed, or None)."""
    out = tmp_path / "out.ipynb"
    error = None
    try:
        papermill.execute_notebook(
            str(BOOK),
            str(out),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(BOOK.parent),
            execution_timeout=120,
        )
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    report = None
    for cell in json.loads(out.read_text())["cells"]:
        for output in cell.get("outputs", []):
            if REPORT_MIME in output.get("data", {}):
                report = output["data"][REPORT_MIME]
    return error, report


def test_a_broken_redis_url_is_diagnosed_not_swapped_for_an_embedded_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    error, report = run(tmp_path)
    assert error is not None and error.startswith("CheckFailed"), error
    assert report is not None and report["verdict"] == "FAIL"
    assert report["facts"]["target"]["embedded"] is False
    assert report["facts"]["target"]["origin"] == "target from $REDIS_URL"


def test_an_unset_variable_stops_the_run_in_one_sentence(tmp_path: Path) -> None:
    error, report = run(tmp_path)
    assert error is not None and error.startswith("ConfigError: REDIS_URL is not set"), error
    assert "never switches to an embedded one" in error and report is None


def test_a_misspelled_parameter_stops_the_run_naming_the_real_ones(tmp_path: Path) -> None:
    error, _ = run(tmp_path, embeded=False)
    assert error is not None and "'embeded' is not a parameter of this notebook" in error, error
    assert "embedded" in error.split("its parameters are:")[1]


def test_an_explicit_embedded_run_still_works_headless(tmp_path: Path) -> None:
    error, report = run(tmp_path, embedded=True, demo_sessions=5)
    assert error is None, error
    assert report is not None and report["verdict"] in ("PASS", "WARN")
    assert report["facts"]["target"]["embedded"] is True
