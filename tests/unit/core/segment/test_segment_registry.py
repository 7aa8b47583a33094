"""The segment timeline: versions in force by time, dependency order, cycles and limits refused."""

from __future__ import annotations

import pytest

from orchestrator.core.segment import MAX_SEGMENTS, SegmentRegistry, load_segment_text
from orchestrator.exceptions import SegmentValidationError


def seg(sid: str, condition: str = "profile.tier == 'gold'", version: int = 1) -> object:
    return load_segment_text(
        f'kind: segment\nid: {sid}\nversion: {version}\ncondition: "{condition}"\n', f"{sid}.yaml"
    )


def test_in_force_orders_a_segment_after_those_it_reads() -> None:
    reg = SegmentRegistry()
    reg.deploy(seg("c", "'b' in profile.segments"), 0)  # (b not deployed yet: read as "not a member")
    reg.deploy(seg("b", "'a' in profile.segments"), 0)
    reg.deploy(seg("a"), 0)
    assert [d.id for d in reg.in_force(10)] == ["a", "b", "c"]


def test_versions_take_effect_at_their_time() -> None:
    reg = SegmentRegistry()
    reg.deploy(seg("a", version=1), 0)
    reg.deploy(seg("a", "profile.tier == 'silver'", version=2), 1000)
    assert reg.in_force(999)[0].version == 1
    assert reg.in_force(1000)[0].version == 2
    assert reg.in_force(-1) == ()
    reg.set_status("a", "archived", 2000)
    assert reg.in_force(2000)[0].status == "archived"


def test_a_cycle_is_refused_and_the_registry_stays_as_it_was() -> None:
    reg = SegmentRegistry()
    reg.deploy(seg("a", "'b' in profile.segments"), 0)
    with pytest.raises(SegmentValidationError) as err:
        reg.deploy(seg("b", "'a' in profile.segments"), 0)
    assert (
        "b.yaml:1: condition: segments would read each other in a cycle: a -> b -> a" in err.value.problems[0]
    )
    assert [d.id for d in reg.in_force(0)] == ["a"]


def test_the_same_version_with_other_content_is_refused() -> None:
    reg = SegmentRegistry()
    reg.deploy(seg("a"), 0)
    reg.deploy(seg("a"), 10)  # the same content again: allowed
    with pytest.raises(SegmentValidationError, match="already deployed with different content"):
        reg.deploy(seg("a", "profile.tier == 'x'"), 20)


def test_lookback_past_the_history_and_too_many_segments_are_refused() -> None:
    reg = SegmentRegistry(history_window_ms=3_600_000)
    with pytest.raises(SegmentValidationError, match="looks back"):
        reg.deploy(seg("a", "seen('x', duration('2h'))"), 0)
    reg = SegmentRegistry()
    for i in range(MAX_SEGMENTS):
        reg.deploy(seg(f"s{i}"), 0)
    with pytest.raises(SegmentValidationError, match=f"{MAX_SEGMENTS} segments are deployed already"):
        reg.deploy(seg("one_more"), 0)
