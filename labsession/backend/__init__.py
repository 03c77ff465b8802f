"""The reference lab backend: the HTTP + WebSocket contract of ``docs/contract.md``, labsession's column.

``labsession serve`` runs it (:mod:`labsession.cli.serve`);
:class:`~labsession.embedded.backends.BackendProcess` runs it as a child process for tests and
notebooks; :func:`create_app` builds the Starlette app from an
injected :class:`BackendState` for in-process use.
"""

from __future__ import annotations

from .app import RequestLogMiddleware, create_app
from .config import BackendConfig, normalize_origin, store_settings
from .errors import ApiError, BackendError
from .origins import CorsMiddleware, OriginPolicy
from .server import BackendServer, build_server, serve
from .state import BackendState, StoreState

__all__ = [
    "ApiError",
    "BackendConfig",
    "BackendError",
    "BackendServer",
    "BackendState",
    "CorsMiddleware",
    "OriginPolicy",
    "RequestLogMiddleware",
    "StoreState",
    "build_server",
    "create_app",
    "normalize_origin",
    "serve",
    "store_settings",
]
