"""Serving: uvicorn with the ``websockets`` library's Sans-I/O protocol, and a graceful SIGTERM.

On SIGTERM or SIGINT the server stops accepting connections, closes every open WebSocket with
1001 "Server shutting down" (and waits briefly for the clients' replies), lets requests in
flight finish within ``shutdown_timeout`` seconds, closes Redis and returns, so the process
exits 0. Uvicorn alone would close WebSockets with 1012 and re-raise the signal (exit -15).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import uvicorn

from ..errors import ConfigError
from ..masking import get_logger
from ..settings import Settings
from ..store.service import RedisService
from ..version import __version__
from .app import create_app
from .config import BackendConfig
from .limits import HeadLimits, limited_protocol
from .state import BackendState
from .workers import serve_workers, watch_supervisor, worker_ready

__all__ = ["BackendServer", "build_server", "run_loop", "serve", "serve_many"]

log = get_logger(__name__)


class BackendServer(uvicorn.Server):
    """A uvicorn server that closes WebSockets with 1001 before shutting down, and exits cleanly on a signal."""

    def __init__(self, config: uvicorn.Config, state: BackendState) -> None:
        super().__init__(config)
        self.state = state

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Like uvicorn's, minus re-raising the signal afterwards: a graceful stop exits 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        started = time.monotonic()
        log.info(
            "event=shutdown instance=%s open_websockets=%d", self.state.config.instance_id, len(self.state.sockets)
        )
        for server in getattr(self, "servers", []):
            server.close()  # stop accepting first; uvicorn closes them again harmlessly
        budget = max(0.5, self.state.config.shutdown_timeout / 2)
        left = await self.state.close_sockets(1001, "Server shutting down", budget)
        # Give clients a moment to answer our close frames before uvicorn drops the transports.
        for _ in range(50):  # up to 1 s
            if not any(_is_websocket(c) for c in self.server_state.connections):
                break
            await asyncio.sleep(0.02)
        await super().shutdown(sockets)
        log.info(
            "event=stopped instance=%s seconds=%.3f unclosed_websockets=%d",
            self.state.config.instance_id,
            time.monotonic() - started,
            left,
        )


class _DenialLogFilter(logging.Filter):
    """Drop uvicorn's "returned without completing handshake" error after a WebSocket denial response.

    uvicorn 0.54's Sans-I/O protocol sends our 403/404 denial correctly but never marks the
    handshake complete, then logs an error for it. Every other path in this app accepts or denies.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing handshake" not in str(record.msg)


def _is_websocket(connection: Any) -> bool:
    return hasattr(connection, "handshake_complete") and hasattr(connection, "close_sent")


def build_server(config: BackendConfig, settings: Settings) -> BackendServer:
    """A ready-to-``serve()`` server for ``config``, talking to the store in ``settings``."""
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialLogFilter) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(_DenialLogFilter())
    state = BackendState(config, RedisService(settings), version=__version__)
    app = create_app(state)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        ws="websockets-sansio",
        ws_max_size=config.max_message_size,
        ws_ping_interval=config.ws_ping_interval,
        ws_ping_timeout=config.ws_ping_timeout,
        ws_per_message_deflate=False,  # small JSON messages; compression costs CPU and invites bombs
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, round(config.shutdown_timeout)),
        # uvicorn's httptools protocol with bounded request heads (431/414/408; see limits.py).
        http=limited_protocol(HeadLimits(timeout=config.header_timeout)),
    )
    return BackendServer(uv_config, state)


async def serve(config: BackendConfig, settings: Settings, sock: socket.socket | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a graceful stop, 1 if the port could not be bound.

    ``sock``: a bound socket to listen on (a worker of :func:`serve_workers`) instead of
    binding ``config.host:config.port``; the worker then reports to its supervisor.
    """
    server = build_server(config, settings)
    log.info(
        "event=starting instance=%s listen=http://%s:%d store=%s",
        config.instance_id,
        config.host,
        config.port,
        settings.endpoint,
    )
    # Everything made so far (modules, classes, the app) lives as long as the process: keep it
    # out of the garbage collector's full passes, which otherwise walk it again and again.
    gc.freeze()
    reporter = None
    if sock is not None:
        watch_supervisor(lambda: server.handle_exit(signal.SIGTERM, None))
        reporter = asyncio.create_task(_report_ready(server), name="labsession-worker-ready")
    try:
        await server.serve(sockets=None if sock is None else [sock])
    except SystemExit as exc:  # uvicorn exits 1 when it cannot bind, 3 when startup fails
        return int(exc.code) if isinstance(exc.code, int) else 1
    finally:
        if reporter is not None:
            reporter.cancel()
    return 0 if server.started else 1


async def _report_ready(server: BackendServer) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.01)
    worker_ready()


def run_loop(main: Coroutine[Any, Any, int], loop: str) -> int:
    """Run ``main`` to completion on a new event loop of the kind ``loop`` names (asyncio, uvloop)."""
    if loop == "uvloop":
        try:
            factory = importlib.import_module("uvloop").new_event_loop
        except ImportError:
            main.close()
            raise ConfigError("LOOP", "uvloop is not installed (pip install uvloop), or use asyncio") from None
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    return asyncio.run(main)


def serve_many(config: BackendConfig, settings: Settings, workers: int) -> int:
    """``workers`` processes on ``config.port`` (see :mod:`labsession.backend.workers`); the exit code."""
    if workers == 1:
        return run_loop(serve(config, settings), config.loop)

    async def one(worker_config: BackendConfig, sock: socket.socket) -> int:
        # CLIENT LIST tells the workers apart: the name (made once, in the supervisor) gets the
        # worker's suffix, "-w<k>" as in its instance id.
        worker = worker_config.instance_id.rpartition("-")[2]
        return await serve(worker_config, settings.with_changes(client_name=f"{settings.client_name}-{worker}"), sock)

    return serve_workers(config, workers, one, run_loop)
