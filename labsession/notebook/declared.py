"""A notebook's parameters, declared once: in its ``parameters`` cell.

Each line of that cell declares one parameter, and nothing else does::

    batch_size: int = 500  # keys per SCAN call [1, 100_000]

the name, its type (``str``, ``bool``, ``int``, ``float``, ``list[str]``), its default (``None``
when it may be left unset: papermill's ``--help-notebook`` cannot read ``bool | None``), and
after ``#`` what it means, ending in ``[minimum, maximum]`` when a number is bounded (either
side may be left empty). papermill reads the same cell
(``papermill --help-notebook``), and :func:`kernel_parameters` reads it back inside the kernel
from IPython's input history, together with the cell papermill injects after it: a name that
cell sets but the parameters cell does not declare stops the run (a typo must not pass
silently), and so does anything in it but ``NAME = value`` lines.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .spec import Param

__all__ = ["INJECTED_HEADER", "kernel_parameters", "parse_declarations", "parse_injected"]

#: How papermill's injected cell begins (its Python translator's comment).
INJECTED_HEADER = "# Parameters"
_KINDS: dict[str, type] = {"str": str, "bool": bool, "int": int, "float": float, "list": list}
_BOUNDS = re.compile(r"\[\s*(?P<low>[-+]?[\d_.eE+-]*)\s*,\s*(?P<high>[-+]?[\d_.eE+-]*)\s*\]\s*$")


def _comments(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line."""
    out: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                out[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def _kind(annotation: ast.expr, name: str) -> tuple[type, type | None, bool]:
    """(kind, item kind of a list, optional) from an annotation such as ``list[str] | None``."""
    optional = False
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        sides = [annotation.left, annotation.right]
        nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        if len(nones) != 1:
            raise ConfigError(f"parameter {name!r}", "has a type the notebook kit does not know")
        optional = True
        annotation = next(s for s in sides if s is not nones[0])
    items: type | None = None
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        if annotation.value.id != "list" or not isinstance(annotation.slice, ast.Name):
            raise ConfigError(f"parameter {name!r}", "has a type the notebook kit does not know")
        items = _KINDS.get(annotation.slice.id)
        annotation = annotation.value
    if not isinstance(annotation, ast.Name) or annotation.id not in _KINDS:
        raise ConfigError(f"parameter {name!r}", "has a type the notebook kit does not know")
    return _KINDS[annotation.id], items, optional


def _number(text: str) -> float | None:
    return float(text.replace("_", "")) if text else None


def parse_declarations(source: str) -> dict[str, Param]:
    """The parameters a ``parameters`` cell declares, in order: each line ``name: type = default
    # meaning [min, max]``. Raises :class:`ConfigError` for any other statement or type."""
    tree = ast.parse(source)
    comments = _comments(source)
    out: dict[str, Param] = {}
    for statement in tree.body:
        if not (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and statement.value is not None
        ):
            raise ConfigError("the parameters cell", f"line {statement.lineno} is not 'name: type = default'")
        name = statement.target.id
        kind, items, optional = _kind(statement.annotation, name)
        optional = optional or (isinstance(statement.value, ast.Constant) and statement.value.value is None)
        meaning = comments.get(statement.lineno, "")
        low = high = None
        if bounds := _BOUNDS.search(meaning):
            low, high = _number(bounds["low"]), _number(bounds["high"])
            meaning = meaning[: bounds.start()].rstrip()
        out[name] = Param(kind, meaning, items=items, minimum=low, maximum=high, optional=optional)
    return out


def parse_injected(source: str) -> dict[str, Any]:
    """The values papermill injected: ``NAME = literal`` lines only. Raises :class:`ConfigError`
    for anything else (papermill writes a parameter's name into code as it was given)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise ConfigError("the injected parameters", "are not valid Python: check the parameter names") from None
    out: dict[str, Any] = {}
    for statement in tree.body:
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            try:
                value = ast.literal_eval(statement.value)
            except ValueError:
                pass
            else:
                out[statement.targets[0].id] = value
                continue
        raise ConfigError(
            "the injected parameters",
            f"line {statement.lineno} is not 'NAME = value': a parameter name must be a plain name",
        )
    return out


def _is_declarations(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return bool(tree.body) and all(isinstance(s, ast.AnnAssign) and s.value is not None for s in tree.body)


def _from_annotations(annotations: Mapping[str, Any], namespace: Mapping[str, Any]) -> dict[str, Param]:
    """Names and types from the kernel's ``__annotations__`` (what the parameters cell set), for a
    runner that executes without input history (nbval): no meanings or bounds there."""
    out: dict[str, Param] = {}
    for name, annotation in annotations.items():
        items = None
        origin = getattr(annotation, "__origin__", None)
        if origin is list:
            args = getattr(annotation, "__args__", ())
            items = args[0] if args and args[0] in _KINDS.values() else None
            annotation = list
        if annotation in _KINDS.values():
            out[name] = Param(annotation, items=items, optional=namespace.get(name) is None)
    return out


def kernel_parameters(history: Sequence[str], namespace: Mapping[str, Any]) -> tuple[dict[str, Param], dict[str, Any]]:
    """``(spec, values)`` of the notebook running in this kernel: the spec from the last
    ``parameters`` cell in ``history`` (IPython's ``In``), the values from ``namespace``.

    A runner that keeps no input history (nbval executes with ``store_history=False``) injects no
    parameters either: the names and types then come from the annotations the cell left in
    ``namespace["__annotations__"]``. Raises :class:`ConfigError` when no parameters cell ran,
    or when a cell papermill injected after it sets a name the cell does not declare (naming
    the declared ones).
    """
    found = next((i for i in range(len(history) - 1, -1, -1) if _is_declarations(history[i])), None)
    if found is None:
        spec = _from_annotations(namespace.get("__annotations__") or {}, namespace)
        if not spec:
            raise ConfigError("the parameters cell", "has not run in this kernel: run the notebook from the top")
    else:
        spec = parse_declarations(history[found])
        for later in history[found + 1 :]:
            if later.lstrip().startswith(INJECTED_HEADER):
                unknown = sorted(set(parse_injected(later)) - set(spec))
                if unknown:
                    raise ConfigError(
                        f"parameter {unknown[0]!r}",
                        f"is not a parameter of this notebook; its parameters are: {', '.join(spec)}",
                    )
    missing = [name for name in spec if name not in namespace]
    if missing:
        raise ConfigError(f"parameter {missing[0]!r}", "is declared but has no value: run the parameters cell")
    return spec, {name: namespace[name] for name in spec}
