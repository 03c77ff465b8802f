"""``labsession runbook``: its options. :mod:`labsession.runner.runbook` runs the notebook."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runner.registry import RUNBOOKS
from ..runner.runbook import RunbookOptions, runbook
from .numbers import bounded_float

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help=f"the runbook: {', '.join(RUNBOOKS)}")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="a notebook parameter (repeatable); credentials never go here, name their variable",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="diagnose an embedded Redis and two reference backends (a demonstration)",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="keep the executed notebook and summary.json in DIR")
    parser.add_argument(
        "--cell-timeout",
        type=bounded_float(1, 86_400),
        default=300.0,
        metavar="SECONDS",
        help="longest a notebook cell may run (default 300)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    parser.add_argument("--list", action="store_true", help="list the runbooks and exit")


def run(args: argparse.Namespace) -> int:
    return runbook(
        RunbookOptions(
            name=args.name,
            parameters=tuple((key, value) for key, value in args.parameter),
            embedded=args.embedded,
            out=args.out,
            cell_timeout=args.cell_timeout,
            json=args.json,
            list=args.list,
        )
    )
