"""Probes: the logic behind the diagnostic notebooks, returning typed results and check results.

* :mod:`~labsession.probes.connection` — DNS, TCP, TLS, AUTH, PING latency, server facts, config lint
* :mod:`~labsession.probes.certificate` — which problem a refused TLS certificate has, with its dates and names
* :mod:`~labsession.probes.topology` — the endpoint's role (primary, replica, cluster node) from INFO
* :mod:`~labsession.probes.lifecycle` — a probe session's whole life through the backends
* :mod:`~labsession.probes.visibility` — cross-connection read-after-write lag against the lookup retry window
* :mod:`~labsession.probes.ttl` — a bounded streaming SCAN of the session keys: TTLs, statuses, anomalies
* :mod:`~labsession.probes.websocket` — instance health, ``/terminal`` handshakes, origins, load balancer sampling
* :mod:`~labsession.probes.backend` — the HTTP and WebSocket client both backends are probed with
* :mod:`~labsession.probes.stats` — percentiles, histograms and bounded top-k counting
"""

from __future__ import annotations

from .backend import BackendClient, Diagnostics, HttpAnswer, WsOutcome, parse_diagnostics, to_ws_url, ws_session
from .certificate import (
    CertificateFacts,
    CertificateProblem,
    certificate_problem,
    parse_certificate,
    read_certificate,
)
from .connection import (
    DnsResult,
    LatencySamples,
    TcpResult,
    TlsResult,
    auth_check,
    health_checks,
    lint_config,
    ping_samples,
    probe_dns,
    probe_tcp,
    probe_tls,
)
from .lifecycle import LifecycleResult, probe_session, run_lifecycle
from .stats import Histogram, TopK, percentile
from .topology import Topology, read_topology
from .ttl import (
    DEMO_USER_PREFIX,
    Anomaly,
    TtlInspection,
    delete_demo_sessions,
    inspect_ttls,
    seed_demo_sessions,
    short_id,
)
from .visibility import VisibilityResult, measure_visibility
from .websocket import (
    BalancerSample,
    InstanceInfo,
    check_instance,
    probe_refused_origin,
    probe_unknown_session,
    probe_valid_session,
    same_store,
    sample_balancer,
)

__all__ = [
    "DEMO_USER_PREFIX",
    "Anomaly",
    "BackendClient",
    "BalancerSample",
    "CertificateFacts",
    "CertificateProblem",
    "Diagnostics",
    "DnsResult",
    "Histogram",
    "HttpAnswer",
    "InstanceInfo",
    "LatencySamples",
    "LifecycleResult",
    "TcpResult",
    "TlsResult",
    "TopK",
    "Topology",
    "TtlInspection",
    "VisibilityResult",
    "WsOutcome",
    "auth_check",
    "certificate_problem",
    "check_instance",
    "delete_demo_sessions",
    "health_checks",
    "inspect_ttls",
    "lint_config",
    "measure_visibility",
    "parse_certificate",
    "parse_diagnostics",
    "percentile",
    "ping_samples",
    "probe_dns",
    "probe_session",
    "probe_refused_origin",
    "probe_tcp",
    "probe_tls",
    "probe_unknown_session",
    "probe_valid_session",
    "read_certificate",
    "read_topology",
    "run_lifecycle",
    "same_store",
    "sample_balancer",
    "seed_demo_sessions",
    "short_id",
    "to_ws_url",
    "ws_session",
]
