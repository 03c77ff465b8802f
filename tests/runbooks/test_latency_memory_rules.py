"""The latency-and-memory runbook's rules on facts already measured: PING samples, slow log and
latency events, INFO figures and a key sample, each judged against :class:`Limits` at its
boundaries (tests/runbooks/test_redis_latency_memory.py stages every cause on a real server).
Times are ms (slow log µs, clocks seconds since the epoch), sizes bytes."""

from __future__ import annotations

import pytest

from labsession.checks import Status
from labsession.probes.admin_reads import AdminRead, LatencyEvent, SlowEntry
from labsession.probes.connection import LatencySamples
from labsession.probes.key_sample import BigKey, KeySample
from labsession.probes.server_info import CommandStat, ServerInfo
from labsession.runbooks.latency_memory_rules import (
    MIB,
    LatencyMemoryCause,
    Limits,
    judge_big_keys,
    judge_commandstats,
    judge_eviction_step,
    judge_fragmentation,
    judge_latency_events,
    judge_memory,
    judge_ping,
    judge_slowlog,
    judge_ttls,
    size,
)

C = LatencyMemoryCause
LIMITS = Limits()
NOW = 1_764_000_000  # seconds since the epoch
HOUR_AGO = NOW - 3600  # the edge of the 60 min lookback


def test_the_default_limits() -> None:
    assert (
        Limits(
            latency_ms=100.0,
            slow_command_ms=50.0,
            lookback_minutes=60.0,
            memory_percent=90.0,
            fragmentation_ratio=1.5,
            fragmentation_bytes=100 * 1024 * 1024,
            max_keys_without_ttl=1000,
            big_key_bytes=1024 * 1024,
        )
        == LIMITS
    )


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (None, "hidden"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (-2048, "-2.0 KiB"),
        (MIB - 1, "1024.0 KiB"),
        (MIB, "1.0 MiB"),
        (1024 * MIB, "1.0 GiB"),
        (5 * 1024 * 1024 * MIB, "5120.0 GiB"),
    ],
)
def test_sizes_are_shown_in_binary_units(count: int | None, shown: str) -> None:
    assert size(count) == shown


# -- ping samples -------------------------------------------------------------------------------------


def test_no_ping_answered_is_the_store_unreachable() -> None:
    check, cause = judge_ping(LatencySamples("PING", (), errors=3), LIMITS)
    assert (check.name, check.status, cause) == ("ping samples", Status.FAIL, C.STORE_UNREACHABLE)
    assert check.evidence == "no PING answered (3 failed)"


@pytest.mark.parametrize(
    ("samples", "errors", "status", "cause", "timing"),
    [
        ((1.0, 101.0, 101.0), 0, Status.FAIL, C.HIGH_LATENCY, ""),  # the median above 100 ms
        ((100.0, 100.0, 100.0), 0, Status.PASS, None, ""),  # at the limit is not above it
        ((1.0, 1.0, 101.0), 0, Status.WARN, None, "p99 above 100 ms"),  # only the tail: a timing-only WARN
        ((1.0, 1.0, 101.0), 2, Status.WARN, None, ""),  # failed PINGs say more than the tail
        ((1.0, 2.0, 3.0), 1, Status.WARN, None, ""),
    ],
)
def test_the_median_ping_decides_and_a_slow_tail_or_failures_only_warn(
    samples: tuple[float, ...], errors: int, status: Status, cause: C | None, timing: str
) -> None:
    check, found = judge_ping(LatencySamples("PING", samples, errors=errors), LIMITS)
    assert (check.status, found, check.timing) == (status, cause, timing), check
    assert check.data == {"samples_ms": list(samples), "errors": errors, "limit_ms": 100.0}
    if errors:
        assert check.evidence.endswith(f"; {errors} PINGs failed")


def test_the_ping_evidence_names_median_tail_and_worst() -> None:
    check, _ = judge_ping(LatencySamples("PING", (1.0, 101.0, 102.0)), LIMITS)
    assert check.evidence == (
        "3 PINGs: p50 101.00 ms, p99 102.00 ms, max 102.00 ms (limit 100 ms): the median PING is above the limit"
    )


# -- slow log and latency events ----------------------------------------------------------------------


def test_a_slow_log_not_asked_or_refused_is_a_skip() -> None:
    assert judge_slowlog(None, NOW, LIMITS) == judge_slowlog(None, NOW, LIMITS, why_not="not asked")
    check, cause = judge_slowlog(None, NOW, LIMITS, why_not="read-only run")
    assert (check.status, check.evidence, cause) == (Status.SKIP, "read-only run", None)
    check, cause = judge_slowlog(AdminRead("SLOWLOG GET", refused="NOPERM"), NOW, LIMITS)
    assert (check.status, cause) == (Status.SKIP, None) and "(NOPERM)" in check.evidence
    assert judge_slowlog(AdminRead("SLOWLOG GET"), NOW, LIMITS)[0].status is Status.SKIP


def test_only_recent_commands_of_the_slow_limit_or_longer_are_slow() -> None:
    entries = (
        SlowEntry(NOW - 10, 80_000, "KEYS"),
        SlowEntry(HOUR_AGO, 50_000, "KEYS"),  # at both edges: counted
        SlowEntry(NOW - 5, 49_999, "GET"),  # just under the limit
        SlowEntry(HOUR_AGO - 1, 900_000, "EVAL"),  # history
    )
    check, cause = judge_slowlog(AdminRead("SLOWLOG GET", entries), NOW, LIMITS)
    assert (check.status, cause) == (Status.FAIL, C.SLOW_COMMANDS)
    assert check.evidence == "2 commands ran 50 ms or longer in the last 60 min: KEYS ×2 (up to 80 ms)"
    assert check.data == {"slow": [{"command": "KEYS", "count": 2, "max_ms": 80.0}]}
    check, cause = judge_slowlog(AdminRead("SLOWLOG GET", entries[2:]), NOW, LIMITS)
    assert (check.status, cause) == (Status.PASS, None)
    assert check.evidence == "no command in the slow log ran 50 ms or longer in the last 60 min"
    assert check.data == {"entries": 2}


def test_latency_events_not_asked_refused_or_none_recorded() -> None:
    check, cause = judge_latency_events(None, NOW, LIMITS, why_not="read-only run")
    assert (check.status, check.evidence, cause) == (Status.SKIP, "read-only run", None)
    assert judge_latency_events(None, NOW, LIMITS)[0].evidence == "not asked"
    check, cause = judge_latency_events(AdminRead("LATENCY LATEST", refused="unknown command"), NOW, LIMITS)
    assert (check.status, cause) == (Status.SKIP, None) and "(unknown command)" in check.evidence
    assert judge_latency_events(AdminRead("LATENCY LATEST"), NOW, LIMITS)[0].status is Status.SKIP
    check, cause = judge_latency_events(AdminRead("LATENCY LATEST", ()), NOW, LIMITS)
    assert (check.status, cause) == (Status.PASS, None) and check.evidence.startswith("no latency event recorded")


def test_only_recent_stalls_of_the_latency_limit_or_longer_are_high_latency() -> None:
    events = (
        LatencyEvent("command", HOUR_AGO, 100, 250),  # at both edges: counted
        LatencyEvent("fork", NOW - 5, 99, 99),
        LatencyEvent("expire-cycle", HOUR_AGO - 1, 900, 900),
    )
    check, cause = judge_latency_events(AdminRead("LATENCY LATEST", events), NOW, LIMITS)
    assert (check.status, cause) == (Status.FAIL, C.HIGH_LATENCY)
    assert check.evidence == (
        "the server recorded stalls of 100 ms or more in the last 60 min: command 100 ms (worst 250 ms)"
    )
    assert len(check.data["events"]) == 3
    check, cause = judge_latency_events(AdminRead("LATENCY LATEST", events[1:]), NOW, LIMITS)
    assert (check.status, cause) == (Status.PASS, None)
    assert check.evidence == "no latency event of 100 ms or more in the last 60 min"


# -- INFO figures ---------------------------------------------------------------------------------------


def test_command_statistics_hidden_or_empty() -> None:
    check, cause = judge_commandstats(ServerInfo(unknown={"INFO commandstats": "hidden"}), LIMITS)
    assert (check.status, cause) == (Status.SKIP, None)
    check, cause = judge_commandstats(ServerInfo(), LIMITS)
    assert (check.status, check.evidence, cause) == (Status.PASS, "no command counted yet", None)


def test_a_command_averaging_the_slow_limit_is_slow() -> None:
    stats = (
        CommandStat("keys", 3, 150_000, 50_000.0),
        CommandStat("get", 1000, 49_999, 49_999.9),
        CommandStat("set", 10, 1, 0.1, failed_calls=2, rejected_calls=1),
    )
    check, cause = judge_commandstats(ServerInfo(commands=stats), LIMITS)
    assert (check.status, cause) == (Status.FAIL, C.SLOW_COMMANDS)
    assert check.evidence == "1 commands average 50 ms or more per call: keys 50 ms per call over 3 calls"
    assert check.data["top"][0] == {
        "command": "keys",
        "calls": 3,
        "ms_per_call": 50.0,
        "share_of_time": "75%",
        "failed": 0,
        "rejected": 0,
    }
    assert check.data["top"][2]["failed"] == 2 and check.data["top"][2]["rejected"] == 1
    check, cause = judge_commandstats(ServerInfo(commands=stats[1:]), LIMITS)
    assert (check.status, cause) == (Status.PASS, None)
    assert check.evidence == "no command averages 50 ms or more per call"


def test_the_command_table_shows_ten_and_shares_of_no_time_do_not_divide_by_zero() -> None:
    stats = tuple(CommandStat(f"c{i}", 1, 0, 0.0) for i in range(11))
    check, _ = judge_commandstats(ServerInfo(commands=stats), LIMITS)
    assert len(check.data["top"]) == 10 and check.data["top"][0]["share_of_time"] == "0%"


@pytest.mark.parametrize(
    ("info", "status", "evidence"),
    [
        (ServerInfo(), Status.SKIP, "the provider hides used_memory (INFO memory)"),
        (ServerInfo(used_memory=2048), Status.SKIP, "used 2.0 KiB; the provider hides maxmemory"),
        (
            ServerInfo(used_memory=2048, maxmemory=0),
            Status.PASS,
            "used 2.0 KiB, no maxmemory limit (Redis grows until the host runs out)",
        ),
        (ServerInfo(used_memory=899, maxmemory=1000), Status.PASS, "used 899 B of 1000 B maxmemory (90%), under 90%"),
        (
            ServerInfo(used_memory=900, maxmemory=1000, maxmemory_policy="allkeys-lru"),
            Status.FAIL,
            "used 900 B of 1000 B maxmemory (90%), at or above 90%",
        ),
        (
            ServerInfo(used_memory=1000, maxmemory=1000, maxmemory_policy="noeviction"),
            Status.FAIL,
            "used 1000 B of 1000 B maxmemory (100%), at or above 90%; with noeviction, writes are refused "
            "when it is full",
        ),
    ],
)
def test_memory_at_or_above_the_share_of_maxmemory_is_near_the_limit(
    info: ServerInfo, status: Status, evidence: str
) -> None:
    check, cause = judge_memory(info, LIMITS)
    assert (check.status, check.evidence) == (status, evidence)
    assert cause is (C.MEMORY_NEAR_LIMIT if status is Status.FAIL else None)


def test_memory_percent_is_of_maxmemory() -> None:
    check, _ = judge_memory(ServerInfo(used_memory=450, maxmemory=1000), Limits(memory_percent=45.0))
    assert check.status is Status.FAIL and "(45%)" in check.evidence


def test_eviction_is_a_cause_only_when_sessions_may_be_lost_and_shows_the_worse_half() -> None:
    check, cause = judge_eviction_step(ServerInfo(maxmemory=10, maxmemory_policy="allkeys-lru", evicted_keys=5))
    assert (check.status, cause) == (Status.FAIL, C.EVICTING_KEYS)
    assert check.data["policy"] == "allkeys-lru" and check.data["evicted_keys"] == 5  # a count, not a secret
    # a risky policy, nothing evicted: the policy is the worse half
    check, cause = judge_eviction_step(ServerInfo(maxmemory=10, maxmemory_policy="allkeys-lru", evicted_keys=0))
    assert (check.status, cause) == (Status.WARN, None) and "can evict session keys" in check.evidence
    # noeviction, keys evicted earlier: the evictions are the worse half
    check, cause = judge_eviction_step(ServerInfo(maxmemory=10, maxmemory_policy="noeviction", evicted_keys=5))
    assert (check.status, cause) == (Status.WARN, None) and "maxmemory-policy noeviction" not in check.evidence
    # both fine: the policy is shown
    check, cause = judge_eviction_step(ServerInfo(maxmemory=10, maxmemory_policy="noeviction", evicted_keys=0))
    assert (check.status, cause) == (Status.PASS, None) and check.evidence.startswith("maxmemory-policy noeviction")


@pytest.mark.parametrize(
    ("ratio", "wasted", "fragmented"),
    [(1.5, 100 * MIB, True), (1.49, 900 * MIB, False), (3.0, 100 * MIB - 1, False), (9.0, None, False)],
)
def test_fragmentation_needs_both_the_ratio_and_the_wasted_bytes(
    ratio: float, wasted: int | None, fragmented: bool
) -> None:
    info = ServerInfo(fragmentation_ratio=ratio, fragmentation_bytes=wasted, fragmentation_source="allocator_frag")
    check, cause = judge_fragmentation(info, LIMITS)
    assert (check.status, cause) == ((Status.FAIL, C.FRAGMENTATION) if fragmented else (Status.PASS, None))
    assert check.evidence.startswith(f"allocator fragmentation {ratio:.2f} ({size(wasted)} wasted): ")


def test_fragmentation_hidden_rss_or_with_no_byte_floor() -> None:
    check, cause = judge_fragmentation(ServerInfo(), LIMITS)
    assert (check.status, cause) == (Status.SKIP, None)
    info = ServerInfo(fragmentation_ratio=2.0, fragmentation_source="mem_fragmentation")
    check, cause = judge_fragmentation(info, Limits(fragmentation_bytes=0))
    assert (check.status, cause) == (Status.FAIL, C.FRAGMENTATION)
    assert check.evidence == "RSS fragmentation 2.00 (hidden wasted): at least 1.5 and 0 B"
    # wasted bytes not told are not counted as any: a floor of 1 byte is not reached
    assert judge_fragmentation(info, Limits(fragmentation_bytes=1))[1] is None


# -- keys: TTLs and sizes ---------------------------------------------------------------------------------


def sample(
    *, without_ttl: int = 0, biggest: tuple[BigKey, ...] = (), prefixes: tuple[tuple[str, int], ...] = (), **kw: object
) -> KeySample:
    return KeySample(
        sampled=kw.pop("sampled", 50),  # type: ignore[arg-type]
        without_ttl=without_ttl,
        biggest=biggest,
        no_ttl_prefixes=prefixes,
        complete=kw.pop("complete", True),  # type: ignore[arg-type]
        scan_calls=1,
        elapsed_s=0.01,
        memory_refused=kw.pop("memory_refused", None),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("keys", "expires", "leak", "text"),
    [
        (1500, 499, True, "1001 of 1500 keys have no TTL (INFO keyspace), more than 1000"),
        (1500, 500, False, "1000 of 1500 keys have no TTL (INFO keyspace), at most 1000"),
    ],
)
def test_keys_without_ttl_counted_by_info(keys: int, expires: int, leak: bool, text: str) -> None:
    check, cause = judge_ttls(ServerInfo(keys=keys, expires=expires), None, LIMITS)
    assert (check.status, cause) == ((Status.FAIL, C.KEYS_WITHOUT_TTL) if leak else (Status.PASS, None))
    assert check.evidence == text
    assert (check.data["without_ttl"], check.data["prefixes"]) == (keys - expires, {})


def test_keys_without_ttl_counted_in_the_sample_when_info_hides_them() -> None:
    found = sample(without_ttl=1001, sampled=2000, prefixes=(("cache:", 900), ("tmp:", 101)))
    check, cause = judge_ttls(ServerInfo(keys=2000), found, LIMITS)  # the expires count is hidden
    assert (check.status, cause) == (Status.FAIL, C.KEYS_WITHOUT_TTL)
    assert check.evidence == (
        "1001 of 2000 sampled keys have no TTL, more than 1000; commonest in the sample: cache: 900, tmp: 101"
    )
    assert check.data["prefixes"] == {"cache:": 900, "tmp:": 101}
    check, _ = judge_ttls(ServerInfo(), sample(without_ttl=1001), LIMITS)
    assert check.evidence == "1001 of 50 sampled keys have no TTL, more than 1000"
    check, cause = judge_ttls(ServerInfo(), sample(without_ttl=1000), LIMITS)
    assert (check.status, cause) == (Status.PASS, None)
    check, cause = judge_ttls(ServerInfo(), None, LIMITS)
    assert (check.status, cause) == (Status.SKIP, None)


def test_big_keys_not_sampled_or_refused_are_a_skip() -> None:
    check, cause = judge_big_keys(None, LIMITS)
    assert (check.status, check.evidence, cause) == (Status.SKIP, "no key was sampled", None)
    assert judge_big_keys(None, LIMITS, why_not="read-only run")[0].evidence == "read-only run"
    check, cause = judge_big_keys(sample(memory_refused="NOPERM"), LIMITS)
    assert (check.status, cause) == (Status.SKIP, None) and "MEMORY USAGE (NOPERM)" in check.evidence


def test_a_key_of_the_big_key_size_or_more_is_big() -> None:
    keys = (BigKey("blob:1", MIB, -1), BigKey("blob:2", MIB - 1, 30))
    check, cause = judge_big_keys(sample(biggest=keys, complete=False), LIMITS)
    assert (check.status, cause) == (Status.FAIL, C.BIG_KEYS)
    assert check.evidence == "1 of 50 sampled keys (a bounded sample) take 1.0 MiB or more: blob:1 1.0 MiB"
    assert (check.data["biggest"][0]["bytes"], check.data["biggest"][0]["ttl"]) == (MIB, -1)
    check, cause = judge_big_keys(sample(biggest=keys[1:]), LIMITS)
    assert (check.status, cause) == (Status.PASS, None)
    assert check.evidence == "largest of 50 sampled keys: 1024.0 KiB, under 1.0 MiB"
    check, cause = judge_big_keys(sample(), LIMITS)
    assert (check.status, check.evidence) == (Status.PASS, "largest of 50 sampled keys: none, under 1.0 MiB")


# -- edges the mutation run asked for ---------------------------------------------------------------


def test_pings_of_zero_ms_are_shown_as_zero() -> None:
    check, cause = judge_ping(LatencySamples("PING", (0.0, 0.0, 0.0)), LIMITS)
    assert (
        check.status is Status.PASS
        and cause is None
        and check.evidence.startswith("3 PINGs: p50 0.00 ms, p99 0.00 ms, max 0.00 ms")
    ), check


def test_each_slow_command_shows_its_own_worst_and_the_five_most_frequent_are_named() -> None:
    entries = (
        SlowEntry(NOW - 1, 900_000, "GET"),
        SlowEntry(NOW - 2, 60_000, "KEYS"),
        SlowEntry(NOW - 3, 60_700, "".join(["KE", "YS"])),  # as read apart: compared by value
        SlowEntry(NOW - 4, 70_000, "SCAN"),
        SlowEntry(NOW - 5, 70_000, "SCAN"),
        SlowEntry(NOW - 6, 70_000, "SCAN"),
        SlowEntry(NOW - 7, 51_000, "EVAL"),
        SlowEntry(NOW - 8, 52_000, "HGETALL"),
        SlowEntry(NOW - 9, 53_000, "ZRANGE"),
    )
    check, cause = judge_slowlog(AdminRead("SLOWLOG GET", entries), NOW, LIMITS)
    assert cause is C.SLOW_COMMANDS
    shown = check.evidence.split(": ", 1)[1]
    assert shown.startswith("SCAN ×3 (up to 70 ms), KEYS ×2 (up to 61 ms), GET ×1 (up to 900 ms), "), shown
    assert len(shown.split(", ")) == 5, shown
    assert {row["command"]: row["max_ms"] for row in check.data["slow"]}["KEYS"] == 60.7


def test_a_commands_share_of_time_is_rounded() -> None:
    stats = (CommandStat("get", 2, 2, 1.0), CommandStat("set", 1, 1, 1.0))  # 2 of 3 µs: 66.7 %
    check, _ = judge_commandstats(ServerInfo(commands=stats), LIMITS)
    assert [row["share_of_time"] for row in check.data["top"]] == ["67%", "33%"], check.data


def test_ping_samples_are_kept_to_the_hundredth_of_a_ms() -> None:
    check, _ = judge_ping(LatencySamples("PING", (1.2345, 2.0)), LIMITS)
    assert check.data["samples_ms"] == [1.23, 2.0]


def test_the_slow_log_data_keeps_the_ten_most_frequent_commands() -> None:
    entries = tuple(SlowEntry(NOW - i, 60_000, f"CMD{i:02d}") for i in range(11))
    check, _ = judge_slowlog(AdminRead("SLOWLOG GET", entries), NOW, LIMITS)
    assert [row["command"] for row in check.data["slow"]] == [f"CMD{i:02d}" for i in range(10)]


def test_slow_commands_by_statistics_name_five_and_keep_the_time_per_call_to_the_microsecond() -> None:
    stats = tuple(CommandStat(f"cmd{i}", 10, 10 * 900_700, 900_700.0) for i in range(6))
    check, cause = judge_commandstats(ServerInfo(commands=(CommandStat("get", 3, 3704, 1234.56), *stats)), LIMITS)
    assert cause is C.SLOW_COMMANDS and check.data["top"][0]["ms_per_call"] == 1.235, check.data
    assert check.evidence.count("ms per call over") == 5 and "cmd4" in check.evidence and "cmd5" not in check.evidence
    assert "cmd0 901 ms per call over 10 calls" in check.evidence, check.evidence


def test_few_keys_without_a_ttl_and_a_key_far_above_the_big_key_size_are_judged_too() -> None:
    check, cause = judge_ttls(ServerInfo(), sample(without_ttl=5), LIMITS)
    assert (check.status, cause) == (Status.PASS, None), check
    check, cause = judge_big_keys(sample(biggest=(BigKey("blob:3", 3 * MIB, -1),)), LIMITS)
    assert cause is C.BIG_KEYS and "blob:3 3.0 MiB" in check.evidence, check


def test_latency_events_above_the_limit_are_named_five_at_most() -> None:
    events = tuple(LatencyEvent(f"event{i}", NOW - i, 150 + i, 300) for i in range(6))
    check, cause = judge_latency_events(AdminRead("LATENCY LATEST", events), NOW, LIMITS)
    assert cause is not None and check.status is Status.FAIL, check
    shown = check.evidence.split(": ", 1)[1]
    assert shown.count("(worst 300 ms)") == 5 and "event4 154 ms" in shown and "event5" not in shown, shown


def test_a_waste_far_above_the_floor_and_a_big_key_at_the_size_read_apart_count() -> None:
    info = ServerInfo(fragmentation_ratio=2.0, fragmentation_bytes=300 * MIB, fragmentation_source="allocator_frag")
    assert judge_fragmentation(info, LIMITS)[1] is C.FRAGMENTATION
    at_edge = BigKey("blob:1", int(str(MIB)), -1)  # the same number, another int object
    assert judge_big_keys(sample(biggest=(at_edge,)), LIMITS)[1] is C.BIG_KEYS


def test_the_largest_key_under_the_size_is_the_first_listed() -> None:
    keys = (BigKey("blob:2", MIB - 1, 30), BigKey("blob:3", 10, 30))
    check, cause = judge_big_keys(sample(biggest=keys), LIMITS)
    assert cause is None and "1024.0 KiB, under 1.0 MiB" in check.evidence, check
