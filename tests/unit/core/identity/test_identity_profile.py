"""The profile's engagement summary (windows, hour of week, campaigns) and the profile merge rules."""

from __future__ import annotations

from identity_helpers import T0, D, H, event

from orchestrator.core.identity import merge_profiles
from orchestrator.core.profile import ACTIVITY_DAYS, SUBSCRIPTIONS_KEPT, Profile, apply_event, hour_of_week

C = {"customer_id": "C"}


def opened(p: Profile, at: int, campaign: str = "spring") -> None:
    e = event("email.opened", at, C).model_copy(update={"campaign": campaign})
    apply_event(p, e)


def test_hour_of_week_starts_monday_utc() -> None:
    assert hour_of_week(T0) == 9  # 2025-03-03 was a Monday; T0 is 09:00 UTC
    assert hour_of_week(T0 + 6 * D + 14 * H) == 167


def test_engagement_windows_hour_of_week_and_campaigns() -> None:
    p = Profile("C")
    opened(p, T0 - 21 * D)
    opened(p, T0 - 7 * D, "autumn")
    opened(p, T0)
    apply_event(p, event("email.clicked", T0 + H, C))
    view = p.cel_view()["engagement"]
    assert (view["email"]["opened_1d"], view["email"]["opened_7d"], view["email"]["opened_30d"]) == (1, 1, 3)
    assert view["email"]["clicked_1d"] == 1
    assert view["email"]["hour_of_week"][9] == 3  # every open at 09:00 on a Monday
    assert view["email"]["hour_of_week"][10] == 1
    assert sum(view["sms"]["hour_of_week"]) == 0
    assert view["campaigns"]["autumn"] == {"last_opened_ms": T0 - 7 * D}
    again = Profile.from_dict(p.to_dict())
    assert again.cel_view() == p.cel_view()


def test_every_receipt_type_is_counted_per_channel_and_campaign() -> None:
    """The receipts connectors report (docs/connectors.md, "Receipts"), failures and push deliveries too."""
    p = Profile("C")
    for n, kind in enumerate(["sms.delivered", "sms.failed", "sms.failed", "push.delivered", "push.opened"]):
        apply_event(p, event(kind, T0 + n * H, C).model_copy(update={"campaign": "spring"}))
    view = p.cel_view()["engagement"]
    sms = view["sms"]
    assert (sms["delivered"], sms["failed"], sms["last_failed_ms"]) == (1, 2, T0 + 2 * H)
    assert (view["push"]["delivered"], view["push"]["opened"], view["push"]["opened_1d"]) == (1, 1, 1)
    assert view["campaigns"]["spring"]["last_failed_ms"] == T0 + 2 * H
    assert sum(view["sms"]["hour_of_week"]) == 0  # deliveries and failures are no activity of the customer


def test_per_day_counts_are_bounded() -> None:
    p = Profile("C")
    for day in range(3 * ACTIVITY_DAYS):
        opened(p, T0 + day * D)
    assert len(p.activity["email.opened"]) == ACTIVITY_DAYS
    opened(p, T0)  # far too old for the windows: not counted per day
    assert len(p.activity["email.opened"]) == ACTIVITY_DAYS
    assert p.cel_view()["engagement"]["email"]["opened_30d"] == ACTIVITY_DAYS


def test_merge_profiles_rules() -> None:
    known = Profile("C", attributes={"tier": "gold"}, addresses={"email": "known@x.io"})
    known.consent = {"email": {"marketing": True}, "sms": {"marketing": True}}
    anon = Profile(
        "anonymous_id:a", attributes={"tier": "silver", "cart": 2}, addresses={"email": "a@x.io", "sms": "+1"}
    )
    anon.timezone, anon.timezone_known = "Europe/Paris", True
    anon.consent = {"email": {"marketing": False}, "push": {"marketing": True}}
    opened(anon, T0)
    opened(known, T0 + H)
    merged = merge_profiles(known, anon)
    assert merged.attributes == {"tier": "gold", "cart": 2}
    assert merged.addresses == {"email": "known@x.io", "sms": "+1"}
    assert merged.timezone == "Europe/Paris"
    assert merged.consent == {
        "email": {"marketing": False},  # both answered, differently: the stricter wins
        "sms": {"marketing": True},
        "push": {"marketing": True},
    }
    assert merged.engagement["email.opened"] == [2, T0 + H]
    assert merged.cel_view()["engagement"]["email"]["opened_1d"] == 2
    assert merged.cel_view()["engagement"]["email"]["hour_of_week"][9:11] == [1, 1]
    assert [h["at_ms"] for h in merged.history] == [T0, T0 + H]


def test_merge_keeps_the_latest_subscription_choice_per_group() -> None:
    known = Profile("C")
    anon = Profile("anonymous_id:a")
    known.subscriptions = {"news": [True, T0], "offers": [False, T0 + H], "tips": [True, T0]}
    anon.subscriptions = {
        "news": [False, T0 + H],
        "offers": [True, T0],
        "alerts": [True, T0],
        "tips": [False, T0],
    }
    merged = merge_profiles(known, anon)
    assert merged.subscriptions == {
        "news": [False, T0 + H],  # the other side chose later
        "offers": [False, T0 + H],  # the canonical side chose later
        "tips": [False, T0],  # at the same time: unsubscribed
        "alerts": [True, T0],  # only on the other side
    }


def test_merged_subscription_choices_stay_bounded() -> None:
    known = Profile("C")
    anon = Profile("anonymous_id:a")
    known.subscriptions = {f"k{i}": [True, T0 + 2 * i] for i in range(SUBSCRIPTIONS_KEPT)}
    anon.subscriptions = {f"a{i}": [True, T0 + 2 * i + 1] for i in range(SUBSCRIPTIONS_KEPT)}
    merged = merge_profiles(known, anon)
    assert len(merged.subscriptions) == SUBSCRIPTIONS_KEPT
    assert min(at for _, at in merged.subscriptions.values()) == T0 + SUBSCRIPTIONS_KEPT  # the newest kept
