"""Every cause code of every runbook is named by a test that stages it against real processes.

The staging tests live in the modules below; a cause code none of them mentions (as an enum
member or its string) has no staged test, and a new code added without one fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from labsession import runbooks
from labsession.runner.registry import RUNBOOKS

HERE = Path(__file__).parent

#: runbook -> the test modules that stage its causes with real redis-servers, backends and proxies.
STAGED_IN = {
    "invalid_session": ("test_diagnosis.py", "test_invalid_session_instances.py"),
    "redis_connectivity": ("test_diagnosis.py",),
    "redis_latency_memory": ("test_redis_latency_memory.py",),
    "terminal_disconnects": ("test_terminal_disconnects.py",),
}


def named_in(module: Path) -> set[str]:
    """Enum member names (``C.SESSION_MISSING``), string constants and the string constants of
    :mod:`labsession.runbooks` (``CONNECTIVITY_OK``) a test module uses."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
        elif isinstance(node, ast.Name) and isinstance(value := getattr(runbooks, node.id, None), str):
            names.add(value)
    return names


def test_every_registered_runbook_has_staging_tests() -> None:
    assert set(STAGED_IN) == set(RUNBOOKS)


@pytest.mark.parametrize("runbook", sorted(STAGED_IN))
def test_every_cause_is_named_by_a_staging_test(runbook: str) -> None:
    named: set[str] = set()
    for module in STAGED_IN[runbook]:
        named |= named_in(HERE / module)
    missing = [cause for cause in RUNBOOKS[runbook].causes if cause not in named]
    assert missing == [], f"{runbook}: no staged test names {missing}"


@pytest.mark.parametrize("runbook", sorted(STAGED_IN))
def test_the_runbooks_page_tells_every_cause(runbook: str) -> None:
    # docs/runbooks.md is what on-call reads first; a cause code added to a runbook is added there too
    page = (HERE.parents[1] / "docs" / "runbooks.md").read_text()
    section = page.split(f"## `{runbook}`", 1)[1].split("\n## ", 1)[0]
    missing = [cause for cause in RUNBOOKS[runbook].causes if f"`{cause}`" not in section]
    assert missing == [], f"docs/runbooks.md, section {runbook}: {missing}"
