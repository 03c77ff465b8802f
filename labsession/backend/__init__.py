"""The reference lab backend: CONTRACT.md's "labsession" column over HTTP and WebSocket.

``labsession serve`` runs it (:mod:`labsession.backend.cli`); :class:`BackendProcess` runs it as
a child process for tests and notebooks; :func:`create_app` builds the Starlette app from an
injected :class:`BackendState` for in-process use.
"""

from __future__ import annotations

from .app import RequestLogMiddleware, create_app
from .config import BackendConfig, normalize_origin, store_settings
from .errors import ApiError, BackendError
from .launch import BackendProcess
from .origins import CorsMiddleware, OriginPolicy
from .server import BackendServer, build_server, serve
from .state import BackendState, StoreState

__all__ = [
    "ApiError",
    "BackendConfig",
    "BackendError",
    "BackendProcess",
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
