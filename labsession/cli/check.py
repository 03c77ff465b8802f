"""``labsession check``: its options. :mod:`labsession.runner.check` runs the checks."""

from __future__ import annotations

import argparse

from ..runner.check import check

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embedded", action="store_true", help="start an embedded Redis and check against it")
    parser.add_argument(
        "--redis-url-env",
        default="REDIS_URL",
        metavar="VAR",
        help="environment variable holding the Redis URL (default REDIS_URL)",
    )
    parser.add_argument(
        "--write", action="store_true", help="allow a probe session to be written (always on with --embedded)"
    )


def run(args: argparse.Namespace) -> int:
    return check(embedded=args.embedded, redis_url_env=args.redis_url_env, write=args.write)
