"""``labsession serve``: run the reference lab backend (HTTP + WebSocket) on one port.

``REDIS_URL`` is required (a shared Redis is the point of the backend); ``--embedded-redis``
starts a private one explicitly, for demos. Binds 127.0.0.1 unless told otherwise.
``--workers N`` runs N worker processes on the port (see :mod:`labsession.backend.workers`).
Exit codes: 0 after a graceful stop (SIGTERM/SIGINT), 1 the port could not be bound (or a worker
could not start), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import logging
import os

from ..backend.config import BackendConfig, parse_origins, store_settings
from ..backend.server import serve_many
from ..embedded.redis_server import EmbeddedRedis
from ..errors import ConfigError

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="address to bind (default $HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default $PORT or 8000; 0 = any free)")
    parser.add_argument(
        "--allowed-origins",
        default=None,
        metavar="LIST",
        help="comma-separated exact browser origins (default $ALLOWED_ORIGINS)",
    )
    parser.add_argument(
        "--public-ws-base",
        default=None,
        metavar="URL",
        help="ws(s)://host[:port] used in webSocketUrl (default $PUBLIC_WS_BASE or this address)",
    )
    parser.add_argument(
        "--instance-id", default=None, help="name of this instance (default $INSTANCE_ID or host-random)"
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["debug", "info", "warning", "error"],
        help="event log level (default $LOG_LEVEL or info)",
    )
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        default=None,
        help="write no per-request access line (default $ACCESS_LOG or on)",
    )
    parser.add_argument(
        "--access-log-sample",
        type=int,
        default=None,
        metavar="N",
        help="access line for 1 in N requests answered below 400; every 4xx/5xx is kept "
        "(default $ACCESS_LOG_SAMPLE or 1)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes sharing the port (SO_REUSEPORT), each with its own connections "
        "to Redis (default $WORKERS or 1)",
    )
    parser.add_argument(
        "--loop", default=None, choices=["asyncio", "uvloop"], help="event loop (default $LOOP or asyncio)"
    )
    parser.add_argument(
        "--embedded-redis",
        action="store_true",
        help="start a private embedded redis-server instead of using REDIS_URL (demos only)",
    )


def run(args: argparse.Namespace) -> int:
    env = os.environ
    overrides: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "public_ws_base": args.public_ws_base,
        "instance_id": args.instance_id,
        "log_level": args.log_level,
        "access_log": args.access_log,
        "access_log_sample": args.access_log_sample,
        "loop": args.loop,
    }
    if args.allowed_origins is not None:
        try:
            overrides["allowed_origins"] = parse_origins(args.allowed_origins)
        except ValueError as exc:
            raise ConfigError("--allowed-origins", str(exc)) from None
    config = BackendConfig.from_env(env, **overrides)
    workers = _workers(args.workers, env)
    _setup_logging(config.log_level, getattr(args, "verbose", 0))
    if args.embedded_redis:
        with EmbeddedRedis() as embedded:
            settings = store_settings(env, redis_url=embedded.url)
            return serve_many(config, settings, workers)
    if not env.get("REDIS_URL", "").strip():
        raise ConfigError(
            "REDIS_URL",
            "is not set; labsession serve needs the shared Redis (or --embedded-redis for a demo)",
            "rediss://default:****@your-endpoint.upstash.io:6379",
        )
    settings = store_settings(env)
    return serve_many(config, settings, workers)


def _workers(given: int | None, env: os._Environ[str]) -> int:
    if given is None:
        raw = env.get("WORKERS", "").strip() or "1"
        try:
            given = int(raw)
        except ValueError:
            raise ConfigError("WORKERS", f"must be a whole number, got {raw!r}") from None
    if not 1 <= given <= 64:
        raise ConfigError("--workers", f"must be from 1 to 64, got {given}")
    return given


def _setup_logging(level: str, verbose: int) -> None:
    """Our events at ``level`` (``-v`` flags win); uvicorn's own chatter only from warnings up."""
    chosen = logging.DEBUG if verbose > 1 else getattr(logging, level.upper(), logging.INFO)
    logging.getLogger("labsession").setLevel(chosen)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
