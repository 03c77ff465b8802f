"""``labsession history``: its options. :func:`labsession.runner.history.show_history` reads the history."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runner.history import show_history
from .numbers import bounded_int

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--history",
        metavar="PATH",
        help="the SQLite file labsession health records runs in (default $XDG_STATE_HOME/"
        "labsession/history.sqlite, i.e. ~/.local/state/labsession/history.sqlite)",
    )
    parser.add_argument(
        "--limit",
        type=bounded_int(1, 100_000),
        default=10,
        metavar="N",
        help="how many of the latest runs to list (default 10)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    return show_history(Path(args.history) if args.history else None, limit=args.limit, as_json=args.json)
