"""Segments in the per-customer logic (issue 21): membership kept as events arrive and as time passes
(the customer's own timer, exactly when the oldest counted event leaves its window), segments that read
segments, journeys entered and left on membership, erasure, merges and late events."""

from __future__ import annotations

from collections.abc import Callable

from conftest import T0, Driver, H, M, registry_of

from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.segment import SegmentRegistry, load_segment_text

Make = Callable[..., Driver]

VIEWERS = "kind: segment\nid: viewers\nversion: 1\ncondition: \"seen('page.viewed', duration('1h'))\"\n"
BUSY = "kind: segment\nid: busy\nversion: 1\ncondition: \"count('page.viewed', duration('1h')) >= 2\"\n"
VIP = "kind: segment\nid: vip\nversion: 1\ncondition: \"profile.tier == 'gold'\"\n"
VIEWERS_NOT_VIP = (
    "kind: segment\nid: viewers_not_vip\nversion: 1\n"
    "condition: \"seen('page.viewed', duration('1h')) && !('vip' in profile.segments)\"\n"
)
ON_VIEWERS = """
id: nudge
version: 1
entry: {segment: viewers}
re_entry: {policy: always}
exit_when:
  - name: gone_quiet
    left_segment: viewers
steps:
  wait: {type: wait, duration: 3h, next: mail}
  mail: {type: send, channel: email, template: t_nudge}
"""


def segments(*texts: str, at_ms: int = 0) -> SegmentRegistry:
    reg = SegmentRegistry()
    for text in texts:
        reg.deploy(load_segment_text(text), at_ms)
    return reg


def driver(*segment_texts: str, journeys: tuple[str, ...] = (), **kw: object) -> Driver:
    return Driver(CustomerLogic(registry_of(*journeys), segments=segments(*segment_texts), **kw))  # type: ignore[arg-type]


def changes(d: Driver, out: object) -> list[tuple[str, bool, int]]:
    return [(c.segment, c.entered, c.at_ms) for c in out.segments]  # type: ignore[attr-defined]


def test_membership_ends_exactly_when_the_counted_event_leaves_its_window() -> None:
    d = driver(VIEWERS)
    out = d.event("page.viewed", T0)
    assert changes(d, out) == [("viewers", True, T0)]
    assert d.state is not None
    assert d.state.profile.segments == {"viewers": T0}
    assert d.wakeup == T0 + H + 1  # the view counts up to T0 + 1h inclusive
    assert changes(d, d.wake(T0 + H)) == []  # (nothing due yet)
    out = d.wake(T0 + H + 1)
    assert changes(d, out) == [("viewers", False, T0 + H + 1)]
    assert d.state.profile.segments == {}
    assert d.wakeup is None


def test_a_later_event_moves_the_check_to_the_newest_counted_event() -> None:
    d = driver(BUSY)
    d.event("page.viewed", T0)
    assert d.state is not None
    assert d.state.profile.segments == {}
    assert d.wakeup == T0 + H + 1  # (a non-member too: time can change its count)
    out = d.event("page.viewed", T0 + 30 * M)
    assert changes(d, out) == [("busy", True, T0 + 30 * M)]
    assert d.wakeup == T0 + H + 1  # the oldest counted view leaves first
    out = d.wake(T0 + H + 1)
    assert changes(d, out) == [("busy", False, T0 + H + 1)]
    assert d.wakeup == T0 + 90 * M + 1  # the other view leaves later: one more check
    assert changes(d, d.wake(T0 + 90 * M + 1)) == []
    assert d.wakeup is None


def test_a_customer_whose_events_no_window_counts_has_no_segment_timer() -> None:
    d = driver(VIEWERS, VIP)
    d.event("profile.updated", T0, {"tier": "gold"})
    assert d.state is not None
    assert d.state.profile.segments == {"vip": T0}
    assert d.state.segment_due_ms is None
    assert d.wakeup is None


def test_a_segment_sees_the_memberships_computed_before_it_in_the_same_call() -> None:
    d = driver(VIEWERS_NOT_VIP, VIP)
    out = d.event("page.viewed", T0)
    assert changes(d, out) == [("viewers_not_vip", True, T0)]
    out = d.event("profile.updated", T0 + M, {"tier": "gold"})
    assert changes(d, out) == [("vip", True, T0 + M), ("viewers_not_vip", False, T0 + M)]


def test_a_journey_starts_on_entering_and_ends_on_leaving_and_starts_again_on_coming_back() -> None:
    d = driver(VIEWERS, journeys=(ON_VIEWERS,))
    d.event("page.viewed", T0, email="a@x.io")
    assert ("entered", None, "segment viewers") in d.kinds()
    d.wake(T0 + H + 1)  # left by time alone: the journey's exit rule
    assert d.kinds()[-1] == ("exited", "wait", "gone_quiet")
    d.event("page.viewed", T0 + 5 * H)  # back: entered again (no unrelated traffic needed)
    assert [k for k in d.kinds() if k[0] == "entered"] == [("entered", None, "segment viewers")] * 2
    assert d.templates() == []  # (each time they left before the 3 h wait was over)


def test_a_late_event_updates_membership_but_starts_no_journey() -> None:
    d = driver(VIEWERS, journeys=(ON_VIEWERS,), lateness_ms=10 * M)
    out = d.event("page.viewed", T0, now_ms=T0 + 30 * M)
    assert changes(d, out) == [("viewers", True, T0)]
    assert out.timing == "late"
    assert not [k for k in d.kinds() if k[0] == "entered"]


def test_erasure_says_which_segments_the_customer_left() -> None:
    d = driver(VIEWERS, VIP)
    d.event("profile.updated", T0, {"tier": "gold"})
    d.event("page.viewed", T0 + M)
    out = d.event("customer.erased", T0 + 2 * M)
    assert out.state is None
    assert sorted((c.segment, c.entered) for c in out.segments) == [("viewers", False), ("vip", False)]


def test_an_archived_segment_loses_its_members_at_their_next_event() -> None:
    reg = segments(VIP)
    d = Driver(CustomerLogic(registry_of(), segments=reg))
    d.event("profile.updated", T0, {"tier": "gold"})
    reg.set_status("vip", "archived", T0 + H)
    out = d.event("page.viewed", T0 + 2 * H)
    assert changes(d, out) == [("vip", False, T0 + 2 * H)]


def test_memberships_are_checked_again_after_a_merge() -> None:
    logic = CustomerLogic(registry_of(), segments=segments(VIEWERS, VIP))
    a = Driver(logic, key="a")
    b = Driver(logic, key="b")
    a.event("profile.updated", T0, {"tier": "gold"})
    b.event("page.viewed", T0 + M)
    assert b.state is not None
    assert b.state.profile.segments == {"viewers": T0 + M}
    out = logic.on_merge("a", a.state, b.state, T0 + 2 * M)
    assert out.state is not None
    assert out.state.profile.segments == {"vip": T0, "viewers": T0 + M}
    assert out.state.segment_due_ms == T0 + M + H + 1
    assert out.next_wakeup_ms == T0 + M + H + 1


def test_the_stored_state_keeps_memberships_and_the_check_time() -> None:
    d = driver(VIEWERS, VIP)
    d.event("profile.updated", T0, {"tier": "gold"})
    d.event("page.viewed", T0 + M)
    assert d.state is not None
    stored = d.state.to_dict()
    assert stored["p"]["seg"] == {"vip": T0, "viewers": T0 + M}
    assert stored["sd"] == T0 + M + H + 1
    for copy in (True, False):
        back = CustomerState.from_dict(CustomerState.from_dict(stored).to_dict(), copy=copy)
        assert back.profile.segments == d.state.profile.segments
        assert back.segment_due_ms == d.state.segment_due_ms


def test_without_segments_nothing_changes_in_the_record() -> None:
    d = Driver(CustomerLogic(registry_of()))
    d.event("page.viewed", T0)
    assert d.state is not None
    stored = d.state.to_dict()
    assert "seg" not in stored["p"]
    assert "sd" not in stored


def test_an_event_older_than_the_clock_keeps_later_events_counted() -> None:
    d = driver(VIEWERS)
    d.event("page.viewed", T0 + 30 * M)
    out = d.event("cart.updated", T0, now_ms=T0 + 31 * M)  # (dated before the view, arriving after it)
    assert changes(d, out) == []
    assert d.state is not None
    assert d.state.profile.segments == {"viewers": T0 + 30 * M}


def test_a_segment_timer_lets_members_of_an_archived_segment_go() -> None:
    reg = segments(VIEWERS)
    d = Driver(CustomerLogic(registry_of(), segments=reg))
    d.event("page.viewed", T0)
    reg.set_status("viewers", "archived", T0 + 30 * M)
    out = d.wake(T0 + H + 1)
    assert changes(d, out) == [("viewers", False, T0 + H + 1)]
    assert d.wakeup is None
