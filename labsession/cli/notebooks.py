"""``labsession notebooks DIR``: copy the notebooks and runbooks into a folder for JupyterLab."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..resources import copy_notebooks

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, metavar="DIR", help="where to copy them (created if missing)")
    parser.add_argument("--force", action="store_true", help="replace notebooks already in DIR")


def run(args: argparse.Namespace) -> int:
    written = copy_notebooks(args.directory, overwrite=args.force)
    for path in written:
        print(path)
    print(f"\n{len(written)} notebooks in {args.directory}. Open them with: jupyter lab {args.directory}")
    return 0
