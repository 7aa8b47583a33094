"""``orchestrator bench --only learning`` in a tiny run: the shape of the report and what each variant
runs, not its timings."""

from __future__ import annotations

import orchestrator.core.engine.run as run_module
import orchestrator.core.profile as profile_module
from orchestrator.bench.learning import (
    SMART_WINBACK,
    bench_learning,
    plain_journey,
    run_stage_hooks_off,
    uses_run_stage,
)
from orchestrator.bench.micro import build_registry
from orchestrator.cli.bench import DEFAULT_SECTIONS, SECTIONS, summary_table
from orchestrator.core.journey import load_journey_file


def test_the_hooks_are_swapped_within_the_block_and_put_back() -> None:
    record, dispatch = profile_module.record_engagement, run_module.dispatch
    with run_stage_hooks_off():
        assert profile_module.record_engagement is not record
        assert run_module.dispatch is not dispatch
        timing: dict[str, list[object]] = {}
        profile_module.record_engagement(timing, "email", 0, None)
        assert timing == {}, "hooks off: no decayed local-hour scores"
    assert profile_module.record_engagement is record
    assert run_module.dispatch is dispatch


def test_the_examples_use_none_of_the_run_stage_and_the_plain_winback_neither() -> None:
    registry = build_registry(10)
    for jid in registry.journey_ids():
        assert not any(uses_run_stage(d.definition) for d in registry.deployments(jid)), jid
    smart = load_journey_file(SMART_WINBACK)
    assert uses_run_stage(smart)
    plain = plain_journey(smart)
    assert not uses_run_stage(plain)
    assert plain.steps.keys() == smart.steps.keys()


def test_tiny_run_has_every_variant_and_the_same_actions() -> None:
    report = bench_learning(events=400, rounds=1)
    assert [r["variant"] for r in report["rows"]] == ["A", "B", "C", "A2"]
    assert report["rounds"] == 1
    assert report["same_actions"], "the run stage changes nothing for journeys that do not use it"
    a, b, c, a2 = report["rows"]
    assert a["customers_with_timing"] == a2["customers_with_timing"] == 0, "A: the hooks are off"
    assert b["customers_with_timing"] == c["customers_with_timing"] > 0
    assert a["vs_A"] == 1.0
    assert report["ratio_B_vs_A"] == b["vs_A"] > 0
    assert all(len(r["rounds_us_per_event"]) == 1 for r in report["rows"])
    assert report["in_situ"]["calls_per_event"] > 0
    assert report["in_situ"]["ratio_vs_A_median"] > 1
    assert set(report["micro"]) >= {"record_engagement_us", "choose_send_time_us", "choose_channel_us"}
    using = report["using_it"]
    assert using["send_decisions"] > 0
    assert using["events"] == using["generated_events"] + using["added_events"]
    assert set(using["rows"]) == {"D0", "D"}
    assert 0 < using["profile"]["choices_share"] < 1
    lines = summary_table({"sections": {"learning": report}})
    assert "learning A" in lines
    assert "learning B/A" in lines
    assert "smart_winback" in lines
    assert "learning" in SECTIONS
    assert "learning" not in DEFAULT_SECTIONS  # only when asked for
