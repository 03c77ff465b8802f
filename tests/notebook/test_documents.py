"""The committed notebooks read like documents and run as written (structure here; nbval executes them).

nbval runs every notebook under ``--nbval-lax``: a code cell only has to run, unless it carries
the cell tag ``nbval-check-output`` (not a comment a reader would see); then its fresh output
must equal the one committed in the notebook, both sanitized by ``nbval_sanitize.cfg``. So the
notebooks are committed stripped except for those marked cells, whose expected output is
stored already sanitized and free of secrets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from nbval.plugin import find_comment_markers, find_metadata_tags, get_sanitize_patterns

from labsession.notebook import COMMON_PARAMS
from labsession.notebook.declared import parse_declarations
from labsession.runner.registry import DEFAULT_NOTEBOOKS

from support import CANARY, REPO

ROOT = REPO
BOOKS = [n.file for n in DEFAULT_NOTEBOOKS]
#: Notebooks outside the health run that follow the same conventions (the history notebook has no
#: target, so it declares only the parameters it uses).
DOCUMENTS = [*BOOKS, ROOT / "notebooks" / "06_health_history.ipynb"]
#: Every notebook nbval runs (pyproject's testpaths): health notebooks, walkthroughs, runbooks.
ALL_BOOKS = sorted([*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "runbooks").glob("*.ipynb")])
SANITIZERS = get_sanitize_patterns((ROOT / "nbval_sanitize.cfg").read_text(encoding="utf-8"))
#: ``scheme://user:password@host``: a URL that carries a password.
URL_WITH_PASSWORD = re.compile(r"\w+://[^\s/@:]*:[^\s/@]+@")


def nbval_checks(cell: Any) -> bool:
    """Whether ``pytest --nbval-lax`` compares this code cell's output (nbval's own marker parsing)."""
    options = dict(find_metadata_tags(cell.metadata))
    options.update(find_comment_markers(cell.source))
    return bool(options.get("check", False))


def sanitized(text: str) -> str:
    for regex, replace in SANITIZERS:
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.stem for p in DOCUMENTS])
def test_notebook_is_a_document_with_one_parameters_cell(path: Path) -> None:
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
    # The verdict is compared, not only run: a notebook that runs but names the wrong verdict fails.
    # (Bound to a name, so the Report's repr, full of raw timings, is not an output too.)
    assert code[-1].source.splitlines()[-1] == "report = await run.finish()"
    assert nbval_checks(code[-1]), "the verdict cell must be tagged nbval-check-output"
    assert "nb.start(" in code[1].source  # parameters validated right after the parameters cell


@pytest.mark.parametrize("path", ALL_BOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in ALL_BOOKS])
def test_outputs_are_committed_on_the_cells_nbval_checks_and_nowhere_else(path: Path) -> None:
    book = nbformat.read(str(path), as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    for number, cell in enumerate(code, start=1):
        where = f"{path.name}, code cell {number}"
        if not nbval_checks(cell):
            assert not cell.outputs and cell.execution_count is None, f"{where}: not marked, so committed stripped"
            continue
        # nbval skips the comparison for a cell without an execution count: the check would pass unseen.
        assert cell.execution_count is not None and cell.outputs, f"{where}: marked, so committed with its output"
        for output in cell.outputs:
            if output.output_type == "stream":
                text = output.text
            else:
                assert output.output_type in ("display_data", "execute_result"), f"{where}: {output.output_type}"
                # What nbval compares (the root conftest leaves HTML and the report JSON out of it).
                assert set(output.data) == {"text/plain"}, f"{where}: {sorted(output.data)}"
                text = output.data["text/plain"]
            assert sanitized(text) == text, f"{where}: expected output not sanitized:\n{text}"
            assert CANARY not in text and not URL_WITH_PASSWORD.search(text), f"{where}: a secret in the output"


@pytest.mark.parametrize("path", BOOKS, ids=[p.stem for p in BOOKS])
def test_help_notebook_lists_every_parameter_with_type_and_meaning(path: Path) -> None:
    params = papermill.inspect_notebook(str(path))
    assert set(COMMON_PARAMS) <= set(params)
    for name, info in params.items():
        assert info["help"], f"{name} has no help comment"
        assert info["inferred_type_name"] not in ("None", ""), f"{name} has no type"
    assert params["read_only"]["default"] == "True" and params["embedded"]["default"] == "None"
    assert params["redis_url_env"]["default"] == '"REDIS_URL"'


def test_the_history_notebook_declares_each_parameter_with_type_meaning_and_bounds() -> None:
    params = papermill.inspect_notebook(str(DOCUMENTS[-1]))
    assert set(params) == {"history_path", "last_runs", "timeout_seconds", "budget_seconds"}
    for name, info in params.items():
        assert info["help"] and info["inferred_type_name"] not in ("None", ""), name


@pytest.mark.parametrize("path", sorted((REPO / "runbooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_a_runbook_states_its_cause_at_the_top_and_at_the_end(path: Path) -> None:
    cells = nbformat.read(str(path), as_version=4).cells
    shown = [i for i, c in enumerate(cells) if c.cell_type == "code" and "show_cause(" in c.source]
    first_step = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## 1. "))
    assert len(shown) == 2 and shown[0] < first_step and shown[1] == len(cells) - 1


@pytest.mark.parametrize("path", ALL_BOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in ALL_BOOKS])
def test_test_markers_are_tags_never_code_a_reader_sees(path: Path) -> None:
    text = "".join(c.source for c in nbformat.read(str(path), as_version=4).cells)
    assert "NBVAL" not in text


@pytest.mark.parametrize("path", ALL_BOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in ALL_BOOKS])
def test_each_parameter_is_written_once_in_the_parameters_cell(path: Path) -> None:
    book = nbformat.read(str(path), as_version=4)
    declared = parse_declarations(book.cells[1].source)
    assert list(declared) == list(papermill.inspect_notebook(str(path)))  # papermill reads the same cell
    start = next(c.source for c in book.cells if "nb.start(" in c.source)
    call = start[start.index("nb.start(") :].split(")", 1)[0]
    assert not [name for name in declared if name in call], call  # nb.start(title) reads them itself
    assert "Param(" not in "".join(c.source for c in book.cells if c.cell_type == "code")
