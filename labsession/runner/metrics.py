"""The numbers of a health run, named once: what the history keeps for trends and what the Prometheus
file exports.

Names follow Prometheus' conventions: a ``labsession_`` prefix, base units in the name (seconds, not
milliseconds), ``_total`` for a counter. A sample is a name, its labels and a value; a run that did
not measure something (Redis down, a notebook skipped with ``--only``) has no sample for it, rather
than a zero that would read as a measurement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..checks import Status, exit_code
from .results import RunSummary

__all__ = ["METRICS", "MetricSpec", "Sample", "run_samples", "sample_key"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family: its ``help`` sentence and Prometheus ``type`` (gauge or counter)."""

    help: str
    type: str = "gauge"


#: Every metric family a run produces (besides the per-check states the Prometheus file adds).
METRICS: dict[str, MetricSpec] = {
    "labsession_health_success": MetricSpec("1 when the run's verdict was PASS or WARN (exit code 0), else 0"),
    "labsession_health_verdict": MetricSpec("1 for the run's verdict, 0 for the other verdicts"),
    "labsession_health_exit_code": MetricSpec("the exit code of the run: 0 ok, 1 a check failed, 2 could not check"),
    "labsession_health_run_duration_seconds": MetricSpec("wall time of the run, target setup included"),
    "labsession_health_last_run_timestamp_seconds": MetricSpec("Unix time the run ended"),
    "labsession_health_checks": MetricSpec("checks of the run by status"),
    "labsession_health_notebook_duration_seconds": MetricSpec("wall time of each notebook"),
    "labsession_health_notebook_success": MetricSpec("1 when the notebook's verdict was PASS or WARN, else 0"),
    "labsession_redis_ping_p50_seconds": MetricSpec("median Redis PING round trip of the run's samples"),
    "labsession_redis_ping_p99_seconds": MetricSpec("99th percentile Redis PING round trip of the run's samples"),
    "labsession_redis_connected_clients": MetricSpec("client connections Redis reported"),
    "labsession_redis_evicted_keys_total": MetricSpec(
        "keys Redis evicted since it started (INFO evicted_keys)", "counter"
    ),
    "labsession_sessions_scanned": MetricSpec("session keys the TTL inspection read"),
    "labsession_sessions_active": MetricSpec("stored sessions with status active"),
    "labsession_ttl_anomalies": MetricSpec("session keys with a TTL anomaly, by kind"),
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a metric family, with its labels (in order)."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = field(default=())


def sample_key(name: str, labels: Mapping[str, str] | tuple[tuple[str, str], ...] = ()) -> str:
    """``name{a="x",b="y"}``: how the history names a sample (labels in the given order)."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    inner = ",".join(f'{k}="{v}"' for k, v in pairs)
    return f"{name}{{{inner}}}" if inner else name


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _data(summary: RunSummary, check: str, *notebooks: str) -> dict[str, Any] | None:
    """The data of the first non-SKIP check named ``check`` in the first of ``notebooks`` that has one."""
    for notebook in notebooks:
        for found in summary.checks():
            if found.get("notebook") == notebook and found.get("name") == check and found.get("status") != "SKIP":
                data = found.get("data")
                return data if isinstance(data, dict) else {}
    return None


def run_samples(summary: RunSummary) -> list[Sample]:
    """The run's samples, in :data:`METRICS` order."""
    verdict = summary.verdict
    out = [
        Sample("labsession_health_success", 1.0 if exit_code(verdict) == 0 else 0.0),
        *(Sample("labsession_health_verdict", 1.0 if verdict is s else 0.0, (("verdict", s.value),)) for s in Status),
        Sample("labsession_health_exit_code", float(exit_code(verdict))),
        Sample("labsession_health_run_duration_seconds", round(summary.elapsed_seconds, 3)),
    ]
    if summary.finished_at:
        out.append(Sample("labsession_health_last_run_timestamp_seconds", round(summary.finished_at, 3)))
    out += [Sample("labsession_health_checks", float(n), (("status", s),)) for s, n in summary.counts().items()]
    for outcome in summary.outcomes:
        labels = (("notebook", outcome.name),)
        out.append(Sample("labsession_health_notebook_duration_seconds", round(outcome.elapsed_seconds, 3), labels))
        out.append(Sample("labsession_health_notebook_success", 1.0 if exit_code(outcome.status) == 0 else 0.0, labels))
    ping = _data(summary, "ping latency", "connection_check")
    if ping is not None:
        for which in ("p50", "p99"):
            if (ms := _number(ping.get(f"{which}Ms"))) is not None:
                out.append(Sample(f"labsession_redis_ping_{which}_seconds", round(ms / 1000, 9)))
    clients = _data(summary, "clients", "connection_check")
    if clients is not None and (connected := _number(clients.get("connected"))) is not None:
        out.append(Sample("labsession_redis_connected_clients", connected))
    evictions = _data(summary, "evictions", "connection_check") or _data(summary, "eviction", "runbook_invalid_session")
    if evictions is not None and (evicted := _number(evictions.get("evicted"))) is not None:
        out.append(Sample("labsession_redis_evicted_keys_total", evicted))
    scan = _data(summary, "scan", "ttl_inspection")
    if scan is not None:
        if (scanned := _number(scan.get("scanned"))) is not None:
            out.append(Sample("labsession_sessions_scanned", scanned))
        if (active := _number(scan.get("active"))) is not None:
            out.append(Sample("labsession_sessions_active", active))
    for check in summary.checks():
        name = str(check.get("name", ""))
        if check.get("notebook") == "ttl_inspection" and name.startswith("ttl: "):
            count = _number((check.get("data") or {}).get("count"))
            if count is not None:
                out.append(Sample("labsession_ttl_anomalies", count, (("kind", name.removeprefix("ttl: ")),)))
    return out
