"""Benchmarks of what a health run keeps for operations, each against its baseline in the same run.

    .venv/bin/python bench/bench_ops.py            # full run (about six minutes on 2 cores)
    .venv/bin/python bench/bench_ops.py --quick    # 3 trial pairs, a 2,000-run history

1. **The extras.** ``labsession health --embedded --out DIR --history PATH --prometheus FILE`` (report.html
   and a page per notebook, the history record, the Prometheus file) against the same run with nothing
   kept (``--no-history``, no ``--out``): child processes, start to exit, as a scheduler sees them; trials
   interleaved in pairs, medians compared. Target: the extras add under 5 %. On a shared 2-core machine a
   single pair varies by more than that, so the extras' own work is also timed directly, in process, on
   the files of a real run: rendering the notebook pages and report.html, recording the run, writing the
   Prometheus file. That share of the run's time is the figure that noise cannot hide.
2. **The history.** ``labsession history`` (a child process) on a history of 10,000 runs, each a real
   run's summary (every check, evidence and number) under its own run id and time, against the same
   command on a 10-run history and against ``labsession --help``, the floor of starting the command.
   Target: under a second.

Prints a table and writes ``bench/results/ops.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labsession.checks import Status
from labsession.runner.history import History
from labsession.runner.monitoring import write_prometheus
from labsession.runner.report import render_html, write_html, write_junit, write_summary
from labsession.runner.results import NotebookOutcome, RunSummary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ops.json"
BIN = Path(sys.executable).parent


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABSESSION_EMBEDDED_") and k != "REDIS_URL"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_STATE_HOME"] = str(state)  # never the user's own history
    return env


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def summary_of(run_dir: Path) -> RunSummary:
    """A :class:`RunSummary` rebuilt from a run folder's summary.json and executed notebooks."""
    data = json.loads((run_dir / "summary.json").read_text())
    outcomes = [
        NotebookOutcome(
            n["name"],
            n["path"],
            Status(n["verdict"]),
            n["reports"],
            n["error"],
            n["elapsedSeconds"],
            run_dir / "notebooks" / f"{n['name']}.ipynb",
        )
        for n in data["notebooks"]
    ]
    return RunSummary(
        data["target"],
        outcomes,
        data["startedAt"],
        data["elapsedSeconds"],
        data["runId"],
        time.time() - data["elapsedSeconds"],
        time.time(),
        data["parameters"],
    )


def bench_extras(pairs: int, work: Path) -> dict[str, Any]:
    env = _env(work / "state")
    health = [str(BIN / "labsession"), "health", "--embedded"]
    bare, kept = [], []
    _timed([*health, "--no-history"], env)  # warm the file cache and the kernels' imports once
    for index in range(pairs):
        out = work / "out"
        extras = [
            "--out",
            str(out),
            "--history",
            str(work / "history.sqlite"),
            "--prometheus",
            str(work / "labsession.prom"),
        ]
        order = [("bare", [*health, "--no-history"]), ("kept", [*health, *extras])]
        for name, argv in order if index % 2 == 0 else reversed(order):
            (bare if name == "bare" else kept).append(_timed(argv, env))
    run_dir = (work / "out" / "latest").resolve()
    summary = summary_of(run_dir)
    # The extras' own work, in process, on this real run (best of 5: the least disturbed).
    steps: dict[str, list[float]] = {
        "render notebook pages": [],
        "summary.json, junit.xml, report.html": [],
        "history record": [],
        "Prometheus file": [],
    }
    for trial in range(5):
        target = work / f"direct-{trial}"
        (target / "html").mkdir(parents=True)
        started = time.perf_counter()
        for outcome in summary.outcomes:
            render_html(outcome, target)
        steps["render notebook pages"].append(time.perf_counter() - started)
        started = time.perf_counter()
        write_summary(summary, target / "summary.json")
        write_junit(summary, target / "junit.xml")
        write_html(summary, target)
        steps["summary.json, junit.xml, report.html"].append(time.perf_counter() - started)
        summary.run_id = f"direct-{trial}"
        started = time.perf_counter()
        with History(target / "history.sqlite") as history:
            history.record(summary, out_dir=target)
        steps["history record"].append(time.perf_counter() - started)
        started = time.perf_counter()
        write_prometheus(summary, target / "labsession.prom")
        steps["Prometheus file"].append(time.perf_counter() - started)
    direct = {name: round(min(times), 4) for name, times in steps.items()}
    bare_median, kept_median = statistics.median(bare), statistics.median(kept)
    paired = [k / b for b, k in zip(bare, kept, strict=True)]
    return {
        "pairs": pairs,
        "bareSeconds": round(bare_median, 3),
        "keptSeconds": round(kept_median, 3),
        "ratio": round(kept_median / bare_median, 3),
        "pairedRatioMedian": round(statistics.median(paired), 3),
        "bareAll": [round(t, 3) for t in bare],
        "keptAll": [round(t, 3) for t in kept],
        "directSeconds": direct,
        "directTotalSeconds": round(sum(direct.values()), 4),
        "directShareOfRun": round(sum(direct.values()) / bare_median, 4),
        "targetRatio": 1.05,
    }


def bench_history(runs: int, work: Path) -> dict[str, Any]:
    source = next(p for p in sorted((work / "out").iterdir()) if p.name != "latest")
    summary = summary_of(source)
    big, small = work / "big.sqlite", work / "small.sqlite"
    started = time.perf_counter()
    with History(big) as history:
        start = time.time() - runs * 300
        for index in range(runs):
            summary.run_id = f"bench-{index:06d}"
            summary.started_at = start + index * 300
            summary.finished_at = summary.started_at + summary.elapsed_seconds
            if index % 97 == 0:  # a failing run now and then, so there are changes to show
                summary.outcomes[0].status = Status.FAIL
            else:
                summary.outcomes[0].status = Status.PASS
            history.record(summary)
    build = time.perf_counter() - started
    with History(small) as history:
        for index in range(10):
            summary.run_id = f"small-{index:02d}"
            summary.started_at = time.time() - (10 - index) * 300
            history.record(summary)
    env = _env(work / "state")
    command = [str(BIN / "labsession"), "history", "--history"]
    times: dict[str, list[float]] = {"big": [], "small": [], "floor": []}
    for _ in range(7):
        times["big"].append(_timed([*command, str(big)], env))
        times["small"].append(_timed([*command, str(small)], env))
        times["floor"].append(_timed([str(BIN / "labsession"), "--help"], env))
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "runs": runs,
        "checksPerRun": len(summary.checks()),
        "fileMb": round(big.stat().st_size / 1e6, 1),
        "buildSeconds": round(build, 1),
        "historySeconds": round(median["big"], 3),
        "smallHistorySeconds": round(median["small"], 3),
        "helpSeconds": round(median["floor"], 3),
        "ratio": round(median["big"] / median["small"], 3),
        "ratioToStartFloor": round(median["big"] / median["floor"], 3),
        "targetSeconds": 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 trial pairs and a 2,000-run history")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as scratch:
        work = Path(scratch)
        extras = results["extras"] = bench_extras(3 if args.quick else 7, work)
        print(
            f"health --embedded with report, history, Prometheus: {extras['keptSeconds']:.2f} s; without: "
            f"{extras['bareSeconds']:.2f} s; ratio {extras['ratio']:.3f} (median of pairs "
            f"{extras['pairedRatioMedian']:.3f}; target < 1.05)",
            flush=True,
        )
        print(
            "  the extras' own work: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in extras["directSeconds"].items())
            + f"; {extras['directShareOfRun'] * 100:.1f} % of the run",
            flush=True,
        )
        history = results["history"] = bench_history(2_000 if args.quick else 10_000, work)
        print(
            f"labsession history, {history['runs']:,} runs ({history['fileMb']} MB): "
            f"{history['historySeconds']:.3f} s; 10 runs {history['smallHistorySeconds']:.3f} s; "
            f"labsession --help {history['helpSeconds']:.3f} s (target < 1 s)",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
