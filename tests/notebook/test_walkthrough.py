"""The onboarding's live pieces, and the structure of the notebooks and runbooks this helper owns."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

from labsession import LabSessionService
from labsession.notebook import COMMON_PARAMS
from labsession.notebook.walkthrough import (
    InMemoryBackend,
    architecture_figure,
    round_robin,
    short_lived_session,
    watch,
)

from support import REPO

ROOT = REPO
BOOKS = [
    ROOT / "notebooks" / "00_onboarding.ipynb",
    ROOT / "notebooks" / "05_session_explorer.ipynb",
    ROOT / "runbooks" / "invalid_session.ipynb",
    ROOT / "runbooks" / "redis_connectivity.ipynb",
]


async def test_two_in_memory_instances_disagree_about_a_session() -> None:
    a, b = InMemoryBackend("a"), InMemoryBackend("b")
    async with a.client() as on_a, b.client() as on_b:
        created = await on_a.post("/api/labs/start", json={"userId": "u"})
        sid = created.json()["sessionId"]
        spread = await round_robin([on_a, on_b], f"/api/labs/session/{sid}/validate", 6)
    assert created.status_code == 201
    assert spread == [(200, "a"), (404, "b")] * 3


async def test_a_short_lived_session_is_valid_then_gone(sessions: LabSessionService) -> None:
    session = await short_lived_session(sessions, 1)
    ticks = await watch(sessions, session.session_id, duration=1.6, interval=0.2)
    assert ticks[0].reason == "ok" and ticks[0].ttl == 1
    assert ticks[-1].reason == "not_found" and ticks[-1].ttl == -2


def test_the_architecture_figure_draws_the_six_parts() -> None:
    import matplotlib.pyplot as plt

    figure = architecture_figure()
    try:
        texts = " ".join(t.get_text() for t in figure.axes[0].texts)
    finally:
        plt.close(figure)
    for part in ("browser", "load balancer", "instance A", "instance B", "Redis"):
        assert part in texts


@pytest.mark.parametrize("path", BOOKS, ids=[p.stem for p in BOOKS])
def test_notebook_reads_like_a_document(path: Path) -> None:
    book = nbformat.read(str(path), as_version=4)
    nbformat.validate(book)
    assert book.cells[0].cell_type == "markdown" and book.cells[0].source.startswith("# ")
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is book.cells[1]
    code = [c for c in book.cells if c.cell_type == "code"]
    assert "nb.start(" in code[1].source  # parameters validated right after the parameters cell
    headings = [c.source.split("\n", 1)[0] for c in book.cells if c.cell_type == "markdown"]
    assert any(h.startswith("## 1. ") for h in headings)
    # Outputs: stripped except on cells nbval checks (test_notebooks.py checks every notebook for that).
    params = papermill.inspect_notebook(str(path))
    assert set(COMMON_PARAMS) <= set(params)
    assert params["read_only"]["default"] == "True" and params["embedded"]["default"] == "None"
    for name, info in params.items():
        assert info["help"] and info["inferred_type_name"] not in ("None", ""), name
    if path.parent.name == "runbooks" or path.stem == "00_onboarding":
        assert headings[-1] == "## Verdict" and "run.finish()" in code[-1].source
