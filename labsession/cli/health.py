"""``labsession health``: its options. :mod:`labsession.runner.health` runs the notebooks."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runner.health import STOP_GRACE_SECONDS, HealthOptions, health
from ..runner.registry import registry
from .numbers import bounded_float, bounded_int

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="run against one embedded Redis and two reference backends shared by all notebooks",
    )
    parser.add_argument(
        "--redis-url-env",
        default="REDIS_URL",
        metavar="VAR",
        help="environment variable holding the Redis URL (default REDIS_URL)",
    )
    parser.add_argument(
        "--backend-url",
        action="append",
        default=[],
        metavar="URL",
        help="a backend base URL (http://host:port); repeat for every instance or a load balancer",
    )
    parser.add_argument(
        "--read-write",
        action="store_true",
        help="allow probe sessions on a real target (default: read-only, write steps SKIP); "
        "an embedded target always allows them",
    )
    parser.add_argument(
        "--show-session-ids",
        action="store_true",
        help="findings name whole session keys, the key to fix (default: an id's first 8 "
        "characters, since a whole id opens that session's terminal)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="keep each run's report.html, summary.json, junit.xml and executed notebooks in its own "
        "dated folder of DIR, with a 'latest' link to the newest",
    )
    parser.add_argument(
        "--keep",
        type=bounded_int(0, 100_000),
        default=30,
        metavar="N",
        help="run folders kept in --out DIR, oldest removed first (default 30; 0 keeps all)",
    )
    history = parser.add_mutually_exclusive_group()
    history.add_argument(
        "--history",
        metavar="PATH",
        help="SQLite file every run is recorded in (default $XDG_STATE_HOME/labsession/"
        "history.sqlite, i.e. ~/.local/state/labsession/history.sqlite)",
    )
    history.add_argument("--no-history", action="store_true", help="do not record this run")
    parser.add_argument(
        "--prometheus",
        metavar="FILE",
        help="write the run's metrics to FILE in the Prometheus text format, atomically, for "
        "node_exporter's textfile collector (/var/lib/node_exporter/textfile/labsession.prom)",
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("text", "nagios", "json"),
        default="text",
        help="what to print: a table (text, default), one Nagios/Icinga plugin line with "
        "performance data and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (nagios), or "
        "summary.json (json)",
    )
    notify = parser.add_mutually_exclusive_group()
    notify.add_argument(
        "--notify-url",
        metavar="URL",
        help="POST a JSON event to URL when the verdict changes from the one last announced "
        "(a FAIL, and the resolve after it); bounded retries; needs the history. A URL carrying a "
        "token is visible to every local user in the process list: use --notify-url-env for those",
    )
    notify.add_argument(
        "--notify-url-env",
        metavar="VAR",
        help="like --notify-url, with the URL read from environment variable VAR (keeps a webhook token "
        "off the command line)",
    )
    parser.add_argument(
        "--history-days",
        type=bounded_float(0, 36_500),
        default=90.0,
        metavar="D",
        help="the history forgets runs older than D days (default 90; 0 keeps every run)",
    )
    parser.add_argument(
        "--lock-wait",
        type=bounded_float(0, 86_400),
        default=0.0,
        metavar="S",
        help="when another run holds the same history, wait this long for it, then stop with "
        "exit 2 (default 0: stop at once, so a long run never piles up runs behind it)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this notebook (repeatable); names: " + ", ".join(n.name for n in registry()),
    )
    parser.add_argument(
        "--jobs",
        type=bounded_int(0, 64),
        default=0,
        metavar="N",
        help="notebooks run at once (default: all, at most 6)",
    )
    parser.add_argument(
        "--cell-timeout",
        type=bounded_float(1, 86_400),
        default=120.0,
        metavar="S",
        help="longest one notebook cell may run, seconds (default 120)",
    )
    parser.add_argument(
        "--budget",
        type=bounded_float(5, 86_400),
        default=300.0,
        metavar="S",
        help="time budget of the whole run, seconds (default 300); a hard bound: notebooks "
        f"still running then are stopped and FAIL, and the run exits within "
        f"{STOP_GRACE_SECONDS:g} s after",
    )
    parser.add_argument(
        "--timeout",
        type=bounded_float(0.05, 600),
        default=5.0,
        metavar="S",
        help="longest wait for one network step inside a notebook, seconds (default 5)",
    )


def run(args: argparse.Namespace) -> int:
    return health(
        HealthOptions(
            embedded=args.embedded,
            redis_url_env=args.redis_url_env,
            backend_urls=tuple(args.backend_url),
            read_write=args.read_write,
            out=Path(args.out) if args.out else None,
            only=tuple(args.only),
            jobs=args.jobs,
            cell_timeout=args.cell_timeout,
            budget=args.budget,
            timeout=args.timeout,
            show_session_ids=args.show_session_ids,
            history=Path(args.history) if args.history else None,
            no_history=args.no_history,
            keep=args.keep,
            history_days=args.history_days,
            lock_wait=args.lock_wait,
            prometheus=Path(args.prometheus) if args.prometheus else None,
            output_format=args.output_format,
            notify_url=args.notify_url,
            notify_url_env=args.notify_url_env,
        )
    )
