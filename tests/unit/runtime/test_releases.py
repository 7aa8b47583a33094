"""The pure parts of the workers' campaign releases: which stored records are woken up, the release
progress of a partition (its row, the floor), the counts per campaign, the changelog's latest row per
partition summed, and the report rows of ``orchestrator campaigns``."""

from __future__ import annotations

from typing import Any, cast

import orjson

from orchestrator.core.campaign import CampaignDefinition, CampaignRegistry, load_campaign_text
from orchestrator.core.campaign.registry import Release
from orchestrator.core.engine.state import CustomerState
from orchestrator.runtime.releases import (
    CampaignCounts,
    ReleaseProgress,
    campaign_report,
    campaigns_key,
    counts_from_changelog,
    members_to_wake,
    releases_key,
)
from orchestrator.runtime.segment_sizes import sizes_key


def _record(key: str, segments: dict[str, int] | None = None, attributes: Any = None) -> bytes:
    """A customer's record as the worker stores it (processor: ``{"s": state, "off": ..., "out": ...}``)."""
    state = CustomerState.new(key)
    state.profile.segments = dict(segments or {})
    state.profile.attributes = dict(attributes or {})
    return orjson.dumps({"s": state.to_dict(), "off": {}, "out": []})


def test_members_to_wake_finds_the_members_and_skips_the_others() -> None:
    records = [
        ("member", _record("member", {"busy": 1, "vip": 2})),
        ("other-segment", _record("other-segment", {"busy": 1})),
        # names "vip" in an attribute only (before its segments): not a member
        ("attribute-too", _record("attribute-too", {"busy": 1}, {"vip": True})),
        # names "vip" only outside "seg", and has no "seg" at all: skipped without a look further
        ("no-seg", _record("no-seg", None, {"vip": True})),
        ("erased", None),
        ("moved", orjson.dumps({"moved": "member", "exp": 5})),
        ("no-state", orjson.dumps({"s": None, "off": {}, "out": []})),
        ("alone", _record("alone", {"vip": 7})),
    ]
    no_seg = records[3][1] or b""
    assert b'"seg":{' not in no_seg
    assert b'"vip":' in no_seg
    assert list(members_to_wake(records, "vip")) == ["member", "alone"]
    assert list(members_to_wake(records, "busy")) == ["member", "other-segment", "attribute-too"]
    # a segment whose id is the start of another's is not taken for it (the name is matched whole)
    assert list(members_to_wake([("v", _record("v", {"vip_gold": 1}))], "vip")) == []


class _Releases:
    """The part of a CampaignRegistry the progress reads: its releases between two times."""

    def __init__(self, releases: list[Release]) -> None:
        self.ordered = sorted(releases)

    def releases_between(self, from_ms: int, until_ms: int) -> list[Release]:
        return [r for r in self.ordered if from_ms <= r.at_ms <= until_ms]


def _reg(releases: list[Release]) -> CampaignRegistry:
    return cast(CampaignRegistry, _Releases(releases))


def _release(at_ms: int, campaign: str = "c", occurrence: int = 0) -> Release:
    return Release(at_ms, campaign, 1, occurrence, "vip")


def test_release_progress_pending_mark_and_the_floor_past_the_releases_done() -> None:
    r100, r200, r300 = _release(100), _release(200, occurrence=1), _release(300, "d")
    releases = [r100, r200, r300]
    progress = ReleaseProgress()
    assert not progress.known(0)
    progress.load(0, None)
    assert progress.known(0)
    assert progress.pending(0, _reg(releases), 250) == [r100, r200]
    assert progress.pending(0, _reg(releases), 99) == []
    # sent (wake-ups on their way, the marker not read yet): not pending again
    progress.sent.setdefault(0, set()).add(r100.key)
    assert progress.pending(0, _reg(releases), 250) == [r200]
    # r200 done before r100: the floor stops at r100
    row = progress.mark(0, r200.key, _reg(releases))
    assert row == {"floor": 100, "done": [r200.key]}
    assert progress.pending(0, _reg(releases), 1000) == [r300]
    # r100 done: the floor moves past both, and the done set keeps nothing before it
    row = progress.mark(0, r100.key, _reg(releases))
    assert row == {"floor": 300, "done": []}  # (up to r300, the first not done)
    assert progress.sent[0] == set()
    assert progress.pending(0, _reg(releases), 1000) == [r300]
    # r300 done: the floor moves past it too; a release deployed later is pending
    assert progress.mark(0, r300.key, _reg(releases)) == {"floor": 301, "done": []}
    assert progress.pending(0, _reg([*releases, _release(400, "e")]), 1000) == [_release(400, "e")]


def test_release_progress_row_round_trips_through_load_and_is_forgotten() -> None:
    r100, r200, r300 = _release(100), _release(200, occurrence=1), _release(300, "d")
    releases = [r100, r200, r300]
    progress = ReleaseProgress()
    progress.load(3, None)
    row = progress.mark(3, r200.key, _reg(releases))
    again = ReleaseProgress()
    again.load(3, orjson.loads(orjson.dumps(row)))  # (as stored in the table and read back)
    assert (again.floor, again.done) == (progress.floor, progress.done)
    assert again.pending(3, _reg(releases), 1000) == [r100, r300]
    # a partition moving here with wake-ups sent by this worker before: loading its row forgets them
    again.sent[3] = {r100.key}
    again.load(3, {"floor": 150, "done": [r200.key]})
    assert again.pending(3, _reg(releases), 1000) == [r300]
    again.load(4, "not a row")
    assert (again.floor[4], again.done[4]) == (0, set())
    again.forget([3, 4])
    assert not again.known(3)
    assert not again.known(4)
    assert again.pending(3, _reg(releases), 1000) == releases


def test_campaign_counts_apply_load_totals_and_forget() -> None:
    counts = CampaignCounts()
    assert not counts.known(0)
    counts.load(0, {"c": {"sent": 2, "scheduled": 3}, "bad": 5})
    counts.load(1, None)
    assert counts.known(0)
    assert counts.known(1)
    assert counts.partitions[0] == {"c": {"sent": 2, "scheduled": 3}}
    row = counts.apply(1, [("c", 0, "scheduled"), ("c", 0, "sent"), ("d", 2, "late"), ("c", 1, "scheduled")])
    assert row == {"c": {"scheduled": 2, "sent": 1}, "d": {"late": 1}}
    assert counts.apply(0, [("c", 0, "unsent_no_consent")]) == {
        "c": {"sent": 2, "scheduled": 3, "unsent_no_consent": 1}
    }
    assert counts.totals() == {
        "c": {"sent": 3, "scheduled": 5, "unsent_no_consent": 1},
        "d": {"late": 1},
    }
    counts.forget([0])
    assert counts.totals() == {"c": {"scheduled": 2, "sent": 1}, "d": {"late": 1}}
    assert not counts.known(0)


def test_the_changelog_gives_the_latest_counts_of_each_partition_summed() -> None:
    def row(key: str, value: Any, quoted: bool = False) -> tuple[bytes, bytes | None]:
        name = f'"{key}"' if quoted else key
        return name.encode(), None if value is None else orjson.dumps(value)

    rows = [
        row(campaigns_key(0), {"c": {"sent": 1}}),
        row(campaigns_key(0), {"c": {"sent": 4, "scheduled": 5}}, quoted=True),  # the latest wins
        row(campaigns_key(1), {"c": {"sent": 2}, "d": {"late": 1}}),
        row(campaigns_key(2), {"c": {"sent": 9}}),
        row(campaigns_key(2), None),  # deleted: nothing of partition 2 counts
        row(sizes_key(0), {"vip": 7}),  # the segment sizes and the release progress: not counts
        row(releases_key(0), {"floor": 5, "done": []}),
        row("campaigns:x", {"c": {"sent": 100}}),
        (b"", b"{}"),
    ]
    records = [(0, offset, key, value) for offset, (key, value) in enumerate(rows)]
    records.append((1, 0, None, None))
    assert counts_from_changelog(records) == {"c": {"sent": 6, "scheduled": 5}, "d": {"late": 1}}
    assert counts_from_changelog([]) == {}


def _campaign(cid: str, segment: str, version: int = 1, name: str = "") -> CampaignDefinition:
    named = f"name: {name}\n" if name else ""
    return load_campaign_text(
        f"kind: campaign\nid: {cid}\nversion: {version}\n{named}audience:\n  segment: {segment}\n"
        "send: {channel: email, template: t1}\nschedule: {at: 2025-03-12T10:00:00Z}\n",
        f"{cid}.yaml",
    )


def test_the_report_has_a_row_per_campaign_deployed_or_counted() -> None:
    reg = CampaignRegistry()
    reg.deploy(_campaign("spring", "vip", name="Spring preview"), 0)
    reg.set_status("spring", "paused", 500)
    reg.deploy(_campaign("later", "busy", version=3), 1000)
    counts = {
        "spring": {"scheduled": 5, "sent": 2, "unsent_not_subscribed": 1, "unsent_no_consent": 1, "late": 1},
        "gone": {"sent": 7},
    }
    rows = campaign_report(reg, counts, {"vip": 6, "busy": 2}, 100)
    assert [r["campaign"] for r in rows] == ["gone", "later", "spring"]
    gone, later, spring = rows
    assert spring == {
        "campaign": "spring",
        "version": 1,
        "status": "active",
        "name": "Spring preview",
        "segment": "vip",
        "audience": 6,
        "scheduled": 5,
        "sent": 2,
        "suppressed": 2,
        "unsent": {"no_consent": 1, "not_subscribed": 1},
        "held": 0,
        "late": 1,
        "left": 0,
        "entered": 0,
        "cancelled": 0,
    }
    # not in effect yet at 100: its last deployment is shown; nothing counted, every count 0
    shown = ("version", "status", "segment", "audience")
    assert [later[k] for k in shown] == [3, "active", "busy", 2]
    assert (later["scheduled"], later["sent"], later["suppressed"], later["unsent"]) == (0, 0, 0, {})
    # counted, no longer deployed (the counts stay in the changelog)
    assert [gone[k] for k in shown] == [None, "not deployed", "", 0]
    assert gone["sent"] == 7
    # the status in effect at the time asked
    assert [r["status"] for r in campaign_report(reg, counts, {}, 600) if r["campaign"] == "spring"] == [
        "paused"
    ]
    assert campaign_report(CampaignRegistry(), {}, {"vip": 3}, 0) == []


def test_two_releases_at_one_time_the_floor_stops_at_the_one_not_done() -> None:
    a, b = _release(100, "a"), _release(100, "b")
    progress = ReleaseProgress()
    progress.load(0, None)
    assert progress.mark(0, b.key, _reg([a, b])) == {"floor": 100, "done": [b.key]}
    assert progress.pending(0, _reg([a, b]), 1000) == [a]
    assert progress.mark(0, a.key, _reg([a, b])) == {"floor": 101, "done": []}
    assert progress.pending(0, _reg([a, b]), 1000) == []
