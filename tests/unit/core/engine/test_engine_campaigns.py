"""Campaigns in the per-customer logic (issue 22): members scheduled at their own send time (a local time
in their zone, or the campaign's default zone), sent through the policy with deterministic ids, skipped
when late or out of the audience, paused and cancelled campaigns, a journey entered by a campaign,
recurrences, and nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import Driver, registry_of

from orchestrator.core.campaign import CampaignRegistry, load_campaign_text
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.ids import action_id
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.segment import SegmentRegistry, load_segment_text

H = 3_600_000


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


VIP = "kind: segment\nid: vip\nversion: 1\ncondition: \"profile.tier == 'gold'\"\n"
PREVIEW = """kind: campaign
id: preview
version: 1
audience: {segment: vip}
send: {channel: email, template: preview_v1, category: transactional}
schedule: {date: 2025-03-20, local_time: "10:00", default_timezone: Europe/Berlin}
deliver_within: 2h
"""
WELCOME_BACK = """id: welcome_back
version: 1
entry: {event: never.happens}
steps:
  mail: {type: send, channel: email, template: back_v1, category: transactional}
"""


def logic(*campaign_texts: str, journeys: tuple[str, ...] = ()) -> tuple[CustomerLogic, CampaignRegistry]:
    segments = SegmentRegistry()
    segments.deploy(load_segment_text(VIP), 0)
    campaigns = CampaignRegistry()
    for text in campaign_texts:
        campaigns.deploy(load_campaign_text(text), 0)
    return CustomerLogic(registry_of(*journeys), segments=segments, campaigns=campaigns), campaigns


def vip(d: Driver, at: int, zone: str | None = None) -> None:
    props: dict[str, object] = {"tier": "gold"}
    if zone:
        props["timezone"] = zone
    d.event("profile.updated", at, props, email=f"{d.key}@x.io")


def test_each_member_gets_it_at_ten_in_their_own_zone_once() -> None:
    made, _ = logic(PREVIEW)
    berlin, york, unknown = Driver(made, key="b"), Driver(made, key="n"), Driver(made, key="u")
    vip(berlin, ms(2025, 3, 10), "Europe/Berlin")
    vip(york, ms(2025, 3, 10), "America/New_York")
    vip(unknown, ms(2025, 3, 10))  # no zone: the campaign's default, Europe/Berlin
    for d in (berlin, york, unknown):
        out = d.wake(ms(2025, 3, 19, 20))  # the release starts (10:00 at UTC+14): each is scheduled
        assert out.campaigns == [("preview", 0, "scheduled")]
    assert berlin.wakeup == unknown.wakeup == ms(2025, 3, 20, 9)
    assert york.wakeup == ms(2025, 3, 20, 14)
    out = york.wake(ms(2025, 3, 20, 14))
    assert out.campaigns == [("preview", 0, "sent")]
    (action,) = out.actions
    assert action.action_id == action_id("n", "campaign:preview", 1, 1, "send", 1)
    assert (action.journey_id, action.campaign, action.template_id) == (
        "campaign:preview",
        "preview",
        "preview_v1",
    )
    assert york.wake(ms(2025, 3, 21)).actions == []  # (never twice)
    assert york.wakeup is None


def test_a_customer_who_joins_within_the_window_is_scheduled_and_one_too_late_is_skipped() -> None:
    made, _ = logic(PREVIEW)
    early, late = Driver(made, key="e"), Driver(made, key="l")
    vip(early, ms(2025, 3, 20, 8), "Europe/Berlin")  # a VIP before its 10:00 (09:00 UTC)
    assert early.wakeup == ms(2025, 3, 20, 9)
    out = late.event("profile.updated", ms(2025, 3, 20, 12), {"tier": "gold", "timezone": "Europe/Berlin"})
    assert out.campaigns == [("preview", 0, "late")]  # 10:00 + 2 h delivery window passed
    assert late.wakeup is None


def test_a_member_who_left_the_audience_by_the_send_time_gets_nothing() -> None:
    made, _ = logic(PREVIEW)
    d = Driver(made, key="c")
    vip(d, ms(2025, 3, 20, 7), "Europe/Berlin")
    d.event("profile.updated", ms(2025, 3, 20, 8), {"tier": "silver"})
    out = d.wake(ms(2025, 3, 20, 9))
    assert out.campaigns == [("preview", 0, "left")]
    assert out.actions == []


def test_paused_members_wait_and_go_out_when_active_again_cancelled_ones_never() -> None:
    made, campaigns = logic(PREVIEW)
    d, c = Driver(made, key="p"), Driver(made, key="q")
    for x in (d, c):
        vip(x, ms(2025, 3, 20, 7), "Europe/Berlin")
    campaigns.set_status("preview", "paused", ms(2025, 3, 20, 8))
    assert d.wake(ms(2025, 3, 20, 9)).actions == []
    assert d.state is not None
    assert d.state.campaigns["preview"][2] == "paused"
    campaigns.set_status("preview", "active", ms(2025, 3, 20, 10))
    out = d.wake(ms(2025, 3, 20, 10))  # (within 10:00 + 2 h: sent now)
    assert [a.template_id for a in out.actions] == ["preview_v1"]
    # the resume is a release: a member woken only later was looked at as of 10:00, and sent then
    out = c.wake(ms(2025, 3, 20, 11))
    assert [(a.template_id, a.created_at) for a in out.actions] == [
        ("preview_v1", datetime(2025, 3, 20, 10, tzinfo=UTC))
    ]

    made, campaigns = logic(PREVIEW)
    e = Driver(made, key="r")
    vip(e, ms(2025, 3, 20, 7), "Europe/Berlin")
    campaigns.set_status("preview", "paused", ms(2025, 3, 20, 8))
    campaigns.set_status("preview", "cancelled", ms(2025, 3, 20, 9, 30))
    out = e.wake(ms(2025, 3, 20, 11))  # (paused at its 10:00 Berlin, then cancelled before it was sent)
    assert out.actions == []
    assert e.state is not None
    assert e.state.campaigns["preview"][2] == "paused"
    campaigns.set_status("preview", "active", ms(2025, 3, 20, 11, 30))
    # active again at 11:30, a release: past 10:00 Berlin (09:00 UTC) plus the two-hour window: late
    assert e.wake(ms(2025, 3, 20, 12)).actions == []
    assert e.state.campaigns["preview"][2] == "late"


def test_a_campaign_can_enter_members_into_a_journey() -> None:
    text = PREVIEW.replace(
        "send: {channel: email, template: preview_v1, category: transactional}", "journey: welcome_back"
    )
    made, _ = logic(text, journeys=(WELCOME_BACK,))
    d = Driver(made, key="j")
    vip(d, ms(2025, 3, 20, 7), "Europe/Berlin")
    out = d.wake(ms(2025, 3, 20, 9))
    assert out.campaigns == [("preview", 0, "entered")]
    assert [a.template_id for a in out.actions] == ["back_v1"]
    assert ("entered", None, "campaign preview") in d.kinds()


def test_a_weekly_campaign_goes_out_on_each_occurrence_with_its_own_id() -> None:
    weekly = PREVIEW.replace("default_timezone: Europe/Berlin}", "every: 7d, occurrences: 3}")
    made, _ = logic(weekly)
    d = Driver(made, key="w")
    vip(d, ms(2025, 3, 10), "UTC")
    ids = []
    for day in (20, 27):
        d.wake(ms(2025, 3, day - 1, 20))
        out = d.wake(ms(2025, 3, day, 10))
        ids += [a.action_id for a in out.actions]
    assert ids == [action_id("w", "campaign:preview", 1, n, "send", 1) for n in (1, 2)]
    assert d.state is not None
    stored = CustomerState.from_dict(d.state.to_dict()).campaigns
    assert stored == {"preview": [1, 0, "sent", 1]}


def test_a_daily_campaign_far_west_sends_every_occurrence() -> None:
    """Two occurrences' release windows overlap (26 h + the delivery window > a day): the next one waits
    for the one still due instead of replacing it (Pacific/Pago_Pago, UTC-11)."""
    daily = PREVIEW.replace("default_timezone: Europe/Berlin}", "every: 1d, occurrences: 3}")
    made, _ = logic(daily)
    d = Driver(made, key="far")
    vip(d, ms(2025, 3, 19), "Pacific/Pago_Pago")
    sent = []
    for hour in range(0, 4 * 24, 3):  # wake-ups every 3 h over four days, and every due time
        at = ms(2025, 3, 19) + hour * H
        while d.wakeup is not None and d.wakeup <= at:
            sent += [a.created_at.isoformat() for a in d.wake(d.wakeup).actions]
        sent += [a.created_at.isoformat() for a in d.wake(at).actions]
    assert sent == ["2025-03-20T21:00:00+00:00", "2025-03-21T21:00:00+00:00", "2025-03-22T21:00:00+00:00"]


def test_an_event_arriving_late_does_not_send_past_the_window() -> None:
    at_ten = PREVIEW.replace(
        'schedule: {date: 2025-03-20, local_time: "10:00", default_timezone: Europe/Berlin}',
        "schedule: {at: 2025-03-20T10:00:00Z}",
    )
    made, _ = logic(at_ten)
    d = Driver(made, key="slow")
    out = d.event(
        "profile.updated",
        ms(2025, 3, 20, 10, 30),
        {"tier": "gold"},
        email="s@x.io",
        now_ms=ms(2025, 3, 20, 15),
    )
    assert out.actions == []  # (dated 10:30, but the worker's clock is 15:00: past 10:00 + 2 h)


def test_a_merge_keeps_the_campaign_handled_so_it_is_not_sent_twice() -> None:
    made, _ = logic(PREVIEW)
    a, b = Driver(made, key="a"), Driver(made, key="b")
    vip(a, ms(2025, 3, 10), "Europe/Berlin")
    vip(b, ms(2025, 3, 20, 7), "Europe/Berlin")
    assert [x.template_id for x in b.wake(ms(2025, 3, 20, 9)).actions] == ["preview_v1"]
    merged = made.on_merge("a", a.state, b.state, ms(2025, 3, 20, 9, 30))
    assert merged.state is not None
    assert merged.state.campaigns["preview"][2] == "sent"
    after = made.on_wakeup("a", merged.state, ms(2025, 3, 20, 10))
    assert after.actions == []


AT_TEN = PREVIEW.replace(
    'schedule: {date: 2025-03-20, local_time: "10:00", default_timezone: Europe/Berlin}',
    "schedule: {at: 2025-03-20T10:00:00Z}",
)


def test_a_release_is_a_timer_of_the_customer_the_wake_up_may_come_late() -> None:
    """The workers wake every member up when a release starts, but a member's next event may be applied
    before that wake-up: either way the member is looked at as of the release, and gets the same send."""
    woken_made, _ = logic(AT_TEN)
    late_made, _ = logic(AT_TEN)
    woken, late = Driver(woken_made, key="m"), Driver(late_made, key="m")
    for x in (woken, late):
        vip(x, ms(2025, 3, 20, 7))
    woken.wake(ms(2025, 3, 20, 10))  # (the scan's wake-up, on time)
    woken.event("page.viewed", ms(2025, 3, 20, 10, 30))
    late.event("page.viewed", ms(2025, 3, 20, 10, 30))  # (applied before the scan's wake-up came)
    late.wake(ms(2025, 3, 20, 10, 45))  # (the scan's wake-up: nothing left to do)
    assert [(a.action_id, a.created_at) for a in late.actions] == [
        (a.action_id, a.created_at) for a in woken.actions
    ]
    assert [a.created_at for a in late.actions] == [datetime(2025, 3, 20, 10, tzinfo=UTC)]


def test_a_member_who_enters_the_audience_by_time_is_scheduled_at_that_time_in_one_wake_up() -> None:
    """A segment that changes as time passes: the entry found by a wake-up that fires several timers at
    once schedules the campaign at the entry's time (as one wake-up per timer would)."""
    quiet = "kind: segment\nid: vip\nversion: 1\ncondition: \"count('page.viewed', duration('1h')) == 0\"\n"
    segments = SegmentRegistry()
    segments.deploy(load_segment_text(quiet), 0)
    campaigns = CampaignRegistry()
    campaigns.deploy(load_campaign_text(AT_TEN.replace("deliver_within: 2h", "deliver_within: 6h")), 0)
    made = CustomerLogic(registry_of(), segments=segments, campaigns=campaigns)
    one, each = Driver(made, key="x"), Driver(made, key="x")
    for x in (one, each):
        x.event("page.viewed", ms(2025, 3, 20, 10, 30), email="x@x.io")  # (in the segment again at 11:30)
    entered = ms(2025, 3, 20, 11, 30) + 1  # (the view is out of the hour)
    assert each.wakeup == entered
    each.wake(entered)
    each.wake(ms(2025, 3, 20, 13))
    one.wake(ms(2025, 3, 20, 13))
    assert [a.created_at for a in one.actions] == [datetime(2025, 3, 20, 11, 30, 0, 1000, tzinfo=UTC)]
    assert [a.created_at for a in one.actions] == [a.created_at for a in each.actions]


def test_releases_are_each_occurrences_start_and_each_deployment_within_a_window() -> None:
    campaigns = CampaignRegistry()
    campaigns.deploy(load_campaign_text(AT_TEN), 0)
    campaigns.set_status("preview", "paused", ms(2025, 3, 20, 10, 30))
    campaigns.set_status("preview", "active", ms(2025, 3, 20, 11))
    campaigns.set_status("preview", "active", ms(2025, 3, 21))  # (after the window: no release)
    assert [(r.at_ms, r.occurrence, r.segment) for r in campaigns.releases()] == [
        (ms(2025, 3, 20, 10), 0, "vip"),
        (ms(2025, 3, 20, 10, 30), 0, "vip"),
        (ms(2025, 3, 20, 11), 0, "vip"),
    ]
    assert campaigns.release_times(ms(2025, 3, 20, 10), ms(2025, 3, 20, 11)) == [
        ms(2025, 3, 20, 10, 30),
        ms(2025, 3, 20, 11),
    ]
    assert campaigns.releases()[0].key == f"preview@1#0@{ms(2025, 3, 20, 10)}"


def test_a_member_is_woken_up_at_the_next_release_a_non_member_is_not() -> None:
    """A member's next wake-up is the campaign's next release after its clock: a worker that released
    the partition before the member's events were applied (so did not find it a member) still has the
    member looked at as of the release, by its own timer."""
    made, _ = logic(AT_TEN)
    member, other = Driver(made, key="m"), Driver(made, key="o")
    vip(member, ms(2025, 3, 20, 7))
    other.event("page.viewed", ms(2025, 3, 20, 7), email="o@x.io")
    assert member.wakeup == ms(2025, 3, 20, 10)
    assert other.wakeup is None
    member.wake(ms(2025, 3, 20, 10, 5))  # (the timer: the release, and the send at 10:00)
    assert [a.created_at for a in member.actions] == [datetime(2025, 3, 20, 10, tzinfo=UTC)]
    assert member.wakeup is None
