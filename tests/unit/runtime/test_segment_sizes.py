"""Segment counts per customer partition: memberships of stored records, deltas, the changelog's latest
row per partition summed cluster-wide, and the report rows."""

from __future__ import annotations

import orjson

from orchestrator.core.engine.state import CustomerState
from orchestrator.core.segment import SegmentRegistry, load_segment_text
from orchestrator.runtime.segment_sizes import (
    SegmentSizes,
    changed_members,
    members_of,
    segment_report,
    sizes_from_changelog,
    sizes_key,
)


def test_members_of_a_record_decoded_or_not_and_of_a_record_without_state() -> None:
    state = CustomerState.new("c1")
    state.profile.segments = {"vip": 1, "busy": 2}
    assert members_of({"s": state}) == {"vip", "busy"}
    assert members_of({"s": state.to_dict()}) == {"vip", "busy"}
    assert members_of({"moved": "c2", "exp": 5}) == frozenset()
    assert members_of(None) == frozenset()
    assert changed_members(frozenset({"a", "b"}), frozenset({"b", "c"})) == (("c",), ("a",))
    assert changed_members(frozenset({"a"}), frozenset({"a"})) == ((), ())


def test_counts_per_partition_never_go_below_zero_and_are_forgotten_on_revoke() -> None:
    sizes = SegmentSizes()
    sizes.load(0, {"vip": 2})
    sizes.load(1, None)
    assert sizes.apply(1, {"vip": 1, "busy": 1}) == {"vip": 1, "busy": 1}
    assert sizes.apply(0, {"vip": -5}) == {}
    assert sizes.totals() == {"vip": 1, "busy": 1}
    sizes.forget([1])
    assert sizes.totals() == {}
    assert not sizes.known(1)


def test_the_changelog_gives_the_latest_row_of_each_partition_summed() -> None:
    records = [
        (0, 0, sizes_key(0).encode(), orjson.dumps({"vip": 3})),
        (0, 1, sizes_key(0).encode(), orjson.dumps({"vip": 4, "busy": 1})),
        (1, 0, sizes_key(1).encode(), orjson.dumps({"vip": 2})),
        (2, 0, sizes_key(2).encode(), None),
        (2, 1, b"other", b"{}"),
    ]
    assert sizes_from_changelog(records) == {"vip": 6, "busy": 1}


def test_the_report_lists_deployed_segments_with_zero_and_counted_ones_no_longer_deployed() -> None:
    reg = SegmentRegistry()
    reg.deploy(
        load_segment_text("kind: segment\nid: vip\nversion: 2\ncondition: \"profile.tier == 'gold'\"\n"), 0
    )
    rows = segment_report(reg, {"gone": 4}, 10)
    assert rows == [
        {"segment": "gone", "version": None, "status": "not deployed", "name": "", "time_dependent": False,
         "reads": [], "members": 4},
        {"segment": "vip", "version": 2, "status": "active", "name": "vip", "time_dependent": False,
         "reads": [], "members": 0},
    ]  # fmt: skip
