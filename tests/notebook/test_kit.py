"""labsession.notebook: parameter validation, target resolution, budget, attempts, display bundles."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from labsession import ConfigError, EmbeddedRedis, Status
from labsession.checks import REPORT_MIME, CheckFailed
from labsession.embedded.redis_server import free_port
from labsession.embedded.target import EMBEDDED_BACKENDS_ENV, EMBEDDED_REDIS_URL_ENV
from labsession.notebook import (
    COMMON_PARAMS,
    Budget,
    Param,
    resolve_target,
    start,
    validate_parameters,
)
from labsession.runner.registry import DEFAULT_NOTEBOOKS, HealthNotebook, register, registry

from support import CANARY

BASE: dict[str, Any] = {
    "redis_url_env": "REDIS_URL",
    "embedded": False,
    "backend_urls": [],
    "read_only": True,
    "key_prefix": "session:",
    "timeout_seconds": 2,
    "budget_seconds": 30,
}


@pytest.mark.parametrize(
    "change, named",
    [
        ({"embedded": "yes"}, "embedded"),
        ({"timeout_seconds": "5"}, "timeout_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"read_only": 1}, "read_only"),
        ({"backend_urls": "http://a:1"}, "backend_urls"),
        ({"backend_urls": ["ftp://a"]}, "backend_urls"),
        ({"colour": "blue"}, "colour"),
        ({"key_prefix": ""}, "key_prefix"),
    ],
)
def test_bad_parameters_stop_with_the_parameter_named(change: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_parameters({**BASE, **change}, COMMON_PARAMS)
    assert named in str(caught.value)


def test_a_url_in_redis_url_env_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_parameters({**BASE, "redis_url_env": f"redis://:{CANARY}@h:6379"}, COMMON_PARAMS)
    assert CANARY not in str(caught.value) and "environment variable" in str(caught.value)


def test_credentials_in_a_backend_url_are_refused() -> None:
    with pytest.raises(ConfigError, match="credentials"):
        validate_parameters({**BASE, "backend_urls": [f"http://u:{CANARY}@h:1"]}, COMMON_PARAMS)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://u:Zq#s3cret-1@h:1",
        "http://u:Zq#s3cret-2@h:1",
        "http://[Zq#s3cret-3",
        "http://h:Zqs3cret-4",
        "localhost:Zqs3cret-5",
        "http://:Zq@s3cret#6@h:1",
    ],
)
def test_a_bad_backend_url_is_refused_without_quoting_any_of_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_parameters({**BASE, "backend_urls": ["http://127.0.0.1:1", url]}, COMMON_PARAMS)
    assert "backend_urls" in str(caught.value)
    assert "s3cret" not in str(caught.value) and "Zq" not in str(caught.value), str(caught.value)


def test_numbers_are_normalized_and_choices_enforced() -> None:
    spec = {**COMMON_PARAMS, "mode": Param(str, "a mode", choices=("fast", "full"))}
    out = validate_parameters({**BASE, "mode": "fast"}, spec)
    assert out["timeout_seconds"] == 2.0 and isinstance(out["timeout_seconds"], float)
    with pytest.raises(ConfigError, match="one of"):
        validate_parameters({**BASE, "mode": "slow"}, spec)


def test_a_real_target_without_its_variable_is_an_error_never_embedded() -> None:
    with pytest.raises(ConfigError, match="MY_REDIS"):
        resolve_target({**BASE, "redis_url_env": "MY_REDIS"}, env={})


def test_embedded_uses_the_runner_target_from_the_environment() -> None:
    env = {
        EMBEDDED_REDIS_URL_ENV: "redis://127.0.0.1:6399/0",
        EMBEDDED_BACKENDS_ENV: "http://127.0.0.1:1 http://127.0.0.1:2",
    }
    target = resolve_target({**BASE, "embedded": True}, env=env)
    assert target.embedded and target.writes_allowed
    assert target.backend_urls == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert "provided by the runner" in target.describe()
    real = resolve_target({**BASE, "redis_url_env": "R"}, env={"R": "redis://127.0.0.1:6399/0"})
    assert not real.writes_allowed and "read_only=True" in real.write_refusal
    assert resolve_target(
        {**BASE, "redis_url_env": "R", "read_only": False}, env={"R": "redis://127.0.0.1:6399/0"}
    ).writes_allowed


def test_budget_caps_timeouts() -> None:
    budget = Budget(0.5)
    assert budget.cap(10) <= 0.5
    assert Budget(0).spent


async def test_attempt_turns_failures_into_fail_and_error(embedded_redis: EmbeddedRedis) -> None:
    env = {"R": embedded_redis.url}
    run = await start("t", {**BASE, "redis_url_env": "R"}, env=env, show=False)

    async def broken() -> None:
        raise ZeroDivisionError("probe bug")

    assert await run.attempt("slow", lambda: asyncio.sleep(5), timeout=0.05) is None
    assert await run.attempt("bug", broken) is None
    assert await run.attempt("fine", lambda: asyncio.sleep(0, "ok")) == "ok"
    statuses = {c.name: c.status for c in run.report}
    assert statuses == {"slow": Status.FAIL, "bug": Status.ERROR}
    assert await run.redis() is not None
    with pytest.raises(CheckFailed):
        await run.finish()


async def test_unreachable_redis_is_a_fail_with_the_cause() -> None:
    env = {"R": f"redis://:{CANARY}@127.0.0.1:{free_port()}/0"}
    run = await start("t", {**BASE, "redis_url_env": "R"}, env=env, show=False)
    assert await run.redis("connect") is None
    check = run.report.checks[-1]
    assert check.status is Status.FAIL and check.data["cause"] == "CONNECTION_REFUSED"
    assert CANARY not in run.report.to_json()
    report = await run.finish(raise_on_failure=False)
    assert report.verdict is Status.FAIL


def test_report_text_fallback_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    from labsession.checks import Report
    from labsession.masking import register_secret
    from labsession.notebook import show_report

    register_secret(CANARY)
    report = Report("r")
    report.check("a", Status.WARN, f"evidence with {CANARY}")
    show_report(report)  # outside a kernel: prints the text fallback
    out = capsys.readouterr().out
    assert "WARN" in out and "****" in out and CANARY not in out
    assert report.to_dict()["verdict"] == "WARN" and REPORT_MIME.endswith("+json")


def test_a_timing_only_warn_is_marked_on_its_line_and_leaves_the_verdict_alone() -> None:
    from labsession.checks import TIMING_MARK, CheckResult, Report

    slow = CheckResult("ping latency", Status.WARN, "30 PINGs: p99 61.00 ms", timing="p99 above 50 ms")
    assert slow.evidence == f"30 PINGs: p99 61.00 ms {TIMING_MARK}p99 above 50 ms]"
    assert slow.to_dict()["timing"] == "p99 above 50 ms"
    report = Report("r", [CheckResult("a", Status.PASS, "fine"), CheckResult("b", Status.SKIP, "not here"), slow])
    # Shown and counted as the WARN it is, on its own line, but the verdict is every other check's.
    assert report.verdict is Status.PASS and report.counts()["WARN"] == 1
    assert report.table().splitlines()[-2:] == [
        f"WARN   ping latency  30 PINGs: p99 61.00 ms {TIMING_MARK}p99 above 50 ms]",
        "verdict: PASS",
    ]
    # Any other WARN (or worse) still decides the verdict.
    report.check("eviction policy", Status.WARN, "allkeys-lru may evict sessions")
    assert report.verdict is Status.WARN
    report.check("tcp", Status.FAIL, "refused")
    assert report.verdict is Status.FAIL
    # Only a WARN can be timing-only: a FAIL or PASS about time is a plain FAIL or PASS.
    for status in (Status.PASS, Status.SKIP, Status.FAIL, Status.ERROR):
        with pytest.raises(ValueError, match="timing"):
            CheckResult("x", status, "y", timing="too slow")


def test_registry_holds_the_notebooks_and_accepts_more() -> None:
    names = [n.name for n in registry()]
    assert names[:4] == [n.name for n in DEFAULT_NOTEBOOKS]
    assert all(n.file.exists() for n in DEFAULT_NOTEBOOKS)
    from labsession.runner import registry as health_registry

    try:
        register(HealthNotebook("extra_check", "notebooks/01_connection_check.ipynb", {"ping_samples": 3}))
        assert registry()[-1].name == "extra_check"
    finally:
        health_registry._extra.clear()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_never_pass_a_bounded_number(value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_parameters({**BASE, "timeout_seconds": value}, COMMON_PARAMS)
    assert "timeout_seconds" in str(caught.value) and "finite" in str(caught.value)
