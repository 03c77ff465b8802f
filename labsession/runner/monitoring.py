"""A health run for monitoring systems, by their own conventions: a Prometheus textfile and a Nagios line.

**Prometheus** (:func:`write_prometheus`): the text exposition format node_exporter's textfile
collector reads (``--collector.textfile.directory``). The file is written whole to a temporary file
in the same folder and renamed over the old one, so the collector never reads half a file; samples
carry no timestamps (the collector refuses them); names have the ``labsession_`` prefix and base
units (:mod:`labsession.runner.metrics`), and every check is a state set:
``labsession_health_check_status{notebook,check,status}`` is 1 for its status and 0 for the others.
Alert on ``labsession_health_success == 0``, and on
``time() - labsession_health_last_run_timestamp_seconds`` for a run that stopped happening.

**Nagios / Icinga** (:func:`nagios_line`, :data:`NAGIOS_CODES`): one status line with performance
data and the plugin exit codes, a mapping of the same verdict that
:func:`labsession.checks.exit_code` maps for everything else: 0 OK (PASS, SKIP), 1 WARNING (WARN),
2 CRITICAL (FAIL), 3 UNKNOWN (ERROR: a check, or the run, could not check). A timing-only WARN does
not lower the verdict, so it is OK here too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..checks import Status
from ..masking import mask_text
from .metrics import METRICS, run_samples
from .report import find_root_cause
from .results import RunSummary

__all__ = [
    "NAGIOS_CODES",
    "NAGIOS_UNKNOWN",
    "nagios_code",
    "nagios_line",
    "nagios_unknown",
    "prometheus_text",
    "write_prometheus",
]

#: Nagios plugin exit code of each verdict.
NAGIOS_CODES = {Status.PASS: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2, Status.ERROR: 3}
#: The exit code of a run that could not check at all (no target, another run holds the history).
NAGIOS_UNKNOWN = 3
_NAGIOS_NAMES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
_CHECK_STATUS = "labsession_health_check_status"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def prometheus_text(summary: RunSummary) -> str:
    """The run in the Prometheus text format: every family with ``# HELP`` and ``# TYPE``, no timestamps."""
    by_family: dict[str, list[str]] = {}
    for sample in run_samples(summary):
        labels = ",".join(f'{k}="{_label(v)}"' for k, v in sample.labels)
        by_family.setdefault(sample.name, []).append(
            f"{sample.name}{{{labels}}} {_value(sample.value)}" if labels else f"{sample.name} {_value(sample.value)}"
        )
    worst: dict[tuple[str, str], Status] = {}
    for check in summary.checks():
        key = (str(check.get("notebook")), str(check.get("name")))
        status = Status(str(check.get("status")))
        if key not in worst or status.rank > worst[key].rank:
            worst[key] = status  # one series per check, even when a notebook repeats a check's name
    lines: list[str] = []
    for name, spec in METRICS.items():
        if name in by_family:
            lines += [f"# HELP {name} {spec.help}", f"# TYPE {name} {spec.type}", *by_family[name]]
    if worst:
        lines += [
            f"# HELP {_CHECK_STATUS} 1 for the check's status in the last run, 0 for the other statuses",
            f"# TYPE {_CHECK_STATUS} gauge",
        ]
        for (notebook, name), status in worst.items():
            for each in Status:
                lines.append(
                    f'{_CHECK_STATUS}{{notebook="{_label(notebook)}",check="{_label(mask_text(name))}",'
                    f'status="{each.value}"}} {1 if each is status else 0}'
                )
    return "\n".join(lines) + "\n"


def write_prometheus(summary: RunSummary, path: Path) -> None:
    """Write :func:`prometheus_text` to ``path`` atomically (a temporary file in the same folder, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(prometheus_text(summary))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # the collector runs as another user
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def nagios_code(verdict: Status) -> int:
    """The Nagios plugin exit code of ``verdict`` (:data:`NAGIOS_CODES`)."""
    return NAGIOS_CODES[verdict]


def _perf(summary: RunSummary) -> str:
    counts = summary.counts()
    parts = [
        f"duration={summary.elapsed_seconds:.3f}s;;;0",
        f"checks={sum(counts.values())};;;0",
        f"failed={counts['FAIL'] + counts['ERROR']};;;0",
        f"warnings={counts['WARN']};;;0",
    ]
    for sample in run_samples(summary):
        if sample.name.startswith("labsession_redis_ping_"):
            which = sample.name.removeprefix("labsession_redis_ping_").removesuffix("_seconds")
            parts.append(f"ping_{which}={sample.value:.6f}s;;;0")
        elif sample.name == "labsession_sessions_active":
            parts.append(f"active_sessions={_value(sample.value)};;;0")
        elif sample.name == "labsession_redis_evicted_keys_total":
            parts.append(f"evicted_keys={_value(sample.value)}c;;;0")
    return " ".join(parts)


def nagios_line(summary: RunSummary) -> str:
    """``LABSESSION CRITICAL - <what> | <performance data>``: one line, for Nagios or Icinga."""
    verdict = summary.verdict
    code = nagios_code(verdict)
    counts = summary.counts()
    checks = summary.checks()
    bad = [c for c in checks if c.get("status") in ("FAIL", "ERROR")]
    if summary.stopped_by:
        text = f"stopped by {summary.stopped_by} before every check ran"
    elif verdict in (Status.FAIL, Status.ERROR):
        cause = find_root_cause(summary)
        broke = [o.name for o in summary.outcomes if o.status is Status.ERROR and not o.checks()]
        if cause is not None:
            text = f"{len(bad)} checks failed, root cause {cause.code}: {cause.remedy}"
        else:
            names = ", ".join(f"{c['notebook']}: {c['name']}" for c in bad[:3]) + (", …" if len(bad) > 3 else "")
            text = f"{len(bad)} checks failed ({names})" if bad else ""
        if broke:
            text += ("; " if text else "") + f"could not run: {', '.join(broke)}"
    elif verdict is Status.WARN:
        warned = [c for c in checks if c.get("status") == "WARN" and not c.get("timing")]
        names = ", ".join(f"{c['notebook']}: {c['name']}" for c in warned[:3]) + (", …" if len(warned) > 3 else "")
        text = f"{len(warned)} warnings ({names})"
    else:
        text = f"all {sum(counts.values())} checks passed" + (f" ({counts['SKIP']} skipped)" if counts["SKIP"] else "")
    target = str(summary.target.get("endpoint") or "")
    text = mask_text(text).replace("|", "/")  # masked alone: a rule must not eat the "|" before the data
    line = f"LABSESSION {_NAGIOS_NAMES[code]} - {text}" + (f" [{mask_text(target)}]" if target else "")
    return " ".join(line.split()) + " | " + _perf(summary)


def nagios_unknown(reason: str) -> str:
    """The line of a run that could not check at all (exit :data:`NAGIOS_UNKNOWN`)."""
    return "LABSESSION UNKNOWN - " + " ".join(mask_text(reason).replace("|", "/").split())
