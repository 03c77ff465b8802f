"""``labsession redis``: an embedded redis-server in the foreground, for walkthroughs."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading

from ..embedded.redis_server import EmbeddedRedis
from .numbers import bounded_int

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=bounded_int(1, 65_535), default=None, help="TCP port (default: a free one)")
    parser.add_argument(
        "--password-env", default=None, metavar="VAR", help="require the password held in environment variable VAR"
    )
    parser.add_argument("--aof-dir", default=None, help="persist with an append-only file in this directory")


def run(args: argparse.Namespace) -> int:
    password = os.environ.get(args.password_env) if args.password_env else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedRedis(port=args.port, password=password, aof_dir=args.aof_dir) as server:
        shown = server.masked_url
        print(f"Embedded Redis {server.binary.name} ready (pid {server.pid}).", flush=True)
        print(f"export REDIS_URL={shown}", flush=True)
        if password:
            print(f"(the password is the one in ${args.password_env})", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop
            stop.wait()
    return 0
