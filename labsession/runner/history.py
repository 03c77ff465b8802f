"""The history of health runs: every run recorded in one SQLite file, for trends and for "what changed".

``labsession health`` records each run (unless ``--no-history``) in :func:`default_history_path`
or the file ``--history PATH`` names: run id, start and end, verdict and exit code, the target as
shown (masked: an endpoint, never a password), the notebook parameters, every check with its status,
evidence and data, and the run's numbers (:mod:`labsession.runner.metrics`). ``labsession history``
lists the runs and says what changed between the last two; ``notebooks/06_health_history.ipynb``
plots the trends.

Two runs sharing one history never overlap (:class:`RunLock`): a cron job that runs long must not
pile up runs behind it. The lock is an advisory ``flock`` on ``PATH.lock``, released by the kernel
when its holder exits, however it exits.

Everything stored has been masked when the checks were made; ``record`` masks the text once more.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

from ..masking import mask_text, redact
from .metrics import run_samples, sample_key
from .results import RunSummary

__all__ = [
    "SCHEMA_VERSION",
    "Change",
    "CheckRow",
    "History",
    "RunInProgress",
    "RunLock",
    "RunRow",
    "default_history_path",
    "show_history",
]

#: ``PRAGMA user_version`` of the schema below.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    elapsed_seconds REAL NOT NULL,
    verdict TEXT NOT NULL,
    exit_code INTEGER NOT NULL,
    target TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    parameters TEXT NOT NULL,
    counts TEXT NOT NULL,
    stopped_by TEXT,
    out_dir TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at, id);
CREATE TABLE IF NOT EXISTS notebooks (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    verdict TEXT NOT NULL,
    elapsed_seconds REAL NOT NULL,
    error TEXT,
    PRIMARY KEY (run, name)
);
CREATE TABLE IF NOT EXISTS checks (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    notebook TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    evidence TEXT NOT NULL,
    timing TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run, seq)
);
CREATE TABLE IF NOT EXISTS metrics (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run, name)
);
CREATE INDEX IF NOT EXISTS metrics_by_name ON metrics (name, run);
CREATE TABLE IF NOT EXISTS alert_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    verdict TEXT NOT NULL,
    run_id TEXT NOT NULL,
    sent_at REAL NOT NULL
);
"""


def default_history_path() -> Path:
    """``$XDG_STATE_HOME/labsession/history.sqlite`` (``~/.local/state/labsession/history.sqlite``)."""
    base = os.environ.get("XDG_STATE_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "labsession" / "history.sqlite"


@dataclass(frozen=True, slots=True)
class RunRow:
    """One recorded run (times are Unix seconds)."""

    run_id: str
    started_at: float
    finished_at: float
    elapsed_seconds: float
    verdict: str
    exit_code: int
    target: str
    endpoint: str
    parameters: dict[str, Any]
    counts: dict[str, int]
    stopped_by: str | None
    out_dir: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "elapsedSeconds": self.elapsed_seconds,
            "verdict": self.verdict,
            "exitCode": self.exit_code,
            "target": self.target,
            "endpoint": self.endpoint,
            "parameters": self.parameters,
            "counts": self.counts,
            "stoppedBy": self.stopped_by,
            "outDir": self.out_dir,
        }


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One recorded check of a run."""

    notebook: str
    name: str
    status: str
    evidence: str
    timing: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    """What differs between two runs: ``kind`` is ``verdict``, ``status`` (a check changed status),
    ``new`` or ``gone`` (a check only one run has) or ``metric``; ``what`` names it."""

    kind: str
    what: str
    before: str
    after: str
    evidence: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "what": self.what,
            "before": self.before,
            "after": self.after,
            "evidence": self.evidence,
        }


def _run_row(row: sqlite3.Row) -> RunRow:
    return RunRow(
        row["run_id"],
        row["started_at"],
        row["finished_at"],
        row["elapsed_seconds"],
        row["verdict"],
        row["exit_code"],
        row["target"],
        row["endpoint"],
        json.loads(row["parameters"]),
        json.loads(row["counts"]),
        row["stopped_by"],
        row["out_dir"],
    )


class History:
    """The SQLite history at ``path`` (created with its folder on first use). Use as a context manager.

    ``readonly`` opens an existing file for reading only (``labsession history``, the notebook).
    """

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(errno.ENOENT, "no history here yet", str(self.path))
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")  # readers never wait for the one writer
            self._db.execute("PRAGMA synchronous=NORMAL")  # with WAL: consistent; a power cut may lose the last run
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.commit()
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------------

    def record(self, summary: RunSummary, *, out_dir: Path | None = None, keep_days: float = 0) -> None:
        """Record ``summary`` (a run id already recorded is replaced); with ``keep_days``, forget the runs
        that started more than that many days before it (their space is reused, the file does not grow)."""
        target = summary.target
        counts = summary.counts()
        with self._db:
            self._db.execute("DELETE FROM runs WHERE run_id = ?", (summary.run_id,))
            cursor = self._db.execute(
                "INSERT INTO runs (run_id, started_at, finished_at, elapsed_seconds, verdict, exit_code, target,"
                " endpoint, parameters, counts, stopped_by, out_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    summary.run_id,
                    summary.started_at,
                    summary.finished_at,
                    round(summary.elapsed_seconds, 3),
                    summary.verdict.value,
                    int(summary.to_dict()["exitCode"]),
                    mask_text(str(target.get("description", ""))),
                    mask_text(str(target.get("endpoint", ""))),
                    json.dumps(redact(summary.parameters), default=str, sort_keys=True),
                    json.dumps(counts),
                    summary.stopped_by,
                    str(out_dir) if out_dir else None,
                ),
            )
            run = cursor.lastrowid
            self._db.executemany(
                "INSERT INTO notebooks (run, name, verdict, elapsed_seconds, error) VALUES (?, ?, ?, ?, ?)",
                [
                    (run, o.name, o.status.value, round(o.elapsed_seconds, 3), mask_text(o.error) if o.error else None)
                    for o in summary.outcomes
                ],
            )
            self._db.executemany(
                "INSERT INTO checks (run, seq, notebook, name, status, evidence, timing, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run,
                        seq,
                        str(c.get("notebook")),
                        str(c.get("name")),
                        str(c.get("status")),
                        mask_text(str(c.get("evidence", ""))),
                        str(c.get("timing") or ""),
                        json.dumps(redact(c.get("data") or {}), default=str, sort_keys=True),
                    )
                    for seq, c in enumerate(summary.checks())
                ],
            )
            samples = {sample_key(s.name, s.labels): s.value for s in run_samples(summary)}
            self._db.executemany(
                "INSERT INTO metrics (run, name, value) VALUES (?, ?, ?)",
                [(run, name, value) for name, value in samples.items()],
            )
            if keep_days > 0:
                self._db.execute("DELETE FROM runs WHERE started_at < ?", (summary.started_at - keep_days * 86400,))

    def set_alert_state(self, verdict: str, run_id: str) -> None:
        """Remember ``verdict`` as the one last announced (see :meth:`alert_state`)."""
        with self._db:
            self._db.execute(
                "INSERT INTO alert_state (id, verdict, run_id, sent_at) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET verdict = excluded.verdict,"
                " run_id = excluded.run_id, sent_at = excluded.sent_at",
                (verdict, run_id, time.time()),
            )

    # -- reading -----------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM runs").fetchone()[0])

    def runs(self, limit: int = 20) -> list[RunRow]:
        """The last ``limit`` runs, newest first."""
        rows = self._db.execute("SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))
        return [_run_row(row) for row in rows]

    def run(self, run_id: str) -> RunRow | None:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run_row(row) if row is not None else None

    def previous(self, run_id: str) -> RunRow | None:
        """The run recorded just before ``run_id`` (by start time)."""
        row = self._db.execute(
            "SELECT * FROM runs WHERE started_at < (SELECT started_at FROM runs WHERE run_id = ?)"
            " ORDER BY started_at DESC, id DESC LIMIT 1",
            (run_id,),
        ).fetchone()
        return _run_row(row) if row is not None else None

    def checks(self, run_id: str) -> list[CheckRow]:
        rows = self._db.execute(
            "SELECT c.* FROM checks c JOIN runs r ON r.id = c.run WHERE r.run_id = ? ORDER BY c.seq", (run_id,)
        )
        return [
            CheckRow(r["notebook"], r["name"], r["status"], r["evidence"], r["timing"], json.loads(r["data"]))
            for r in rows
        ]

    def metrics(self, run_id: str) -> dict[str, float]:
        rows = self._db.execute(
            "SELECT m.name, m.value FROM metrics m JOIN runs r ON r.id = m.run WHERE r.run_id = ?", (run_id,)
        )
        return {str(name): float(value) for name, value in rows}

    def series(self, name: str, *, limit: int = 1000) -> list[tuple[float, float]]:
        """``(started_at, value)`` of the metric ``name`` (a :func:`sample_key`) over the last ``limit``
        runs that have it, oldest first."""
        rows = self._db.execute(
            "SELECT r.started_at, m.value FROM metrics m JOIN runs r ON r.id = m.run WHERE m.name = ?"
            " ORDER BY r.started_at DESC LIMIT ?",
            (name, limit),
        ).fetchall()
        return [(float(t), float(v)) for t, v in reversed(rows)]

    def alert_state(self) -> tuple[str, str] | None:
        """``(verdict, run_id)`` last announced by ``--notify-url``, or ``None`` if none was."""
        row = self._db.execute("SELECT verdict, run_id FROM alert_state WHERE id = 1").fetchone()
        return (str(row[0]), str(row[1])) if row is not None else None

    def changes(self, before: str, after: str) -> list[Change]:
        """What changed from run ``before`` to run ``after``: the verdict, each check's status, checks
        only one of them has, and the run's main numbers."""
        old, new = self.run(before), self.run(after)
        if old is None or new is None:
            raise KeyError(before if old is None else after)
        out: list[Change] = []
        if old.verdict != new.verdict:
            out.append(Change("verdict", "verdict", old.verdict, new.verdict))
        was = {(c.notebook, c.name): c for c in self.checks(before)}
        now = {(c.notebook, c.name): c for c in self.checks(after)}
        for key, check in now.items():
            what = f"{key[0]}: {key[1]}"
            if key not in was:
                out.append(Change("new", what, "", check.status, check.evidence))
            elif was[key].status != check.status:
                out.append(Change("status", what, was[key].status, check.status, check.evidence))
        out += [Change("gone", f"{k[0]}: {k[1]}", c.status, "", c.evidence) for k, c in was.items() if k not in now]
        old_m, new_m = self.metrics(before), self.metrics(after)
        for name in _SHOWN_METRICS:
            a, b = old_m.get(name), new_m.get(name)
            if a is not None and b is not None and a != b:
                out.append(Change("metric", _SHOWN_METRICS[name], _fmt(name, a), _fmt(name, b)))
        return out


#: The numbers ``labsession history`` compares between the last two runs, with their names as shown.
_SHOWN_METRICS = {
    "labsession_redis_ping_p50_seconds": "PING p50",
    "labsession_redis_ping_p99_seconds": "PING p99",
    "labsession_sessions_active": "active sessions",
    "labsession_redis_evicted_keys_total": "evicted keys",
}


def _fmt(name: str, value: float) -> str:
    if "_ping_" in name:
        return f"{value * 1000:.2f} ms"
    if name.endswith("_seconds"):
        return f"{value:.1f} s"
    return f"{value:g}"


class RunInProgress(Exception):
    """Another run holds the lock; the message says which and what to do."""


class RunLock:
    """An exclusive lock on ``path`` (a file next to the history) for one whole run.

    :meth:`acquire` waits up to ``wait`` seconds (0: not at all) and raises :class:`RunInProgress`
    naming the holder (pid and start time, written into the file) when it cannot have it. The lock
    goes with the process: a killed run never leaves it held.
    """

    def __init__(self, path: Path, wait: float = 0.0) -> None:
        self.path = path
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> Self:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = ""
                    with contextlib.suppress(OSError, ValueError):
                        holder = os.pread(fd, 200, 0).decode("ascii", "replace").strip()
                    os.close(fd)
                    waited = f" after waiting {self.wait:g} s" if self.wait else ""
                    raise RunInProgress(
                        f"another labsession health run{f' ({holder})' if holder else ''} holds {self.path}; "
                        f"not starting{waited} (--lock-wait S waits for it)"
                    ) from None
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}".encode("ascii"), 0
        )
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


# -- labsession history ------------------------------------------------------------------------


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no checks"


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def show_history(
    path: Path | None = None, *, limit: int = 10, as_json: bool = False, stream: TextIO | None = None
) -> int:
    """``labsession history``: the last ``limit`` runs, newest first, and what changed between the
    last two. Exit 0, or 2 when there is no history to read."""
    stream = stream or sys.stdout
    path = path or default_history_path()
    try:
        history = History(path, readonly=True)
    except (OSError, sqlite3.Error) as exc:
        print(
            f"labsession history: no history at {path} ({type(exc).__name__}); "
            "labsession health records every run there",
            file=sys.stderr,
        )
        return 2
    with history:
        total = history.count()
        runs = history.runs(limit)
        changes = history.changes(runs[1].run_id, runs[0].run_id) if len(runs) >= 2 else None
    if as_json:
        print(
            json.dumps(
                {
                    "history": str(path),
                    "runs": total,
                    "shown": [r.to_dict() for r in runs],
                    "changes": None
                    if changes is None
                    else {"from": runs[1].run_id, "to": runs[0].run_id, "items": [c.to_dict() for c in changes]},
                },
                indent=2,
            ),
            file=stream,
        )
        return 0
    print(
        f"history: {path} ({total} run{'s' if total != 1 else ''}"
        f"{f'; the last {len(runs)}' if total > len(runs) else ''})",
        file=stream,
    )
    if not runs:
        return 0
    rows = [("RUN", "STARTED (UTC)", "TOOK", "VERDICT", "CHECKS", "TARGET")]
    for run in runs:
        took = f"{run.elapsed_seconds:.1f} s" if run.elapsed_seconds < 60 else f"{run.elapsed_seconds / 60:.1f} min"
        verdict = run.verdict + (f" ({run.stopped_by})" if run.stopped_by else "")
        rows.append((run.run_id, _utc(run.started_at), took, verdict, _counts_text(run.counts), run.target))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row)).rstrip(), file=stream)
    if changes is None:
        print("\nonly one run recorded: nothing to compare yet", file=stream)
        return 0
    print(f"\nchanges from {runs[1].run_id} ({runs[1].verdict}) to {runs[0].run_id} ({runs[0].verdict}):", file=stream)
    if not changes:
        print("  none: every check has the status it had", file=stream)
    gone = [c for c in changes if c.kind == "gone"]
    if len(gone) > 3:  # a run that stopped early: one line, not one per check it never reached
        changes = [c for c in changes if c.kind != "gone"]
        names = ", ".join(c.what for c in gone[:6]) + (", …" if len(gone) > 6 else "")
        changes.append(Change("gone", f"{len(gone)} checks", "", "", f"did not run this time: {names}"))
    labels = [{"new": f"new: {c.what}", "gone": f"gone: {c.what}"}.get(c.kind, c.what) for c in changes]
    width = max((len(label) for label in labels), default=0)
    for what, change in zip(labels, changes, strict=True):
        arrow = {"new": f"{change.after}", "gone": f"was {change.before}" if change.before else ""}.get(
            change.kind, f"{change.before} → {change.after}"
        )
        evidence = f"  {change.evidence[:160]}" if change.evidence and change.kind != "metric" else ""
        print(f"  {what:<{width}}  {arrow}{evidence}", file=stream)
    return 0
