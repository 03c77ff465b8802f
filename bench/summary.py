"""Rewrite the summary table at the top of bench/README.md from bench/results/*.json.

    .venv/bin/python bench/summary.py          # update bench/README.md in place
    .venv/bin/python bench/summary.py --print  # only print the table

The table sits between ``<!-- summary:start -->`` and ``<!-- summary:end -->`` (inserted after
the title the first time); the rest of the file, every section kept by its owner, is left
exactly as it is. Each known results file contributes its headline ratios; a results file this
script does not know yet contributes every ``ratio`` it holds, so nothing new goes unlisted.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
RESULTS = HERE / "results"
START, END = "<!-- summary:start -->", "<!-- summary:end -->"

Row = tuple[str, str, str, str, str]  # benchmark, figure, latest, target, TypeScript backend


def _num(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def _core(data: dict[str, Any]) -> Iterator[Row]:
    throughput = data.get("throughput", {})
    targets = {"get": "≥ 0.8"}
    names = {
        "get": "`get` vs raw `GET`",
        "get vs GET+parse": "`get` vs raw `GET` + `json.loads`",
        "create": "`create` vs raw `SET … EX NX`",
        "extend": "`extend` vs the TypeScript way (not atomic)",
        "extend vs SET": "`extend` vs one raw `SET`",
    }
    for name, figures in throughput.items():
        if "ratio" in figures:
            latest = f"**{_num(figures['ratio'])}** ({figures['lib_ops_s']:,} vs {figures['raw_ops_s']:,} ops/s)"
            yield ("core", f"{names.get(name, name)}, throughput ratio", latest, targets.get(name, ""), "")
    for stored, figures in data.get("listing", {}).items():
        latest = f"**{_num(figures['speedup'], 1)}×** ({figures['labsession_s']} s)"
        yield (
            "core",
            f"list active, {int(stored):,} stored, speedup",
            latest,
            "≥ 20× at 100k" if stored == "100000" else "",
            f"{figures['typescript_s']} s (`KEYS` + a `GET` each)",
        )
    for where, figures in data.get("embedded_start", {}).items():
        yield (
            "core",
            f"embedded Redis start → first PING ({where} {figures['version']})",
            f"**{figures['median_s'] * 1000:.1f} ms**",
            "< 0.5 s",
            "",
        )


def _pool(data: dict[str, Any]) -> Iterator[Row]:
    pools = data.get("pools", {})
    ours = pools.get("labsession", {})
    for tasks, figures in ours.items():
        plain = pools["ConnectionPool"][tasks]["us_per_checkout"]
        blocking = pools["BlockingConnectionPool"][tasks]["us_per_checkout"]
        latest = (
            f"**{figures['us_per_checkout']:.1f} µs** (redis-py `ConnectionPool` {plain:.1f} µs, "
            f"`BlockingConnectionPool` {blocking:.1f} µs)"
        )
        yield ("core", f"connection checkout + release, {tasks}", latest, "", "")


def _backend(data: dict[str, Any]) -> Iterator[Row]:
    ts = data.get("typescript", {})
    figures = [
        (
            "validate",
            "validate, valid id",
            "≥ 0.9",
            f"{ts.get('validate_rps', '')} req/s, p99 {ts.get('validate_p99_ms', '')} ms",
        ),
        (
            "validate_unknown_2000_stored",
            "validate, unknown id, 2,000 stored",
            "≥ 0.8; ≥ 4× TypeScript",
            f"{ts.get('unknown_validate_rps', '')} req/s",
        ),
        (
            "websocket_cycle",
            "WebSocket connect + first message + close",
            "≥ 0.8",
            f"{ts.get('ws_cycles_per_s', '')} cycles/s",
        ),
    ]
    for key, name, target, typescript in figures:
        if key not in data:
            continue
        ours, floor = data[key]["labsession"], data[key]["floor"]
        median = f", median rounds {_num(data[key]['median_ratio'])}" if "median_ratio" in data[key] else ""
        latest = (
            f"**{_num(data[key]['ratio'])}** of the Starlette + one GET floor ({ours['per_s']:,.0f} vs "
            f"{floor['per_s']:,.0f}/s, p99 {ours['p99_ms']} ms{median})"
        )
        yield ("backend", f"{name}, throughput ratio (c=50)", latest, target, typescript)
    if invalid := data.get("invalid_session_to_4000"):
        window = invalid.get("window_ms", 700)
        latest = f"**{invalid['p50_ms']:,.0f} ms** ({window:,.0f} ms of it is the contract's lookup retry"
        if "floor_p50_ms" in invalid:
            latest += f"; floor: that window + the bare app's 50-socket open, {invalid['floor_p50_ms']:,.0f} ms"
        yield (
            "backend",
            "invalid session → close 4000, 50 at once",
            latest + ")",
            "as fast as TypeScript",
            f"{ts.get('invalid_to_4000_ms', '')} ms",
        )


def _health(data: dict[str, Any]) -> Iterator[Row]:
    health = data.get("health")
    if health:
        latest = f"**{_num(health['ratio'])}** ({health['healthSeconds']} s vs {health['naiveSeconds']} s)"
        yield (
            "notebooks",
            "`labsession health --embedded` vs naive papermill floor, time ratio",
            latest,
            f"≤ {health['targetRatio']}",
            "",
        )
    for run in data.get("ttlInspection", []):
        latest = f"**{_num(run['ratio'])}** ({run['probeSeconds']} s, {run['probePeakRssMb']} MB)"
        yield (
            "notebooks",
            f"TTL probe vs `redis-cli --scan`, {run['keys']:,} keys, time ratio",
            latest,
            "≤ 3",
            "no equivalent",
        )


def _ops(data: dict[str, Any]) -> Iterator[Row]:
    extras = data.get("extras")
    if extras:
        own, share = extras["directTotalSeconds"] * 1000, extras["directShareOfRun"] * 100
        latest = (
            f"**{_num(extras['ratio'], 3)}** ({extras['keptSeconds']} s vs {extras['bareSeconds']} s; "
            f"the extras' own work {own:.0f} ms, {share:.1f} % of the run)"
        )
        yield (
            "operations",
            "`labsession health --embedded` with report, history and Prometheus file vs without, time ratio",
            latest,
            "< 1.05",
            "",
        )
    history = data.get("history")
    if history:
        latest = (
            f"**{history['historySeconds']:.2f} s** (10 runs: {history['smallHistorySeconds']:.2f} s; "
            f"`labsession --help`: {history['helpSeconds']:.2f} s)"
        )
        yield ("operations", f"`labsession history`, {history['runs']:,} runs recorded", latest, "< 1 s", "")


def _cluster(data: dict[str, Any]) -> Iterator[Row]:
    for row in data.get("rows", []):
        ours, theirs = row["cluster"], row["standalone"]
        if ours["ops_per_s"] >= 100:
            detail = f"{ours['ops_per_s']:,.0f} vs {theirs['ops_per_s']:,.0f} ops/s"
        else:  # a whole listing: its time says more
            detail = f"{ours['p50_ms']:,.0f} ms vs {theirs['p50_ms']:,.0f} ms"
        yield (
            "cluster",
            f"`{row['operation']}`, 3-master cluster vs one Redis, throughput ratio",
            f"**{_num(row['ratio'])}** ({detail})",
            "",
            "no cluster support",
        )


def _load(data: dict[str, Any]) -> Iterator[Row]:
    for kind, figures in data.items():
        if not isinstance(figures, dict) or "backend_rss_bytes_per_websocket" not in figures:
            continue
        yield (
            "load",
            f"memory per open WebSocket ({kind})",
            f"**{figures['backend_rss_bytes_per_websocket'] / 1024:.1f} KiB** backend RSS",
            "",
            "",
        )
        yield (
            "load",
            f"memory per stored session ({kind})",
            f"**{figures['redis_bytes_per_session']:.0f} B** Redis",
            "",
            "",
        )


def _any_ratios(data: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "ratio" and isinstance(value, int | float):
                yield path or "ratio", value
            else:
                yield from _any_ratios(value, where)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _any_ratios(value, f"{path}[{index}]")


def _unknown(name: str) -> Callable[[dict[str, Any]], Iterator[Row]]:
    def rows(data: dict[str, Any]) -> Iterator[Row]:
        for where, ratio in list(_any_ratios(data))[:12]:
            yield (name, f"`{where}`", f"**{ratio}**", "", "")

    return rows


KNOWN: dict[str, Callable[[dict[str, Any]], Iterator[Row]]] = {
    "core": _core,
    "pool": _pool,
    "backend": _backend,
    "health": _health,
    "ops": _ops,
    "cluster": _cluster,
    "load": _load,
}
#: Files in this order first (core, backend, notebooks, scale), then any other alphabetically.
ORDER = ["core", "pool", "backend", "health", "ops", "cluster", "load"]


def _when(data: dict[str, Any]) -> str:
    for key in ("when", "date"):
        if isinstance(data.get(key), str):
            return str(data[key])[:10]
    for value in data.values():
        for key in ("when", "date"):
            if isinstance(value, dict) and isinstance(value.get(key), str):
                return str(value[key])[:10]
    return ""


def table() -> str:
    lines = [
        "| part | figure | latest | target | TypeScript backend | from |",
        "|---|---|---|---|---|---|",
    ]
    paths = sorted(RESULTS.glob("*.json"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            lines.append(f"| {path.stem} | unreadable: {type(exc).__name__} | | | | `{path.name}` |")
            continue
        rows = KNOWN.get(path.stem, _unknown(path.stem))
        try:
            produced = list(rows(data))
        except (KeyError, TypeError, ValueError) as exc:  # a schema changed: say so, keep going
            produced = [(path.stem, f"schema not understood ({type(exc).__name__}: {exc})", "", "", "")]
        stamp = f"`{path.name}` {_when(data)}".strip()
        lines += [f"| {' | '.join(row)} | {stamp} |" for row in produced]
    return "\n".join(lines)


def render(text: str, summary: str) -> str:
    block = (
        f"{START}\n## Summary: the latest figure of every benchmark\n\n"
        "Generated by `.venv/bin/python bench/summary.py` from `bench/results/*.json`; commands, machines and\n"
        "readings are in each section below. A throughput ratio above 1 or a time ratio below 1 means ours is\n"
        "faster than what it is compared with; a speedup is how many times faster.\n\n"
        f"{summary}\n{END}"
    )
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        return head + block + tail
    lines = text.split("\n")
    title = 1 if lines and lines[0].startswith("# ") else 0
    # After the title and its introductory paragraph, before the first section.
    insert = next((i for i, line in enumerate(lines) if i >= title and line.startswith("## ")), len(lines))
    return "\n".join([*lines[:insert], block, "", *lines[insert:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the table, change nothing")
    args = parser.parse_args(argv)
    summary = table()
    if args.print:
        print(summary)
        return 0
    README.write_text(render(README.read_text(), summary))
    print(f"updated the summary of {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
