"""The committed notebooks read like documents and run as written (structure only; nbval executes them)."""

from __future__ import annotations

import nbformat
import papermill
import pytest

from labsession.health_registry import DEFAULT_NOTEBOOKS
from labsession.notebook import COMMON_PARAMS

BOOKS = [n.file for n in DEFAULT_NOTEBOOKS]


@pytest.mark.parametrize("path", BOOKS, ids=[p.stem for p in BOOKS])
def test_notebook_is_a_document_with_one_parameters_cell(path: object) -> None:
    book = nbformat.read(str(path), as_version=4)
    nbformat.validate(book)
    assert book.metadata["kernelspec"]["name"] == "python3"
    first = book.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert len(first.source.split("\n\n", 1)[1]) > 200  # one paragraph of purpose
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is book.cells[1]
    headings = [c.source.split("\n", 1)[0] for c in book.cells if c.cell_type == "markdown"]
    assert any(h.startswith("## 1. ") for h in headings) and headings[-1] == "## Verdict"
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code[-1].source.strip() == "await run.finish()"
    assert "nb.start(" in code[1].source  # parameters validated right after the parameters cell
    assert all(not c.outputs and c.execution_count is None for c in code)  # committed stripped


@pytest.mark.parametrize("path", BOOKS, ids=[p.stem for p in BOOKS])
def test_help_notebook_lists_every_parameter_with_type_and_meaning(path: object) -> None:
    params = papermill.inspect_notebook(str(path))
    assert set(COMMON_PARAMS) <= set(params)
    for name, info in params.items():
        assert info["help"], f"{name} has no help comment"
        assert info["inferred_type_name"] not in ("None", ""), f"{name} has no type"
    assert params["read_only"]["default"] == "True" and params["embedded"]["default"] == "True"
    assert params["redis_url_env"]["default"] == '"REDIS_URL"'
