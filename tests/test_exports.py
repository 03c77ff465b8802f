"""Exports are explicit: every module's ``__all__`` resolves, and the package root re-exports
the public names of the core modules, as the very same objects."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import labsession

ALL_MODULES = sorted(m.name for m in pkgutil.walk_packages(labsession.__path__, "labsession."))

#: Core modules and the names in their ``__all__`` that are deliberately *not* at the root
#: (helpers for tests, the CLI and other modules). Everything else must be re-exported.
CORE_HELPERS: dict[str, set[str]] = {
    "labsession.errors": set(),
    "labsession.masking": {"MASK", "is_secret_name", "register_secret", "get_logger"},
    "labsession.settings": {"default_client_name"},
    "labsession.store.classify": {"classify", "database_remedy", "describe", "is_retryable", "remedy", "unavailable"},
    "labsession.store.service": set(),
    "labsession.sessions.model": set(),
    "labsession.sessions.service": set(),
    "labsession.embedded.redis_server": {"free_port", "redis_server_version", "supports_tls"},
    "labsession.checks": {"EXIT_COULD_NOT_RUN", "EXIT_FAILED", "EXIT_OK", "exit_code"},
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_every_module_declares_all_and_every_name_resolves(name: str) -> None:
    module = _module(name)
    names = getattr(module, "__all__", None)
    assert isinstance(names, list | tuple), f"{name} has no __all__"
    assert len(set(names)) == len(names), f"{name}.__all__ lists a name twice"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_root_all_resolves_without_duplicates() -> None:
    assert len(set(labsession.__all__)) == len(labsession.__all__)
    for name in labsession.__all__:
        assert hasattr(labsession, name), name
    assert labsession.__version__


def test_root_reexports_the_public_names_of_core_modules() -> None:
    root = set(labsession.__all__)
    for module_name, helpers in CORE_HELPERS.items():
        module = _module(module_name)
        public = set(module.__all__) - helpers
        assert public <= root, f"{module_name}: not re-exported at the root: {sorted(public - root)}"
        assert not helpers & root, f"{module_name}: helpers listed at the root: {sorted(helpers & root)}"
        for name in public:
            assert getattr(labsession, name) is getattr(module, name), f"labsession.{name} is a different object"


def test_every_root_name_comes_from_a_module_all() -> None:
    declared = {n for m in CORE_HELPERS for n in _module(m).__all__}
    assert set(labsession.__all__) - {"__version__"} <= declared
