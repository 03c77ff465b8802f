"""``labsession`` command line: one subcommand per job, each implemented in its own module.

Subcommands import their module lazily, so ``labsession redis`` does not pay for Starlette
or papermill. Exit codes: 0 ok, 1 a check failed, 2 could not run (bad input, no store). With
``--format nagios`` a command line that does not parse is Nagios' 3 UNKNOWN, with its one line
on stdout: a typo in a monitoring configuration is not an outage (2 CRITICAL).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..checks import EXIT_COULD_NOT_RUN
from ..errors import LabSessionError
from ..masking import MaskingFilter, mask_text

__all__ = ["main"]

#: subcommand -> (module, one-line help). Each module offers ``configure(parser)`` and
#: ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "health": ("labsession.cli.health", "run the diagnostic notebooks (a scheduled health run)"),
    "history": ("labsession.cli.history", "list the recorded health runs and what changed between the last two"),
    "check": ("labsession.cli.check", "connection and session-lifecycle checks of the library, no notebooks"),
    "serve": ("labsession.cli.serve", "run the reference lab backend (HTTP + WebSocket)"),
    "redis": ("labsession.cli.redis", "run an embedded redis-server in the foreground and print its URL"),
    "runbook": ("labsession.cli.runbook", "run an incident runbook headless"),
    "notebooks": ("labsession.cli.notebooks", "copy the notebooks and runbooks into a folder, for JupyterLab"),
}


#: Nagios' exit code for "could not check" (the same as :data:`labsession.runner.monitoring.NAGIOS_UNKNOWN`).
_NAGIOS_UNKNOWN = 3


class UsageError(Exception):
    """The command line does not parse; the message is argparse's, prefixed with the program."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose :meth:`error` raises :class:`UsageError` (after the usage on
    stderr) instead of exiting, so :func:`main` chooses the exit code and the output format."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: error: {message}")


def _wants_nagios(argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks for ``--format nagios`` (in either spelling), parsed or not."""
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return any(a == "--format=nagios" or (a == "--format" and b == "nagios") for a, b in pairs)


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.getLogger("labsession").setLevel(level)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its options."""
    parser = _Parser(prog="labsession", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        child.set_defaults(_module=module_name)
        if name == command:
            importlib.import_module(module_name).configure(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(command if command in SUBCOMMANDS else None)
    except ModuleNotFoundError as exc:
        print(f"labsession {command}: not available in this build ({exc.name})", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        if _wants_nagios(argv):
            print(f"LABSESSION UNKNOWN - {' '.join(mask_text(str(exc)).replace('|', '/').split())}", flush=True)
            return _NAGIOS_UNKNOWN
        print(f"{mask_text(str(exc))}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    if not args.command:
        parser.print_help()
        return EXIT_COULD_NOT_RUN
    _setup_logging(args.verbose)
    module = importlib.import_module(args._module)
    try:
        code: int = module.run(args)
    except LabSessionError as exc:
        print(f"labsession {args.command}: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last line of defence: never print a secret in a traceback
        print(f"labsession {args.command}: unexpected {type(exc).__name__}: {mask_text(str(exc))}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    return code
