#!/usr/bin/env python3
"""Mutation testing with cosmic-ray over the modules where a wrong answer is costly.

    python3 tasks.py mutation                  # every target below, then the table
    python3 tasks.py mutation masking verdict  # some of them
    python3 tasks.py mutation --list           # the targets: file, mutated lines, tests
    python3 tasks.py mutation --jobs 2         # two targets at once (each is serial inside)

A habit, not CI: run it after changing a target or its tests. Each target is its own cosmic-ray
session (``cosmic-ray init``, our scope filter, ``cosmic-ray exec``) in its own copy of the
repository under ``.mutation/<target>/`` (the work tree is never mutated), against the target's
own fast tests (:data:`TARGETS`). The table counts every mutant in scope: killed, survived,
equivalent (a survivor listed in :data:`EQUIVALENT` with the reason no test can kill it).
The command exits 1 while a survivor is neither killed nor listed.

Why cosmic-ray: it mutates property bodies (``Report.verdict``) and module-level tables
(``_RANK``), which mutmut 3 leaves alone, and its sessions take a line filter, so a big module
is mutated only in the functions named. It starts the test command once per mutant, which on
this project costs ~2 s of imports (pytest plugins, hypothesis, nbformat); a small fork server
(``_serve`` below) imports all that once and forks one pytest per mutant, so a mutant costs
its tests. The server never imports ``labsession``: each child imports it from the copy on
disk, mutated, and no ``.pyc`` of the mutated module is ever written.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".mutation"
#: What each copy holds: the package, the tests and what pytest reads at the root.
COPIED = ("labsession", "tests", "conftest.py", "pyproject.toml", "nbval_sanitize.cfg")
#: Stop at the first failure; plain asserts (rewriting every test module per mutant costs more
#: than the tests; a failing assert fails all the same), so the server's preloaded plugins
#: need no rewriting either.
PYTEST_ARGS = (
    "-x",
    "-q",
    "-p",
    "no:cacheprovider",
    "--no-header",
    "--assert=plain",
    "-W",
    "ignore::pytest.PytestAssertRewriteWarning",
)


@dataclass(frozen=True)
class Part:
    """Lines to mutate: the function, method, class or module-level assignment ``name``
    (``Class.method`` for a method), or only its lines from the first one holding ``start``
    to the first one after it holding ``end``."""

    name: str
    start: str = ""
    end: str = ""


@dataclass(frozen=True)
class Target:
    """One cosmic-ray session: ``path`` mutated in ``parts`` (all of it when empty), tested by ``tests``."""

    name: str
    path: str
    tests: tuple[str, ...]
    parts: tuple[Part, ...] = ()
    why: str = ""


def _parts(*names: str) -> tuple[Part, ...]:
    return tuple(Part(n) for n in names)


_CONNECTIVITY_TESTS = tuple(
    f"tests/runbooks/test_diagnosis.py::{t}"
    for t in (
        "test_connectivity_ok",
        "test_a_url_without_a_port_is_diagnosed_on_6379",
        "test_a_client_table_nine_tenths_full_is_a_warning",
        "test_dns_failure",
        "test_connection_refused",
        "test_a_frozen_server_is_a_timeout",
        "test_plain_url_to_the_tls_port_is_tls_required",
        "test_a_certificate_from_a_ca_the_client_lacks_names_its_issuer",
        "test_each_certificate_problem_is_named_with_its_dates_and_names",
        "test_a_replica_is_named_with_the_primary_it_follows",
        "test_each_upstash_error_text_is_named_by_the_runbook_and_the_library",
        "test_tls_with_the_right_ca_is_ok",
        "test_wrong_password_is_auth_failed_and_the_tried_password_stays_secret",
        "test_no_password_is_auth_failed",
        "test_client_limit_is_max_connections",
        "test_every_cause_has_a_remedy_and_is_registered",
        "test_a_unix_socket_skips_the_network_layers",
        "test_a_port_that_never_completes_the_handshake_is_a_timeout",
        "test_a_port_that_drops_every_connection_and_speaks_no_tls_is_connection_lost",
        "test_a_certificate_for_another_name_fails_the_tls_step",
        "test_rediss_to_a_port_answering_in_plain_text_says_the_port_is_not_tls",
        "test_rediss_to_a_plain_redis_port_is_tls_not_spoken_not_a_timeout",
        "test_rediss_to_a_port_that_accepts_and_never_answers_is_a_timeout",
        "test_a_unix_socket_that_is_not_there_is_socket_not_found",
        "test_a_url_that_does_not_fit_the_server_names_what_to_change",
        "test_a_certificate_near_its_end_is_a_warning_with_its_date",
        "test_a_writable_replica_is_a_replica_that_loses_writes",
        "test_a_replica_whose_primary_is_gone_is_still_a_replica",
    )
)

_DIAGNOSE = "diagnose_redis_connectivity"
#: The runbook runs that decide between causes found together (precedence), on real servers.
_INVALID_SESSION_TESTS = tuple(
    f"tests/runbooks/test_diagnosis.py::{t}"
    for t in (
        "test_a_valid_session_is_no_fault_found",
        "test_read_only_run_skips_the_visibility_probe_and_writes_nothing",
        "test_an_ended_session",
        "test_a_session_that_never_existed",
        "test_two_causes_at_once_the_session_is_named_before_visibility_lag",
        "test_two_causes_at_once_eviction_found_last_is_named_before_visibility_lag",
        "test_evicted_sessions_are_suspected",
        "test_lag_longer_than_the_lookup_window_is_visibility_lag",
    )
)
#: The pure rules of the invalid-session runbook's instance steps (shared store, replication, clocks).
_INSTANCE_RULES = ("tests/runbooks/test_invalid_session_rules.py",)

#: The targets, each with the tests that must kill its mutants. Keep each test list fast: a
#: mutant runs it (up to its first failure), so its time is paid once per mutant.
TARGETS: tuple[Target, ...] = (
    Target("masking", "labsession/masking.py", ("tests/test_masking.py",), why="a secret in a log, a repr or a report"),
    Target(
        "settings",
        "labsession/settings.py",
        ("tests/test_settings.py",),
        _parts(
            "_bad",
            "Settings.__post_init__",
            "Settings.from_url",
            "Settings.from_env",
            "Settings.scheme",
            "Settings.host",
            "Settings.port",
            "Settings.is_upstash",
            "Settings.tls",
            "Settings.tls_upgraded",
            "Settings.endpoint",
            "Settings.session_ttl_seconds",
            "_check_url",
            "_int",
            "_float",
            "_bool",
        ),
        why="the wrong server, TLS off, a bad value taken",
    ),
    Target(
        "session-rules",
        "labsession/sessions/service.py",
        ("tests/sessions/test_service.py",),
        _parts(
            "ENDED_TTL_SECONDS",
            "MAX_EXTEND_MINUTES",
            "check_extension_minutes",
            "ValidationResult.valid",
            "LabSessionService.validate",
            "LabSessionService.judge",
            "LabSessionService.judge_reply",
            "LabSessionService.extend",
            "LabSessionService.end",
        ),
        why="a session let in, refused or extended wrongly",
    ),
    Target(
        "session-model",
        "labsession/sessions/model.py",
        ("tests/sessions/test_model.py",),
        _parts(
            "check_session_id",
            "LabSession.from_dict",
            "LabSession._check",
            "LabSession.from_json",
            "LabSession.expires_in",
            "LabSession.ttl_seconds",
        ),
        why="a corrupt record taken for a session, a wrong TTL",
    ),
    Target(
        "classify",
        "labsession/store/classify.py",
        ("tests/store/test_classify.py",),
        why="the wrong cause and remedy; retrying what cannot mend",
    ),
    Target(
        "origins",
        "labsession/backend/origins.py",
        ("tests/backend/test_origins.py",),
        why="a foreign site allowed to call the backend",
    ),
    Target(
        "origin-normalize",
        "labsession/backend/config.py",
        ("tests/backend/test_origins.py",),
        _parts("normalize_origin", "parse_origins"),
        why="an origin matched that is not the listed one",
    ),
    Target(
        "invalid-session",
        "labsession/runbooks/invalid_session.py",
        (
            "tests/runbooks/test_invalid_session_rules.py",
            *_INVALID_SESSION_TESTS,
            "tests/runbooks/test_invalid_session_instances.py",
        ),
        (
            Part("judge_key"),
            Part("_eviction_evidence"),
            Part("eviction_check"),
            Part("_PRECEDENCE"),
            Part("diagnose_invalid_session", start="if evicted and inputs.session_id is None"),
        ),
        why="on-call sent after the wrong cause",
    ),
    # The decisions of the connectivity runbook, not the wording and timing of its evidence nor
    # the time bound of its one attempt.
    Target(
        "connectivity",
        "labsession/runbooks/redis_connectivity.py",
        ("tests/runbooks/test_connectivity_rules.py", *_CONNECTIVITY_TESTS),
        (
            Part("remedy_for"),
            Part(_DIAGNOSE, start='if settings.scheme == "unix":', end="host, port = settings.host"),
            Part(_DIAGNOSE, start="except (OSError, TimeoutError) as exc:", end='return fail(cause, "tls", "redis")'),
            Part(_DIAGNOSE, start="if settings.tls:", end="return fail(C.TLS_VERIFY_FAILED"),
            Part(_DIAGNOSE, start="except RedisUnavailable as exc:", end="status = Status.WARN"),
            Part(_DIAGNOSE, start="if role_fault := _topology_step"),
            Part("_topology_step"),
            Part("_stalled_handshake"),
            Part("RENEWAL_WARNING_DAYS"),
            Part("_renewal_due", end='return ""'),
            Part("_certificate_step", start="try:", end="return None"),
            Part("_certificate_step", start="if problem is None:", end="return None"),
        ),
        why="on-call sent after the wrong cause",
    ),
    Target(
        "topology",
        "labsession/probes/topology.py",
        (
            "tests/probes/test_topology_rules.py",
            *(
                f"tests/runbooks/test_diagnosis.py::{t}"
                for t in (
                    "test_connectivity_ok",
                    "test_a_replica_is_named_with_the_primary_it_follows",
                    "test_a_writable_replica_is_a_replica_that_loses_writes",
                    "test_a_replica_whose_primary_is_gone_is_still_a_replica",
                )
            ),
        ),
        _parts("Topology.cause", "_flag", "_int", "read_topology"),
        why="a replica or a cluster node taken for the primary that sessions are written to",
    ),
    Target(
        "certificate",
        "labsession/probes/certificate.py",
        ("tests/probes/test_certificate.py",),
        _parts(
            "_SELF_SIGNED_CODES",
            "_UNTRUSTED_CODES",
            "_HOST_CODES",
            "CertificateFacts.covers",
            "_same_address",
            "parse_certificate",
            "_days",
            "certificate_problem",
        ),
        why="on-call told to renew a certificate when the client lacks its CA, or the reverse",
    ),
    Target(
        "mismatch",
        "labsession/store/mismatch.py",
        ("tests/store/test_mismatched_urls.py",),
        _parts("answers_plain_text", "explain"),
        why="a plain port called a firewall, the wrong database number named",
    ),
    Target(
        "instances",
        "labsession/runbooks/instances.py",
        _INSTANCE_RULES,
        _parts(
            "InstanceSample.store_key",
            "InstanceSample.label",
            "data_sets",
            "keyspace",
            "_keyspaces_differ",
            "compare_stores",
        ),
        why="instances on two stores called one, or a replica called a split",
    ),
    Target(
        "replication",
        "labsession/runbooks/replication.py",
        _INSTANCE_RULES,
        _parts("_lag_or_never", "judge_replication"),
        why="a lagging replica called in sync, or the other way round",
    ),
    Target(
        "clocks",
        "labsession/runbooks/clocks.py",
        ("tests/runbooks/test_clocks_rules.py", *_INSTANCE_RULES),
        _parts("DATE_UNCERTAINTY_S", "judge_clocks"),
        why="a clock ahead that expires live sessions left unnamed",
    ),
    Target(
        "latency-memory",
        "labsession/runbooks/latency_memory_rules.py",
        ("tests/runbooks/test_latency_memory_rules.py",),
        _parts(
            "Limits",
            "size",
            "judge_ping",
            "_recent",
            "judge_slowlog",
            "judge_latency_events",
            "judge_commandstats",
            "judge_memory",
            "judge_eviction_step",
            "judge_fragmentation",
            "judge_ttls",
            "judge_big_keys",
        ),
        why="a slow or full Redis called healthy, or the wrong fix sent",
    ),
    Target(
        "terminal-disconnects",
        "labsession/runbooks/terminal_disconnects.py",
        ("tests/runbooks/test_terminal_disconnects_rules.py",),
        _parts(
            "_TOGETHER_SECONDS",
            "TerminalDisconnectsInputs.__post_init__",
            "TerminalDisconnectsInputs.run_seconds",
            "judge_session",
            "judge_connect",
            "judge_pings",
            "judge_idle",
            "_invalid_mid_connection",
            "judge_closes",
            "_finish",
        ),
        why="a proxy's idle timeout blamed on the backend, or a session's end on the network",
    ),
    Target(
        "restarts",
        "labsession/runbooks/restarts.py",
        ("tests/runbooks/test_restarts_rules.py",),
        _parts("START_TOLERANCE_SECONDS", "UptimeSample.started_at", "judge_restarts"),
        why="a restart mid-run missed, or an old instance called new",
    ),
    Target(
        "exit-codes",
        "labsession/checks.py",
        ("tests/test_checks.py",),
        _parts(
            "EXIT_OK",
            "EXIT_FAILED",
            "EXIT_COULD_NOT_RUN",
            "exit_code",
        ),
        why="a scheduler told healthy when a check failed",
    ),
    Target(
        "verdict",
        "labsession/checks.py",
        ("tests/test_checks.py",),
        _parts(
            "Status.rank",
            "_RANK",
            "worst",
            "CheckResult.__post_init__",
            "Report.verdict",
            "Report.raise_for_failures",
        ),
        why="a report that passes with a failed check in it",
    ),
)


@dataclass(frozen=True)
class Equivalent:
    """A surviving mutant no test can kill: the program behaves the same. ``mutant`` is the
    mutated line as cosmic-ray's diff shows it (stripped); ``operator`` its operator's name."""

    target: str
    operator: str
    mutant: str
    reason: str


#: Survivors that are equivalent mutants, each with the reason. A listed mutant that no longer
#: survives (or no longer exists) is reported as stale, so this list cannot rot silently.
#: Most are comparisons on a closed set of values: a StrEnum member or a validated string compared
#: with ``<=``/``>=`` instead of ``==``, where no other value of the set sorts on that side, or
#: ``==`` instead of ``is`` on enum members (singletons).
_IS_EQ_ENUM = "enum members are singletons: == and is agree on every member"
_MASTER_HOST = "only a replica's INFO replication has master_host (role slave, read as replica)"
_CLOCK_SIGN = "reached only with |deviation| > max_skew_s + 1.5 >= 1.5: its sign against 0, 1 or -1 agrees"
EQUIVALENT: tuple[Equivalent, ...] = (
    # exit codes: exit_code(verdict) is called with a Status only (Status(...) of a report's string)
    Equivalent("exit-codes", "core/ReplaceComparisonOperator_Is_Eq", "if verdict == Status.ERROR:", _IS_EQ_ENUM),
    Equivalent(
        "exit-codes",
        "core/ReplaceComparisonOperator_Is_LtE",
        "if verdict <= Status.ERROR:",
        "'ERROR' sorts before FAIL, PASS, SKIP and WARN: only ERROR is <= ERROR",
    ),
    Equivalent("exit-codes", "core/ReplaceComparisonOperator_Is_Eq", "if verdict == Status.FAIL:", _IS_EQ_ENUM),
    Equivalent(
        "exit-codes",
        "core/ReplaceComparisonOperator_Is_LtE",
        "if verdict <= Status.FAIL:",
        "past the ERROR branch, 'FAIL' sorts before PASS, SKIP and WARN: only FAIL is <= FAIL",
    ),
    Equivalent("verdict", "core/ReplaceComparisonOperator_IsNot_NotEq", "if status != Status.WARN:", _IS_EQ_ENUM),
    Equivalent(
        "verdict",
        "core/ReplaceComparisonOperator_IsNot_Lt",
        "if status < Status.WARN:",
        "'WARN' sorts after every other status: < WARN is is not WARN",
    ),
    # masking: at = text.rfind("@", start, ...) with start just past "scheme://", so -1 or > 3, never 0
    Equivalent(
        "masking",
        "core/ReplaceComparisonOperator_Lt_LtE",
        "if at <= 0:",
        "rfind from past 'scheme://' finds -1 or a position > 3: never 0",
    ),
    Equivalent(
        "masking",
        "core/NumberReplacer",
        "if at < 1:",
        "rfind from past 'scheme://' finds -1 or a position > 3: never 0",
    ),
    # origins
    Equivalent(
        "origins",
        "core/ReplaceComparisonOperator_NotEq_Gt",
        'if scope["type"] > "http":',
        "the other ASGI scope types, 'lifespan' and 'websocket', sort after 'http'",
    ),
    Equivalent(
        "origin-normalize",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'default = 80 if scheme <= "http" else 443',
        "the scheme is 'http' or 'https' here, and 'https' sorts after 'http'",
    ),
    # settings: by then _check_url has made the scheme one of redis, rediss, unix (in that order)
    Equivalent(
        "settings",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'if raw is None or raw.strip() <= "":',
        "no string sorts before the empty one: <= '' is == ''",
    ),
    Equivalent(
        "settings",
        "core/ReplaceComparisonOperator_NotEq_Lt",
        'return urlsplit(self.redis_url).port if self.scheme < "unix" else None',
        "redis and rediss sort before unix: < 'unix' is != 'unix'",
    ),
    Equivalent(
        "settings",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'return self.scheme == "rediss" or (self.scheme <= "redis" and self.is_upstash)',
        "rediss and unix sort after redis: <= 'redis' is == 'redis'",
    ),
    Equivalent(
        "settings",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'return self.scheme <= "redis" and self.is_upstash',
        "rediss and unix sort after redis: <= 'redis' is == 'redis'",
    ),
    Equivalent(
        "settings",
        "core/ReplaceComparisonOperator_Eq_GtE",
        'if self.scheme >= "unix":',
        "redis and rediss sort before unix: >= 'unix' is == 'unix'",
    ),
    Equivalent(
        "settings",
        "core/ReplaceComparisonOperator_Eq_GtE",
        'if parts.scheme.lower() >= "unix":',
        "reached only with redis, rediss or unix, which sort before or at unix",
    ),
    # session rules: a ValidationReason is one of ok, not_found, expired, ended, not_active, corrupt
    Equivalent(
        "session-rules",
        "core/ReplaceComparisonOperator_Is_Eq",
        "return self.reason == ValidationReason.OK",
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "session-rules",
        "core/ReplaceComparisonOperator_Is_GtE",
        "return self.reason >= ValidationReason.OK",
        "'ok' sorts after every other reason: >= OK is is OK",
    ),
    Equivalent(
        "session-rules",
        "core/ReplaceComparisonOperator_Is_Eq",
        "if verdict.reason == ValidationReason.ENDED:",
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "session-rules",
        "core/ReplaceComparisonOperator_Is_LtE",
        "if verdict.reason <= ValidationReason.ENDED:",
        "judge() of a parsed session gives ok, expired, ended or not_active, and only 'ended' is <= 'ended'",
    ),
    # runbook causes
    Equivalent(
        "invalid-session", "core/ReplaceComparisonOperator_Is_Eq", "if judged.status == Status.PASS:", _IS_EQ_ENUM
    ),
    Equivalent(
        "invalid-session",
        "core/ReplaceComparisonOperator_Is_LtE",
        "if judged.status <= Status.PASS:",
        "sessions not lost, the judgement is PASS or WARN, and only PASS sorts at or before PASS",
    ),
    Equivalent(
        "invalid-session",
        "core/NumberReplacer",
        "if ttl >= -1 and skew_s > 5:",
        "a TTL of -1 returned just before, so >= -1 is >= 0",
    ),
    Equivalent(
        "invalid-session",
        "core/ReplaceComparisonOperator_Is_Eq",
        "if cause == C.NO_FAULT_FOUND and inputs.session_id is None:",
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "invalid-session",
        "core/ReplaceComparisonOperator_Is_Eq",
        "return conclude(NAME, report, cause, remedy, healthy=cause == C.NO_FAULT_FOUND, "
        'evidence=detail.get(cause, ""))',
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "invalid-session",
        "core/ReplaceBinaryOperator_Sub_Mod",
        "skew_s = abs(ttl - (session.expires_at % now_ms) / 1000)",
        "reached only with now < expiresAt < 2 * now (until 2081), where % now is - now",
    ),
    # connectivity: the scheme is redis, rediss or unix; the Redis step failed with TLS_REQUIRED,
    # CONNECTION_LOST or TIMEOUT when its TLS probe runs
    Equivalent(
        "connectivity",
        "core/ReplaceComparisonOperator_Eq_GtE",
        'if settings.scheme >= "unix":',
        "redis and rediss sort before unix: >= 'unix' is == 'unix'",
    ),
    Equivalent(
        "connectivity",
        "core/ReplaceComparisonOperator_NotEq_Lt",
        'if not settings.tls and settings.scheme < "unix" and cause in (C.TLS_REQUIRED, C.CONNECTION_LOST, C.TIMEOUT):',
        "redis and rediss sort before unix: < 'unix' is != 'unix'",
    ),
    Equivalent("connectivity", "core/ReplaceComparisonOperator_Is_Eq", "if cause == C.TLS_REQUIRED:", _IS_EQ_ENUM),
    Equivalent(
        "connectivity",
        "core/ReplaceComparisonOperator_Is_GtE",
        "if cause >= C.TLS_REQUIRED:",
        "of TLS_REQUIRED, CONNECTION_LOST and TIMEOUT only TLS_REQUIRED sorts at or after TLS_REQUIRED",
    ),
    Equivalent(
        "connectivity",
        "core/ReplaceAndWithOr",
        "if health.connected_clients is not None or health.max_clients:",
        "INFO's clients section gives connected_clients and maxclients together, or neither",
    ),
    Equivalent(
        "connectivity",
        "core/ReplaceComparisonOperator_Is_GtE",
        'said = "the handshake got no answer, a plain-text PING did" if stalled >= C.TLS_NOT_SPOKEN else ""',
        "a stalled handshake is TLS_NOT_SPOKEN or TIMEOUT, and TIMEOUT sorts before TLS_NOT_SPOKEN",
    ),
    Equivalent(
        "connectivity",
        "core/ExceptionReplacer",
        "except (OSError, ssl.SSLError, CosmicRayTestingException, ValueError) as exc:",
        "TimeoutError is an OSError: the first name of the tuple still catches it",
    ),
    Equivalent(
        "connectivity",
        "core/ReplaceComparisonOperator_Is_Eq",
        'said = "the handshake got no answer, a plain-text PING did" if stalled == C.TLS_NOT_SPOKEN else ""',
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "connectivity",
        "core/ReplaceComparisonOperator_Is_Eq",
        "if probe.exception is not None and classify(probe.exception) == C.TLS_NOT_SPOKEN:",
        _IS_EQ_ENUM,
    ),
    # Not equivalent, but out of the tests' reach: the TLS probe's default port matters only for
    # a URL without a port while something on 127.0.0.1:6379 drops plain connections, and port
    # 6379 is not the tests' to own (a system redis may hold it). The same default is pinned on
    # the TCP step by test_a_url_without_a_port_is_diagnosed_on_6379.
    Equivalent(
        "connectivity",
        "core/NumberReplacer",
        "probe = await probe_tls(settings.host, settings.port or 6380, verify=False, timeout=timeout, as_client=True)",
        "NOT EQUIVALENT: needs a TLS-only server on the default port 6379, which no test may own",
    ),
    Equivalent(
        "connectivity",
        "core/NumberReplacer",
        "probe = await probe_tls(settings.host, settings.port or 6378, verify=False, timeout=timeout, as_client=True)",
        "NOT EQUIVALENT: needs a TLS-only server on the default port 6379, which no test may own",
    ),
    # clocks: the direction is asked only of a deviation beyond the limit
    Equivalent("clocks", "core/NumberReplacer", 'direction = "ahead of" if deviation > -1 else "behind"', _CLOCK_SIGN),
    Equivalent(
        "clocks",
        "core/ReplaceComparisonOperator_Gt_GtE",
        'direction = "ahead of" if deviation >= 0 else "behind"',
        _CLOCK_SIGN,
    ),
    Equivalent("clocks", "core/NumberReplacer", 'direction = "ahead of" if deviation > 1 else "behind"', _CLOCK_SIGN),
    Equivalent("clocks", "core/ReplaceComparisonOperator_Gt_GtE", "if deviation >= 0", _CLOCK_SIGN),
    Equivalent("clocks", "core/NumberReplacer", "if deviation > 1", _CLOCK_SIGN),
    Equivalent("clocks", "core/NumberReplacer", "if deviation > -1", _CLOCK_SIGN),
    Equivalent(
        "clocks",
        "core/ReplaceBinaryOperator_Mul_Div",
        "/,",
        "'*' to '/' in the signature only lets max_skew_s be passed by position too; every call names it",
    ),
    # replication
    Equivalent(
        "replication",
        "core/ReplaceBinaryOperator_Mul_Div",
        "lags: list[ReplicaLag], window_ms: float, bound_ms: float, /, wrote: bool",
        "'*' to '/' in the signature only lets wrote be passed by position too; every call names it",
    ),
    Equivalent(
        "replication",
        "core/ReplaceComparisonOperator_Eq_LtE",
        "if lag.behind_bytes <= 0 and not wrote:",
        "behind_bytes is max(0, ...) once caught up, never below 0: <= 0 is == 0",
    ),
    # terminal disconnects
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceBinaryOperator_Mul_Div",
        'def _finish(report: Report, found: list[TerminalDisconnectsCause], /, hint: str = "") -> Diagnosis:',
        "'*' to '/' in the signature only lets hint be passed by position too; every call names it",
    ),
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceComparisonOperator_Eq_LtE",
        "by_idling = idle.close_code is None or (idle.close_code <= 1000 and idle.last_error_code is None)",
        "close codes start at 1000 (RFC 6455 7.4; websockets refuses a lower one): <= 1000 is == 1000",
    ),
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'elif not (c.label == "idle" and c.close_code <= 1000):',
        "close codes start at 1000 (RFC 6455 7.4; websockets refuses a lower one): <= 1000 is == 1000",
    ),
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceComparisonOperator_Is_Eq",
        'if c.last_error_code == "SESSION_EXPIRED" '
        "or (after is not None and after.reason == ValidationReason.EXPIRED):",
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceComparisonOperator_Is_Eq",
        "remedy = hint if cause == C.NO_FAULT_FOUND and hint else REMEDIES[cause]",
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceComparisonOperator_Is_Eq",
        "return conclude(NAME, report, cause, remedy, healthy=cause == C.NO_FAULT_FOUND)",
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'elif not (c.label <= "idle" and c.close_code == 1000):',
        "the runbook's two connections are labelled pinging and idle, and pinging sorts after idle",
    ),
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceComparisonOperator_Is_Eq",
        'if c.last_error_code == "SESSION_ENDED" or (after is not None and after.reason == ValidationReason.ENDED):',
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceBinaryOperator_Mul_Div",
        "c: HeldConnection, after: ValidationResult | None, /, expiring: bool",
        "'*' to '/' in the signature only lets expiring be passed by position too; every call names it",
    ),
    Equivalent(
        "terminal-disconnects",
        "core/ReplaceBinaryOperator_Mul_Div",
        "/,",
        "'*' to '/' in judge_closes' signature only lets explained and expiring be passed by position; calls name them",
    ),
    # latency and memory
    Equivalent(
        "latency-memory",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'return f"{value:.0f} {unit}" if unit <= "B" else f"{value:.1f} {unit}"',
        "the units are B, KiB and MiB, and only B sorts at or before B",
    ),
    Equivalent(
        "latency-memory",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'which = "allocator fragmentation" if info.fragmentation_source <= "allocator_frag" else "RSS fragmentation"',
        "with a ratio the source is allocator_frag or mem_fragmentation, which sorts after it",
    ),
    Equivalent(
        "latency-memory",
        "core/ReplaceBinaryOperator_Mul_Div",
        'read: AdminRead[tuple[LatencyEvent, ...]] | None, now: float, limits: Limits, /, why_not: str = ""',
        "'*' to '/' in the signature only lets why_not be passed by position too; every call names it",
    ),
    Equivalent(
        "latency-memory",
        "core/ReplaceBinaryOperator_Mul_Div",
        'read: AdminRead[tuple[SlowEntry, ...]] | None, now: float, limits: Limits, /, why_not: str = ""',
        "'*' to '/' in the signature only lets why_not be passed by position too; every call names it",
    ),
    Equivalent(
        "latency-memory",
        "core/ReplaceBinaryOperator_Mul_Div",
        'sample: KeySample | None, limits: Limits, /, why_not: str = ""',
        "'*' to '/' in the signature only lets why_not be passed by position too; every call names it",
    ),
    Equivalent(
        "latency-memory",
        "core/NumberReplacer",
        "total = sum(c.usec for c in info.commands) or 2",
        "the total is 0 only when every command's time is 0, and 0 over 1 or 2 is 0 alike",
    ),
    Equivalent(
        "latency-memory",
        "core/ReplaceComparisonOperator_Eq_LtE",
        "if limit <= 0:",
        "maxmemory is a byte count, never below 0: <= 0 is == 0",
    ),
    Equivalent(
        "mismatch",
        "core/ReplaceComparisonOperator_NotEq_LtE",
        'and settings.scheme <= "unix"',
        "asked only with TLS on, which a unix socket URL never has: the scheme is redis or rediss here",
    ),
    Equivalent(
        "mismatch",
        "core/NumberReplacer",
        "and await answers_plain_text(settings.host, settings.port or 6378, within=settings.connect_timeout)",
        "NOT EQUIVALENT: needs a plain Redis on the default port 6379, which no test may own",
    ),
    Equivalent(
        "mismatch", "core/ReplaceComparisonOperator_Is_Eq", "if error.cause == RedisCause.DB_OUT_OF_RANGE:", _IS_EQ_ENUM
    ),
    # URL mismatch: explain() is given a failure of connecting with settings whose scheme is validated
    Equivalent(
        "mismatch",
        "core/ReplaceBinaryOperator_Mul_Div",
        "async def answers_plain_text(host: str, port: int, /, within: float) -> bool:",
        "'*' to '/' in the signature only lets within be passed by position too; every call names it",
    ),
    Equivalent("mismatch", "core/ReplaceComparisonOperator_Is_Eq", "error.cause == RedisCause.TIMEOUT", _IS_EQ_ENUM),
    Equivalent(
        "mismatch",
        "core/ReplaceComparisonOperator_NotEq_Lt",
        'and settings.scheme < "unix"',
        "redis and rediss sort before unix: < 'unix' is != 'unix'",
    ),
    Equivalent(
        "mismatch",
        "core/NumberReplacer",
        "and await answers_plain_text(settings.host, settings.port or 6380, within=settings.connect_timeout)",
        "NOT EQUIVALENT: needs a plain Redis on the default port 6379, which no test may own",
    ),
    # shared store
    Equivalent(
        "instances",
        "core/ReplaceComparisonOperator_NotEq_IsNot",
        "while parent[i] is not i:",
        "on a root equal but not identical, one more step sets parent[i] to itself and i to that object",
    ),
    Equivalent(
        "instances",
        "core/ReplaceComparisonOperator_Lt_NotEq",
        "if len(named) != len(answered):",
        "named is a part of answered: fewer is different",
    ),
    Equivalent(
        "instances",
        "core/ReplaceComparisonOperator_Lt_NotEq",
        "theirs_groups = [g for g in groups if any(i != len(identities) for i in g)]",
        "indices run to len(identities) (ours, the last): below it is other than it",
    ),
    Equivalent(
        "instances",
        "core/ReplaceComparisonOperator_Gt_NotEq",
        "if len(theirs_groups) != 1:",
        "some instance named a store here, so there is at least one data set: other than 1 is above 1",
    ),
    Equivalent(
        "instances",
        "core/ReplaceComparisonOperator_Gt_NotEq",
        "if ours is not None and len(groups) != 1:",
        "some instance named a store here, so there is at least one data set: other than 1 is above 1",
    ),
    Equivalent(
        "instances",
        "core/ReplaceComparisonOperator_Gt_NotEq",
        "if len(servers) != 1 or replicas:",
        "some instance named a store here, so there is at least one server: other than 1 is above 1",
    ),
    Equivalent(
        "instances",
        "core/ReplaceComparisonOperator_Is_Eq",
        "ours_is_master=ours is not None and master == ours,",
        "ours, when a master, is the master chosen (it comes first); one equal to ours is a master too",
    ),
    # topology
    Equivalent(
        "topology",
        "core/ReplaceComparisonOperator_Eq_GtE",
        'read_only=_flag(read_only) if role >= "replica" else None,',
        "INFO replication's role is master or slave (read as replica), and master sorts before replica",
    ),
    Equivalent(
        "topology",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'read_only=_flag(read_only) if role <= "replica" else None,',
        "a master's INFO replication has no slave_read_only: _flag(None) is None for it too",
    ),
    Equivalent(
        "topology",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'if role <= "replica" and replication.get("master_host"):',
        _MASTER_HOST,
    ),
    Equivalent(
        "topology",
        "core/ReplaceComparisonOperator_Eq_GtE",
        'if role >= "replica" and replication.get("master_host"):',
        _MASTER_HOST,
    ),
    Equivalent(
        "topology", "core/ReplaceAndWithOr", 'if role == "replica" or replication.get("master_host"):', _MASTER_HOST
    ),
    Equivalent(
        "topology",
        "core/ReplaceBinaryOperator_Mul_Div",
        "def cause(self, /, cluster_url: bool) -> RedisCause | None:",
        "'*' to '/' in the signature only lets cluster_url be passed by position too; every call names it",
    ),
    Equivalent(
        "topology",
        "core/ReplaceComparisonOperator_Eq_LtE",
        'replicas=_int(replication.get("connected_slaves")) if role <= "master" else None,',
        "INFO replication's role is master or slave (read as replica), and replica sorts after master",
    ),
    # certificate
    Equivalent(
        "certificate",
        "core/ReplaceBinaryOperator_Mul_Div",
        "/,",
        "'*' to '/' in the signature only lets verify_code and the rest be passed by position; every call names them",
    ),
    # error classification
    Equivalent(
        "classify",
        "core/ReplaceComparisonOperator_Lt_NotEq",
        "while current is not None and current not in seen and len(seen) != 10:",
        "len(seen) grows by one from 0, so it reaches 10 exactly where < 10 stops",
    ),
    Equivalent(
        "classify",
        "core/ReplaceComparisonOperator_Is_Eq",
        "if tls == False and cause in (RedisCause.CONNECTION_LOST, RedisCause.TIMEOUT) and _dropped_early(exc):",
        "tls is a bool or None: == False and is False agree on all three",
    ),
    Equivalent(
        "classify",
        "core/ReplaceComparisonOperator_Is_Eq",
        "advice = _POOL_FULL if cause == RedisCause.MAX_CONNECTIONS and _client_pool_full(exc) else remedy(cause)",
        _IS_EQ_ENUM,
    ),
    Equivalent(
        "classify",
        "core/ReplaceComparisonOperator_Eq_GtE",
        "if isinstance(link, PermissionError) and link.errno >= errno.EACCES:  # EPERM is a local firewall",
        "a PermissionError carries EACCES (13) or EPERM (1), and only EACCES is >= EACCES",
    ),
    Equivalent(
        "classify",
        "core/ReplaceComparisonOperator_Eq_Is",
        "if isinstance(link, PermissionError) and link.errno is errno.EACCES:  # EPERM is a local firewall",
        "errno values are small ints, of which CPython keeps one object each: is agrees with ==",
    ),
    # session model: from_dict's fast path and its checked path build the same session
    Equivalent(
        "session-model",
        "core/ReplaceComparisonOperator_IsNot_NotEq",
        "type(expires_at) != int",
        "for a type, != int is is not int",
    ),
    Equivalent(
        "session-model",
        "core/ReplaceComparisonOperator_IsNot_NotEq",
        "or type(created_at) != int",
        "for a type, != int is is not int",
    ),
    Equivalent(
        "session-model",
        "core/ReplaceComparisonOperator_IsNot_NotEq",
        "or type(started_at) != int",
        "for a type, != int is is not int",
    ),
    Equivalent(
        "session-model",
        "core/ReplaceComparisonOperator_IsNot_NotEq",
        "or type(status) != str",
        "for a type, != str is is not str",
    ),
    Equivalent(
        "session-model",
        "core/ReplaceComparisonOperator_LtE_Eq",
        "extra = {} if data.keys() == _KNOWN else {k: v for k, v in data.items() if k not in _KNOWN}",
        "the comprehension gives {} too when every key is known: only the shortcut is lost",
    ),
    Equivalent(
        "session-model",
        "core/ReplaceComparisonOperator_LtE_Is",
        "extra = {} if data.keys() is _KNOWN else {k: v for k, v in data.items() if k not in _KNOWN}",
        "the comprehension gives {} too when every key is known: only the shortcut is lost",
    ),
    Equivalent(
        "session-model",
        "core/ReplaceComparisonOperator_LtE_Lt",
        "extra = {} if data.keys() < _KNOWN else {k: v for k, v in data.items() if k not in _KNOWN}",
        "the comprehension gives {} too when every key is known: only the shortcut is lost",
    ),
)


# -- scope -------------------------------------------------------------------------------------


def _defines(stmt: ast.stmt, name: str) -> bool:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return stmt.name == name
    if isinstance(stmt, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets)
    return isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name


def _named(tree: ast.Module, qualname: str) -> ast.AST:
    body: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for name in qualname.split("."):
        node = next((stmt for stmt in body if _defines(stmt, name)), None)
        if node is None:
            raise SystemExit(f"mutation: no {qualname!r} to mutate (renamed? update TARGETS in {Path(__file__).name})")
        body = getattr(node, "body", [])
    assert node is not None
    return node


def line_ranges(target: Target, root: Path = REPO) -> list[tuple[int, int]]:
    """The (first, last) line numbers of ``target``'s parts. A mutant is in scope when it starts
    on one of them, so a part's decorators are left out (removing ``@staticmethod`` or
    ``@property`` changes how a thing is called, which mypy --strict checks, not what it answers)."""
    source = (root / target.path).read_text()
    if not target.parts:
        return [(1, len(source.splitlines()))]
    tree = ast.parse(source)
    lines = source.splitlines()
    out = []
    for part in target.parts:
        node = _named(tree, part.name)
        first, last = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
        if part.start:
            found = [n for n in range(first, last + 1) if part.start in lines[n - 1]]
            if not found:
                raise SystemExit(f"mutation: no line holding {part.start!r} in {part.name} ({target.path})")
            first = found[0]
        if part.end:
            found = [n for n in range(first, last + 1) if part.end in lines[n - 1]]
            if not found:
                raise SystemExit(f"mutation: no line holding {part.end!r} in {part.name} ({target.path})")
            last = found[0]
        out.append((first, last))
    return sorted(out)


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the annotations are, as ((line, column), (end line, end column)) in characters,
    when the module has ``from __future__ import annotations``: then an annotation is a string
    no code evaluates, and a mutant inside one (``str | None`` to ``str + None``) is
    equivalent by construction. Such mutants are left out before the run."""
    tree = ast.parse(source)
    future = any(
        isinstance(s, ast.ImportFrom) and s.module == "__future__" and any(a.name == "annotations" for a in s.names)
        for s in tree.body
    )
    if not future:
        return []
    lines = source.splitlines()

    def column(line: int, byte: int) -> int:
        return len(lines[line - 1].encode()[:byte].decode(errors="ignore"))

    spans = []
    for node in ast.walk(tree):
        found: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            found = [node.annotation]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found = [node.returns]
        elif isinstance(node, ast.AnnAssign):
            found = [node.annotation]
        for a in found:
            if a is not None and a.end_lineno is not None and a.end_col_offset is not None:
                spans.append(
                    ((a.lineno, column(a.lineno, a.col_offset)), (a.end_lineno, column(a.end_lineno, a.end_col_offset)))
                )
    return spans


# -- the fork server and its client --------------------------------------------------------------

#: Imported once by the server so that each forked pytest starts warm; never ``labsession``.
_PRELOAD = (
    "pytest",
    "_pytest.pytester",
    "pytest_asyncio",
    "pytest_timeout",
    "hypothesis",
    "_hypothesis_pytestplugin",
    "anyio.pytest_plugin",
    "platformdirs.pytest_plugin",
    "nbval.plugin",
    "redis",
    "redis.asyncio",
    "redis.asyncio.cluster",
    "hiredis",
    "orjson",
    "starlette.applications",
    "starlette.testclient",
    "httpx",
    "websockets",
    "websockets.asyncio.client",
    "uvicorn",
    "cryptography.x509",
    "nbformat",
    "papermill",
    "anyio",
    "asyncio",
    "ssl",
    "urllib.parse",
    "email",
    "json",
)


def _serve(sock_path: str, root: str) -> None:
    """Fork one pytest per request from a process that has imported everything but labsession."""
    import importlib

    here = Path(root).resolve()
    # The editable install puts the work tree on sys.path: the copy must win, the tree never load.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO]
    sys.path.insert(0, str(here))
    os.chdir(here)
    sys.dont_write_bytecode = True  # the mutated module is compiled from its source every time
    for name in _PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import hypothesis
    import pytest

    # Hypothesis: the same examples every run (a kill is reproducible) and no deadline (a mutant
    # is killed by a wrong answer, not by a slow moment on a loaded machine).
    hypothesis.settings.register_profile("mutation", deadline=None, derandomize=True, database=None)
    hypothesis.settings.load_profile("mutation")
    leaked = sorted(m for m in sys.modules if m.split(".")[0] == "labsession")
    if leaked:
        raise SystemExit(f"mutation server imported {leaked}: the mutants would not be seen")
    import gc

    gc.freeze()  # what is imported here is never collected: each child's gc passes skip it

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            request = json.loads(conn.makefile("r").readline())
            code = _run_child(pytest.main, request["args"], request["output"], float(request["timeout"]))
            conn.sendall((json.dumps({"code": code}) + "\n").encode())


def _run_child(main: object, args: list[str], output: str, timeout: float) -> int | str:
    pid = os.fork()
    if pid == 0:  # the child: one pytest session, in its own process group with whatever it starts
        code = 3
        try:
            os.setsid()
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            code = int(main(args))  # type: ignore[operator]
        except BaseException:  # anything: report it and leave with a failure code
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    status: int | str
    while True:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
            break
        if time.monotonic() > deadline:
            status = "timeout"
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(0.005)
    # Anything the session started and left behind (a redis-server of a killed test).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return status


def _ask(sock_path: str, args: list[str], output: str, timeout: float) -> int | str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(sock_path)
        conn.sendall((json.dumps({"args": args, "output": output, "timeout": timeout}) + "\n").encode())
        reply: int | str = json.loads(conn.makefile("r").readline())["code"]
        return reply


def _client(argv: list[str]) -> int:
    """cosmic-ray's test command: run the tests in the server; exit 0 only if they all passed."""
    sock_path, timeout, output, *args = argv
    code = _ask(sock_path, args, output, float(timeout))
    text = Path(output).read_text(errors="replace") if Path(output).exists() else ""
    sys.stdout.write(text[-3000:] + f"\n[pytest exit: {code}]\n")
    return 0 if code == 0 else 1


# -- one session -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    target: Target
    mutants: int = 0
    killed: int = 0
    survived: list[tuple[str, int, str, str]] = field(default_factory=list)  # (operator, line, mutant, diff)
    equivalent: list[Equivalent] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    problem: str = ""


def _copy(into: Path) -> None:
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, into / name)


def _mutated_lines(diff: str) -> str:
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(a for a in added if a)  # (the last line of a file shows up with an empty twin)


def run_target(target: Target, *, quiet: bool = False) -> Outcome:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    outcome = Outcome(target)
    started = time.monotonic()
    home = WORK / target.name
    src = home / "src"
    _copy(src)
    import compileall

    compileall.compile_dir(str(src / "labsession"), quiet=1)
    for pyc in (src / Path(target.path).parent / "__pycache__").glob(f"{Path(target.path).stem}.*.pyc"):
        pyc.unlink()
    sock = str(home / "server.sock")
    Path(sock).unlink(missing_ok=True)  # left by a run that was stopped
    log = home / "server.log"
    server = subprocess.Popen(
        [sys.executable, __file__, "_serve", sock, str(src)],
        cwd=src,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            server.wait(10)
            outcome.problem = f"the fork server did not start: see {log}"
            return outcome
        args = [*target.tests, *PYTEST_ARGS]
        # The unmutated tests must pass, in the copy, through the server: else every kill is a lie.
        t0 = time.monotonic()
        baseline = _ask(sock, args, str(home / "baseline.txt"), 600)
        took = time.monotonic() - t0
        if baseline != 0:
            outcome.problem = f"the tests fail without any mutation (exit {baseline}): see {home / 'baseline.txt'}"
            return outcome
        timeout = round(10 + 5 * took, 1)
        ranges = line_ranges(target, src)
        annotations = annotation_spans((src / target.path).read_text())
        config = home / "session.toml"
        command = " ".join([sys.executable, __file__, "_client", sock, str(timeout), str(home / "mutant.txt"), *args])
        config.write_text(
            "[cosmic-ray]\n"
            f'module-path = "{target.path}"\n'
            f"timeout = {timeout + 30}\n"
            "excluded-modules = []\n"
            f"test-command = {json.dumps(command)}\n\n"
            '[cosmic-ray.distributor]\nname = "local"\n'
        )
        db = home / "session.sqlite"
        db.unlink(missing_ok=True)
        cosmic = [sys.executable, "-m", "cosmic_ray.cli"]
        subprocess.run([*cosmic, "init", str(config), str(db)], cwd=src, check=True)
        with use_db(str(db), WorkDB.Mode.open) as work_db:
            outside = [
                item.job_id
                for item in work_db.pending_work_items
                if not any(first <= m.start_pos[0] <= last for m in item.mutations for first, last in ranges)
            ]
            if outside:
                work_db.set_multiple_results(
                    outside, WorkResult(output="outside the target's parts", worker_outcome=WorkerOutcome.SKIPPED)
                )
            typing = [
                item.job_id
                for item in work_db.pending_work_items
                if all(
                    any(a <= tuple(m.start_pos) and tuple(m.end_pos) <= b for a, b in annotations)
                    for m in item.mutations
                )
            ]
            if typing:
                work_db.set_multiple_results(
                    typing, WorkResult(output="inside an annotation", worker_outcome=WorkerOutcome.SKIPPED)
                )
            pending = work_db.num_work_items - work_db.num_results
        if not quiet:
            print(
                f"[mutation] {target.name}: {pending} mutants in {target.path} "
                f"(lines {', '.join(f'{a}-{b}' for a, b in ranges)}; {len(typing)} in annotations left out), "
                f"tests take {took:.1f} s",
                flush=True,
            )
        subprocess.run([*cosmic, "exec", str(config), str(db)], cwd=src, check=True)
        with use_db(str(db), WorkDB.Mode.open) as work_db:
            for item, result in work_db.completed_work_items:
                if result.worker_outcome is WorkerOutcome.SKIPPED:
                    continue
                outcome.mutants += 1
                if result.worker_outcome is not WorkerOutcome.NORMAL:
                    outcome.errors += 1
                    continue
                if result.test_outcome is TestOutcome.KILLED:
                    outcome.killed += 1
                    continue
                if result.test_outcome is TestOutcome.INCOMPETENT:
                    outcome.errors += 1
                    continue
                operator = item.mutations[0].operator_name
                mutant = _mutated_lines(result.diff or "")
                known = next(
                    (
                        e
                        for e in EQUIVALENT
                        if e.target == target.name and e.operator == operator and e.mutant == mutant
                    ),
                    None,
                )
                if known:
                    outcome.equivalent.append(known)
                else:
                    line = item.mutations[0].start_pos[0]
                    outcome.survived.append((operator, line, mutant, result.diff or ""))
        outcome.survived.sort(key=lambda s: s[1])
        (home / "survivors.txt").write_text(
            "".join(f"{target.path}:{line} {operator}\n{diff}\n" for operator, line, _, diff in outcome.survived)
        )
    finally:
        server.terminate()
        server.wait(10)
        Path(sock).unlink(missing_ok=True)
        outcome.seconds = time.monotonic() - started
    return outcome


def _run_safely(target: Target) -> Outcome:
    try:
        return run_target(target)
    except Exception as exc:  # one broken session must not lose the others' results
        return Outcome(target, problem=f"{type(exc).__name__}: {exc}")


# -- the command ---------------------------------------------------------------------------------


def _table(outcomes: list[Outcome]) -> str:
    rows = [("target", "file", "mutants", "killed", "survived", "equivalent", "time")]
    for o in outcomes:
        rows.append(
            (
                o.target.name,
                o.target.path,
                str(o.mutants),
                str(o.killed),
                str(len(o.survived)),
                str(len(o.equivalent)),
                f"{o.seconds:.0f} s",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["_serve"]:
        _serve(argv[1], argv[2])
        return 0
    if argv[:1] == ["_client"]:
        return _client(argv[1:])
    parser = argparse.ArgumentParser(prog="tasks.py mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="targets to run (default: all)")
    parser.add_argument("--list", action="store_true", help="show the targets, their lines and tests")
    parser.add_argument("--jobs", type=int, default=1, help="targets run at once (default 1)")
    options = parser.parse_args(argv)
    names = {t.name: t for t in TARGETS}
    unknown = [n for n in options.targets if n not in names]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; choose from {sorted(names)}")
    chosen = [names[n] for n in options.targets] or list(TARGETS)
    if options.list:
        for t in chosen:
            spans = ", ".join(f"{a}-{b}" for a, b in line_ranges(t))
            print(f"{t.name}: {t.path} lines {spans}\n    tests: {' '.join(t.tests)}\n    costly: {t.why}")
        return 0
    WORK.mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        outcomes = list(pool.map(_run_safely, chosen))
    status = 0
    for o in outcomes:
        if o.problem:
            print(f"\n[mutation] {o.target.name}: {o.problem}")
            status = 1
        for operator, line, mutant, _ in o.survived:
            print(f"[mutation] {o.target.name}: SURVIVED {o.target.path}:{line} {operator}: {mutant}")
            status = 1
        if o.survived:
            print(f"[mutation] {o.target.name}: the diffs are in {WORK / o.target.name / 'survivors.txt'}")
        if o.errors:
            print(f"\n[mutation] {o.target.name}: {o.errors} mutant(s) could not be tested (see .mutation/)")
            status = 1
    ran = {o.target.name for o in outcomes}
    seen = {(o.target.name, e) for o in outcomes for e in o.equivalent}
    for e in EQUIVALENT:
        if e.target in ran and (e.target, e) not in seen:
            print(f"\n[mutation] stale EQUIVALENT entry (no such survivor now): {e}")
            status = 1
    table = _table(outcomes)
    (WORK / "table.md").write_text(table + "\n")
    print("\n" + table)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
