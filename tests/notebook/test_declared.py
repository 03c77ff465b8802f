"""A notebook's parameters are declared once, in its parameters cell, and read back in the kernel."""

from __future__ import annotations

import pytest

from labsession import ConfigError
from labsession.notebook.declared import kernel_parameters, parse_declarations, parse_injected

CELL = """redis_url_env: str = "REDIS_URL"  # the variable holding the URL
embedded: bool = None  # None: decide by who runs it
backend_urls: list[str] = []  # backend base URLs
batch_size: int = 500  # keys per SCAN call [1, 100_000]
pause_seconds: float = 0.0  # pause between batches, seconds [0, ]
"""


def test_a_declaration_gives_type_meaning_bounds_and_optionality() -> None:
    spec = parse_declarations(CELL)
    assert list(spec) == ["redis_url_env", "embedded", "backend_urls", "batch_size", "pause_seconds"]
    assert spec["batch_size"].kind is int and (spec["batch_size"].minimum, spec["batch_size"].maximum) == (1, 100_000)
    assert spec["batch_size"].meaning == "keys per SCAN call"
    assert spec["pause_seconds"].minimum == 0 and spec["pause_seconds"].maximum is None
    assert spec["embedded"].kind is bool and spec["embedded"].optional
    assert spec["backend_urls"].kind is list and spec["backend_urls"].items is str
    assert not spec["redis_url_env"].optional


@pytest.mark.parametrize("cell", ["x = 1", "import os", "x: dict = {}", "x: int = 1\nprint(x)"])
def test_anything_but_declarations_is_refused(cell: str) -> None:
    with pytest.raises(ConfigError):
        parse_declarations(cell)


def test_injected_values_are_literals_only() -> None:
    assert parse_injected("# Parameters\nbatch_size = 5\nbackend_urls = ['http://a:1']\n") == {
        "batch_size": 5,
        "backend_urls": ["http://a:1"],
    }
    for hostile in (
        '# Parameters\nx = 1; import os; os.system("touch pwned"); y = 1\n',
        "# Parameters\nx = __import__('os')\n",
        "# Parameters\nx = (\n",
    ):
        with pytest.raises(ConfigError):
            parse_injected(hostile)


def test_the_kernel_reads_the_last_parameters_cell_and_refuses_an_unknown_injected_name() -> None:
    namespace = {
        "redis_url_env": "REDIS_URL",
        "embedded": None,
        "backend_urls": [],
        "batch_size": 7,
        "pause_seconds": 0.0,
    }
    history = ["", "import math", CELL, "# Parameters\nbatch_size = 7\n", "run = await nb.start('t')"]
    spec, values = kernel_parameters(history, namespace)
    assert values["batch_size"] == 7 and set(spec) == set(namespace)
    typo = [*history[:3], "# Parameters\nbatch_sise = 7\n"]
    with pytest.raises(ConfigError) as caught:
        kernel_parameters(typo, namespace)
    assert "'batch_sise'" in str(caught.value) and "batch_size" in str(caught.value)
    with pytest.raises(ConfigError, match="has not run"):
        kernel_parameters(["print(1)"], namespace)


def test_without_input_history_names_and_types_come_from_the_annotations() -> None:
    namespace = {
        "__annotations__": {"embedded": bool, "backend_urls": list[str], "batch_size": int},
        "embedded": None,
        "backend_urls": [],
        "batch_size": 3,
    }
    spec, values = kernel_parameters([], namespace)
    assert values == {"embedded": None, "backend_urls": [], "batch_size": 3}
    assert spec["embedded"].optional and spec["backend_urls"].items is str and spec["batch_size"].kind is int
