"""The pure parts of ``orchestrator bench``: generated journeys, histogram quantiles, the summary table."""

from __future__ import annotations

import pytest

from orchestrator.bench.e2e import _bucket_quantiles, _buckets
from orchestrator.bench.micro import bench_timers, build_registry, nomatch_journey_yaml
from orchestrator.cli.bench import DEFAULT_SECTIONS, SECTIONS, summary_table
from orchestrator.core.journey import load_journey_text


def test_nomatch_journeys_load_and_never_enter_on_the_generated_types() -> None:
    other = load_journey_text(nomatch_journey_yaml(3), "a.yaml")
    same = load_journey_text(nomatch_journey_yaml(4, same_type=True), "b.yaml")
    assert other.entry.events == {"bench.never_3"}
    assert same.entry.events == {"page.viewed"}
    assert same.entry.condition is not None


def test_build_registry_counts_the_examples_in() -> None:
    registry = build_registry(10, same_type_share=0.5)
    assert len(registry) == 10
    assert "welcome" in registry.journey_ids()


def test_bucket_quantiles_of_the_window_between_two_scrapes() -> None:
    text_before = 'orchestrator_event_to_action_seconds_bucket{le="0.01"} 5.0\n'
    text_before += 'orchestrator_event_to_action_seconds_bucket{le="0.1"} 5.0\n'
    text_before += 'orchestrator_event_to_action_seconds_bucket{le="+Inf"} 5.0\n'
    after = {0.01: 95.0, 0.1: 104.0, float("inf"): 105.0}
    q = _bucket_quantiles(_buckets(text_before), after)
    assert q == {"observations": 100, "p50_le_ms": 10.0, "p99_le_ms": 100.0}


def test_timers_quick_and_summary_table() -> None:
    timers = bench_timers(quick=True)
    assert [(r["pending"], r["index"]) for r in timers["rows"]] == [
        (10_000, "whole"),
        (10_000, "bounded 50,000"),
        (100_000, "whole"),
        (100_000, "bounded 50,000"),
    ]
    bounded = timers["rows"][-1]
    assert bounded["table_scans"] >= 1, "half of 100,000 fired: past the first horizon"
    assert bounded["bytes_per_pending"] < timers["rows"][-2]["bytes_per_pending"]
    table = summary_table({"sections": {"timers": timers}, "errors": {"e2e": "boom"}})
    assert "10,000 pending" in table
    assert "e2e      FAILED: boom" in table
    assert SECTIONS == (
        "engine",
        "cel",
        "segments",
        "learning",
        "processor",
        "timers",
        "state",
        "simulate",
        "stages",
        "lateness",
        "e2e",
        "scale",
        "soak",
        "held",
    )
    # long, or a question of one change (learning): only when asked for
    assert set(SECTIONS) - set(DEFAULT_SECTIONS) == {"scale", "soak", "held", "learning"}
    scale = {"runs": [{"workers": n, "events_per_s": 1000.0 * n, "cpu_us_per_event_per_worker": [9.0] * n,
                       "broker_cpu_s": 3.0} for n in (1, 2)], "ratio_two_vs_one": 2.0}  # fmt: skip
    lines = summary_table({"sections": {"scale": scale}})
    assert "scale    2 worker(s)" in lines
    assert "two workers / one" in lines


def test_processor_section_measures_both_ways_on_the_same_messages() -> None:
    from orchestrator.bench.processor import bench_processor

    report = bench_processor(quick=True, events=1_500)
    for row in report["rows"]:
        batched, one_by_one = row["batched"], row["one_by_one"]
        assert batched["messages"] == one_by_one["messages"] > 1_500  # events, hand-overs, wake-ups
        assert batched["actions"] == one_by_one["actions"] > 0
        assert batched["us_per_message"] > 0
        assert row["batched_vs_one_by_one"] > 0
        parts = batched["parts_us"]
        assert set(parts) == {"parse", "state", "encode", "logic", "processor"}
        assert all(v >= 0 for v in parts.values())  # "processor" is the rest: never negative
    assert "processor spread" in summary_table({"sections": {"processor": report}})


def test_the_soak_slope_is_a_least_squares_fit_per_10_minutes() -> None:
    from orchestrator.bench.soak import rss_slope_mb_per_10min

    assert rss_slope_mb_per_10min([]) == 0.0
    assert rss_slope_mb_per_10min([(0.0, 100.0), (600.0, 105.0), (1200.0, 110.0)]) == pytest.approx(5.0)
    flat_with_noise = [(t * 10.0, 200.0 + (1 if t % 2 else -1)) for t in range(120)]
    assert abs(rss_slope_mb_per_10min(flat_with_noise)) < 0.1


def test_cel_quick_and_summary_table() -> None:
    from orchestrator.bench.cel import bench_cel

    report = bench_cel(quick=True)
    assert report["rows"][0]["condition"] == "no macro"
    assert all(r["us_with_budget"] > 0 and r["us_without"] > 0 for r in report["rows"])
    assert report["matches"]["python_re_backtracking_s"] > report["matches"]["re2_backtracking_us"] / 1e6
    table = summary_table({"sections": {"cel": report}})
    assert "with the cost budget" in table
    assert "RE2" in table


def test_segments_quick_measures_each_variant_in_the_same_run() -> None:
    from orchestrator.bench.segments import bench_segments, segment_registry

    assert [d.id for d in segment_registry(5).in_force(0)][-1] == "s4"  # (s4 reads s0: after it)
    report = bench_segments(quick=True)
    rows = {r["segments"]: r for r in report["rows"]}
    assert set(rows) == {"0", "5", "20", "20+5 campaigns"}
    assert rows["0"]["cost_vs_none"] == 1.0
    assert rows["0"]["memberships_per_customer"] == 0
    assert rows["20"]["memberships_per_customer"] > rows["5"]["memberships_per_customer"] > 0
    assert rows["20+5 campaigns"]["memberships_per_customer"] == rows["20"]["memberships_per_customer"]
    release = report["release"]
    assert release["customers"] > 0
    assert release["members_in_partition"] > 0
    assert release["us_per_customer_bytes"] > 0
    assert release["us_per_customer_decoded"] > 0
    table = summary_table({"sections": {"segments": report}})
    assert "segments  20 deployed" in table
    assert "release of a campaign" in table
