"""labsession as a user installs it: the wheel, non-editable, in a fresh virtualenv, run from a
folder outside the repository. Every command that needs the notebooks must find them there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import REPO

pytestmark = pytest.mark.slow
INSTALL_TIMEOUT = 900


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        cwd=out,
        env=dict(os.environ),
        timeout=INSTALL_TIMEOUT,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("labsession-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """(a folder outside the repository, the environment of a fresh venv holding only the wheel)."""
    home = tmp_path_factory.mktemp("user")
    venv = home / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], cwd=home, env=dict(os.environ))
    assert made.returncode == 0, made.stderr
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LABSESSION_", "PYTHON", "JUPYTER", "VIRTUAL_ENV", "REDIS_"))
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        JUPYTER_DATA_DIR=str(home / "jupyter-data"),
        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
        IPYTHONDIR=str(home / "ipython"),
    )
    pip = _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)],
        cwd=home,
        env=env,
        timeout=INSTALL_TIMEOUT,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    elsewhere = home / "elsewhere"
    elsewhere.mkdir()
    yield elsewhere, env


def test_the_wheel_carries_every_notebook_and_runbook(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("notebooks", "runbooks"):
        for source in (REPO / folder).glob("*.ipynb"):
            assert f"labsession/_notebooks/{folder}/{source.name}" in names
    assert "labsession/py.typed" in names


def test_installed_labsession_is_the_wheel_not_the_checkout(installed: tuple[Path, dict[str, str]]) -> None:
    cwd, env = installed
    where = _run(
        [
            "python",
            "-c",
            "import labsession, labsession.resources as r; print(labsession.__file__); print(r.notebook_root())",
        ],
        cwd=cwd,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    module, root = where.stdout.split()
    assert str(REPO) not in module and "site-packages" in module
    assert root.endswith("_notebooks")


def test_health_on_the_embedded_default_passes(installed: tuple[Path, dict[str, str]]) -> None:
    cwd, env = installed
    result = _run(["labsession", "health", "--embedded", "--out", "health-out"], cwd=cwd, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: PASS" in result.stdout
    summary = json.loads((cwd / "health-out" / "latest" / "summary.json").read_text())
    assert summary["verdict"] == "PASS"


@pytest.mark.parametrize("name", ["redis_connectivity", "invalid_session", "redis_latency_memory"])
def test_each_runbook_runs(installed: tuple[Path, dict[str, str]], name: str) -> None:
    cwd, env = installed
    result = _run(["labsession", "runbook", name, "--embedded", "--json"], cwd=cwd, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["healthy"] is True and summary["verdict"] == "PASS", summary


def test_check_runs(installed: tuple[Path, dict[str, str]]) -> None:
    cwd, env = installed
    result = _run(["labsession", "check", "--embedded"], cwd=cwd, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: PASS" in result.stdout


def test_notebooks_are_copied_for_jupyterlab_and_never_overwritten(installed: tuple[Path, dict[str, str]]) -> None:
    cwd, env = installed
    first = _run(["labsession", "notebooks", "mine"], cwd=cwd, env=env)
    assert first.returncode == 0, first.stderr
    copied = sorted(p.relative_to(cwd / "mine").as_posix() for p in (cwd / "mine").rglob("*.ipynb"))
    expected = sorted(f"{d}/{p.name}" for d in ("notebooks", "runbooks") for p in (REPO / d).glob("*.ipynb"))
    assert copied == expected
    (cwd / "mine" / "notebooks" / "00_onboarding.ipynb").write_text("my edits")
    again = _run(["labsession", "notebooks", "mine"], cwd=cwd, env=env)
    assert again.returncode == 2 and "--force" in again.stderr
    assert (cwd / "mine" / "notebooks" / "00_onboarding.ipynb").read_text() == "my edits"
    forced = _run(["labsession", "notebooks", "mine", "--force"], cwd=cwd, env=env)
    assert forced.returncode == 0 and (cwd / "mine" / "notebooks" / "00_onboarding.ipynb").read_text() != "my edits"
