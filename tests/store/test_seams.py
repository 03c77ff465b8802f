"""labsession meets redis-py only at its public seams: no subclass overrides a private member
of redis-py, no code reads one, and what redis-py does on its own (the release event that
drives its credential re-authentication) still happens.

A redis-py release that renames or reshapes its internals cannot break what these tests pass.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.event

import labsession
from labsession import EmbeddedRedis, RedisService, Settings

REDIS_PY = Path(redis.__file__).resolve().parent
LABSESSION = Path(labsession.__file__).resolve().parent


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_redis_py(cls: type) -> bool:
    return cls.__module__ == "redis" or cls.__module__.startswith("redis.")


def _labsession_classes_on_redis_py() -> list[type]:
    """Every class labsession defines whose bases include a redis-py class."""
    found: list[type] = []
    for module_info in pkgutil.walk_packages([str(LABSESSION)], "labsession."):
        if module_info.name.endswith("__main__"):
            continue  # importing it runs the command line
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and any(_is_redis_py(base) for base in cls.__mro__[1:]):
                found.append(cls)
    return found


@functools.cache
def _redis_py_names() -> frozenset[str]:
    """Every attribute name redis-py's source uses and every function or method it defines."""
    names: set[str] = set()
    for path in REDIS_PY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return frozenset(names)


def _redis_py_private_names() -> set[str]:
    return {name for name in _redis_py_names() if _private(name)}


def _on_self(cls: type, ctx: type[ast.expr_context]) -> set[str]:
    """Attribute names the methods of ``cls`` assign (``ast.Store``) or read (``ast.Load``) on ``self``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(cls))):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ctx)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return names


def test_the_store_subclasses_redis_py_where_it_says_so() -> None:
    names = {cls.__name__ for cls in _labsession_classes_on_redis_py()}
    assert names == {"_WaitingPool", "_Connection", "_SSLConnection", "_UnixConnection", "_ClassifiedRetry"}


@pytest.mark.parametrize("cls", _labsession_classes_on_redis_py(), ids=lambda cls: cls.__name__)
def test_no_subclass_overrides_a_private_member_of_redis_py(cls: type) -> None:
    ours = [c for c in cls.__mro__ if c.__module__.startswith("labsession.")]
    theirs = [c for c in cls.__mro__ if _is_redis_py(c)]
    for own in ours:
        for name in vars(own):
            if _private(name) and name != "_abc_impl":  # _abc_impl: ABCMeta's, on every ABC
                assert not any(hasattr(base, name) for base in theirs), f"{own.__name__}.{name} overrides redis-py's"
        # Attributes set on self: none may be one redis-py uses (it would be overwritten under it).
        clashes = _on_self(own, ast.Store) & _redis_py_names()
        assert not clashes, f"{own.__name__} sets attributes redis-py also uses: {sorted(clashes)}"
    # Private attributes read on self: only those our own classes define or set.
    defined = set().union(*(set(vars(own)) | _on_self(own, ast.Store) for own in ours))
    for own in ours:
        read = {name for name in _on_self(own, ast.Load) if _private(name)} - defined
        assert not read, f"{own.__name__} reads redis-py's private {sorted(read)}"


def test_no_code_reads_or_writes_a_private_member_of_redis_py() -> None:
    """Any ``x._name`` in labsession whose name redis-py also uses privately must be labsession's
    own: an attribute of a labsession class (or of an object labsession made)."""
    theirs = _redis_py_private_names()
    own: set[str] = set()
    sources = {path: ast.parse(path.read_text(encoding="utf-8")) for path in LABSESSION.rglob("*.py")}
    for tree in sources.values():  # what labsession itself defines or assigns on its own classes
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                redis_py_base = any(b.startswith(("aioredis.", "redis.", "Retry")) for b in bases)
                for inner in ast.walk(node):
                    if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef) and _private(inner.name):
                        own.add(inner.name)
                    if (
                        isinstance(inner, ast.Attribute)
                        and isinstance(inner.ctx, ast.Store)
                        and _private(inner.attr)
                        and not redis_py_base
                    ):
                        own.add(inner.attr)
                    if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store) and _private(inner.id):
                        own.add(inner.id)
                for item in node.body:  # __slots__ entries
                    if isinstance(item, ast.Assign) and any(getattr(t, "id", "") == "__slots__" for t in item.targets):
                        own.update(ast.literal_eval(item.value))
    offending: list[str] = []
    for path, tree in sources.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr in theirs and node.attr not in own:
                offending.append(f"{path.relative_to(LABSESSION.parent)}:{node.lineno}: .{node.attr}")
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", "") in ("getattr", "setattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and node.args[1].value in theirs
                and node.args[1].value not in own
            ):
                offending.append(f"{path.relative_to(LABSESSION.parent)}:{node.lineno}: {node.args[1].value!r}")
    assert not offending, "\n".join(offending)


async def test_releasing_a_connection_tells_redis_py_as_its_own_pool_does(
    embedded_redis: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py re-authenticates streaming credentials on AsyncAfterConnectionReleasedEvent;
    a pool that skipped it would turn that off without a word."""
    released: list[Any] = []
    dispatch = redis.event.EventDispatcher.dispatch_async

    async def spy(self: redis.event.EventDispatcher, event: object) -> None:
        if isinstance(event, redis.event.AsyncAfterConnectionReleasedEvent):
            released.append(event)
        await dispatch(self, event)

    monkeypatch.setattr(redis.event.EventDispatcher, "dispatch_async", spy)
    async with RedisService(Settings.from_url(embedded_redis.url)) as service:
        before = len(released)
        await service.ping()
        await service.client.get("seams:nothing")
        assert len(released) - before == 2  # one per command, each connection given back
