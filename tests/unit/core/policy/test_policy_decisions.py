"""The policy's rules, each through CustomerLogic (the one place both shells call), and their decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from policy_helpers import T0, Customer, D, H, ms, policy, registry, send_journey

from orchestrator.contracts import DECISION_REASONS
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.policy import PolicyRegistry, redirected_action_id

TWO_EMAILS = """\
id: drip
version: 1
entry: {event: drip.start}
steps:
  first: {type: send, channel: email, template: first, campaign: drip, next: pause}
  pause: {type: wait, duration: 1d, next: second}
  second: {type: send, channel: email, template: second, campaign: drip}
"""


def test_consent_revoked_mid_journey_stops_the_next_send() -> None:
    c = Customer.of(registry(TWO_EMAILS), policy())
    c.reachable(T0, "email")
    c.on("drip.start", T0)
    assert [a.template_id for a in c.actions] == ["first"]
    c.consent(T0 + H, "email", False)
    c.wake(T0 + D)
    assert [a.template_id for a in c.actions] == ["first"]
    assert c.verdicts() == [("sent", "allowed", "email"), ("suppressed", "no_consent", "email")]
    refused = c.decisions[-1]
    assert refused.step_id == "second"
    assert refused.journey_id == "drip"
    assert refused.at == datetime.fromtimestamp((T0 + D) / 1000, tz=UTC)


def test_no_marketing_send_without_consent_ever() -> None:
    c = Customer.of(registry(send_journey("a", "a.go", "sms")), policy())
    c.profile(T0, phone="+15550001")
    c.on("a.go", T0)
    assert c.actions == []
    assert c.verdicts() == [("suppressed", "no_consent", "sms")]


CAPS = """\
frequency_caps:
  - {name: sms_daily, channels: [sms], max: 1, per: 1d}
  - {name: weekly, max: 3, per: 7d}
"""


def test_caps_hold_across_two_journeys() -> None:
    reg = registry(send_journey("a", "a.go", "sms"), send_journey("b", "b.go", "sms"))
    c = Customer.of(reg, policy(CAPS))
    c.reachable(T0, "sms", "email")
    c.on("a.go", T0)
    c.on("b.go", T0 + H)
    assert [a.journey_id for a in c.actions] == ["a"]
    last = c.decisions[-1]
    assert (last.kind, last.reason, last.rule, last.journey_id) == (
        "suppressed",
        "frequency_cap",
        "sms_daily",
        "b",
    )
    c.on("b.go", T0 + D + 1)  # a rolling day later
    assert [a.journey_id for a in c.actions] == ["a", "b"]


def test_cross_channel_cap_counts_every_channel() -> None:
    reg = registry(send_journey("a", "a.go", "email"), send_journey("b", "b.go", "push"))
    c = Customer.of(reg, policy(CAPS))
    c.reachable(T0, "email", "push")
    for i in range(4):
        c.on("a.go" if i % 2 else "b.go", T0 + i * H)
    assert len(c.actions) == 3
    assert c.decisions[-1].rule == "weekly"


QUIET = """\
quiet_hours: {start: "21:00", end: "08:00", channels: [sms], action: hold}
"""


def test_quiet_hours_hold_until_local_morning_across_a_dst_change() -> None:
    """New York springs forward on 2025-03-09: 08:00 that morning is 12:00 UTC, not 13:00."""
    c = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(QUIET))
    at = ms("2025-03-09T03:00:00Z")  # 22:00 EST on the 8th
    c.reachable(at - H, "sms", timezone="America/New_York")
    c.on("a.go", at)
    assert c.actions == []
    held = c.decisions[-1]
    assert (held.kind, held.reason) == ("held", "quiet_hours")
    release = ms("2025-03-09T12:00:00Z")
    assert held.release_at == datetime.fromtimestamp(release / 1000, tz=UTC)
    assert c.wakeup == release
    c.wake(release - 1)
    assert c.actions == []
    c.wake(release)
    assert [a.action_id for a in c.actions] == [held.action_id]
    assert c.actions[0].created_at == datetime.fromtimestamp(release / 1000, tz=UTC)
    assert c.verdicts()[-1] == ("sent", "released", "sms")
    assert c.state is not None
    assert c.state.held == []
    assert c.wakeup is None


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Europe/Paris", ("held", "2025-03-04T07:00:00Z")),  # 04:00 local
        ("America/Los_Angeles", ("sent", None)),  # 19:00 the day before
        ("Asia/Tokyo", ("sent", None)),  # 12:00 local
    ],
)
def test_quiet_hours_are_in_each_customers_time_zone(zone: str, expected: tuple[str, str | None]) -> None:
    at = ms("2025-03-04T03:00:00Z")
    c = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(QUIET))
    c.reachable(at - H, "sms", timezone=zone)
    c.on("a.go", at)
    d = c.decisions[-1]
    kind, release = expected
    assert d.kind == kind
    if release is not None:
        assert d.release_at == datetime.fromisoformat(release.replace("Z", "+00:00"))


def test_quiet_hours_drop_per_policy() -> None:
    c = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(QUIET.replace("hold", "drop")))
    at = ms("2025-03-04T23:00:00Z")
    c.reachable(at - H, "sms")
    c.on("a.go", at)
    assert c.actions == []
    assert c.verdicts() == [("dropped", "quiet_hours", "sms")]
    assert c.wakeup is None


def test_release_rechecks_consent() -> None:
    c = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(QUIET))
    at = ms("2025-03-04T23:00:00Z")
    c.reachable(at - H, "sms")
    c.on("a.go", at)
    c.consent(at + H, "sms", False)
    c.wake(ms("2025-03-05T08:00:00Z"))
    assert c.actions == []
    assert [k for k, _, _ in c.verdicts()] == ["held", "suppressed"]
    assert c.decisions[-1].reason == "no_consent"


def test_release_rechecks_caps_and_an_event_after_release_time_releases_first() -> None:
    reg = registry(send_journey("a", "a.go", "sms"), send_journey("b", "b.go", "sms"))
    c = Customer.of(reg, policy(QUIET + CAPS))
    at = ms("2025-03-04T23:00:00Z")
    c.reachable(at - H, "sms")
    c.on("a.go", at)
    c.on("b.go", at + H)
    assert [d.kind for d in c.decisions] == ["held", "held"]
    c.on("page.viewed", ms("2025-03-05T09:00:00Z"))  # an event after the release fires it first
    assert [a.journey_id for a in c.actions] == ["a"]
    assert [(d.kind, d.reason) for d in c.decisions[2:]] == [
        ("sent", "released"),
        ("suppressed", "frequency_cap"),
    ]


def test_held_sends_survive_a_state_round_trip() -> None:
    c = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(QUIET))
    at = ms("2025-03-04T23:00:00Z")
    c.reachable(at - H, "sms")
    c.on("a.go", at)
    assert c.state is not None
    c.state = CustomerState.from_dict(c.state.to_dict())
    c.wake(ms("2025-03-05T08:00:00Z"))
    assert len(c.actions) == 1


ENGAGED = """\
engagement_suppression:
  - name: opened_email_skip_sms
    channels: [sms]
    events: [email.opened, email.clicked]
    within: 48h
"""


def _email_then_sms(open_campaign: str, open_at: int, sms_at: int) -> Customer:
    reg = registry(
        send_journey("mail", "mail.go", "email", campaign="spring"),
        send_journey("text", "text.go", "sms", campaign="spring"),
    )
    c = Customer.of(reg, policy(ENGAGED))
    c.reachable(T0, "email", "sms")
    c.on("mail.go", T0)
    c.on("email.opened", open_at, campaign=open_campaign, action_id=c.actions[0].action_id)
    c.on("text.go", sms_at)
    return c


def test_email_opened_so_no_sms_across_two_journeys() -> None:
    c = _email_then_sms("spring", T0 + H, T0 + 2 * H)
    assert [a.channel for a in c.actions] == ["email"]
    last = c.decisions[-1]
    assert (last.kind, last.reason, last.rule, last.journey_id) == (
        "suppressed",
        "engaged",
        "opened_email_skip_sms",
        "text",
    )
    assert "email.opened" in last.detail


def test_sms_goes_when_the_open_is_of_another_campaign_or_too_old() -> None:
    assert [a.channel for a in _email_then_sms("autumn", T0 + H, T0 + 2 * H).actions] == ["email", "sms"]
    assert [a.channel for a in _email_then_sms("spring", T0 + H, T0 + H + 49 * H).actions] == ["email", "sms"]


def test_transactional_is_not_capped_not_held_not_suppressed_by_engagement() -> None:
    reg = registry(
        send_journey("mk", "mk.go", "sms"),
        send_journey("tx", "tx.go", "sms", category="transactional", campaign="spring"),
        send_journey("mail", "mail.go", "email", campaign="spring"),
    )
    c = Customer.of(reg, policy(QUIET + CAPS + ENGAGED))
    day = ms("2025-03-04T12:00:00Z")
    c.reachable(day - H, "sms", "email")
    c.on("mk.go", day)  # uses the daily SMS cap
    c.on("mail.go", day)
    c.on("email.opened", day + 1, campaign="spring")
    c.on("tx.go", day + H)  # capped, engaged: still sent
    c.on("tx.go", ms("2025-03-04T23:30:00Z"))  # quiet hours: still sent
    assert [(a.journey_id, a.category) for a in c.actions].count(("tx", "transactional")) == 2
    tx = [d for d in c.decisions if d.journey_id == "tx"]
    assert [(d.kind, d.reason) for d in tx] == [("sent", "transactional")] * 2
    assert c.state is not None
    assert all(ch != "sms" or t != day + H for t, ch in c.state.sent_log)  # not counted


def test_transactional_still_needs_an_address_and_its_own_consent() -> None:
    reg = registry(send_journey("tx", "tx.go", "sms", category="transactional"))
    c = Customer.of(reg, policy())
    c.on("tx.go", T0)
    assert c.verdicts() == [("suppressed", "no_address", "sms")]
    c.profile(T0 + 1, phone="+15550001")
    c.on("tx.go", T0 + 2)  # transactional consent is granted unless revoked
    c.consent(T0 + 3, "sms", False, category="transactional")
    c.on("tx.go", T0 + 4)
    assert c.verdicts()[1:] == [("sent", "transactional", "sms"), ("suppressed", "no_consent", "sms")]


FALLBACK = "fallback: {sms: [push, email], push: [email]}\n"


def test_fallback_when_consent_is_missing_redirects_with_a_derived_id() -> None:
    c = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(FALLBACK))
    c.profile(T0, phone="+15550001", email="a@example.com")
    c.consent(T0, "email", True)  # no SMS consent, no push token
    c.on("a.go", T0)
    (action,) = c.actions
    d = c.decisions[-1]
    assert (d.kind, d.reason, d.original_channel, d.channel) == ("redirected", "no_consent", "sms", "email")
    assert action.channel == "email"
    assert action.recipient == "a@example.com"
    assert action.action_id == d.action_id == redirected_action_id(d.original_action_id, "email")
    assert "sms: no_consent" in d.detail
    assert "push: no_address" in d.detail


def test_fallback_when_the_address_is_missing_and_none_left() -> None:
    c = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(FALLBACK))
    c.reachable(T0, "push")
    c.on("a.go", T0)
    assert c.verdicts() == [("redirected", "no_address", "push")]
    c2 = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(FALLBACK))
    c2.on("a.go", T0)
    assert c2.verdicts() == [("suppressed", "no_address", "sms")]


def test_a_wait_for_the_open_of_a_redirected_send_matches_the_new_id() -> None:
    text = """\
id: w
version: 1
entry: {event: w.go}
steps:
  nudge: {type: send, channel: sms, template: t, next: wait}
  wait:
    type: wait
    until_event: {event: email.opened, of: nudge}
    timeout: {after: 1d}
    next: opened
  opened: {type: exit, reason: opened}
"""
    c = Customer.of(registry(text), policy(FALLBACK))
    c.reachable(T0, "email")
    out = c.on("w.go", T0)
    (action,) = out.actions
    done = c.on("email.opened", T0 + H, action_id=action.action_id)
    assert [(t.kind, t.reason) for t in done.transitions][-1] == ("exited", "opened")


def test_every_reason_is_documented() -> None:
    c = Customer.of(registry(TWO_EMAILS), policy(CAPS))
    c.reachable(T0, "email")
    c.on("drip.start", T0)
    assert {d.reason for d in c.decisions} <= set(DECISION_REASONS)


def test_without_a_policy_sends_go_out_as_made() -> None:
    c = Customer.of(registry(send_journey("a", "a.go", "sms")), None)
    c.profile(T0, phone="+15550001")
    c.on("a.go", T0)  # no consent: the journey's business, not the core's, without a policy
    assert c.verdicts() == [("sent", "no_policy", "sms")]
    assert c.decisions[0].policy is None


def test_a_policy_deployed_live_applies_from_its_time() -> None:
    book = PolicyRegistry()
    reg = registry(send_journey("a", "a.go", "sms"))
    c = Customer.of(reg, book)
    c.reachable(T0, "sms")
    c.on("a.go", T0)
    book.deploy(policy(CAPS), T0 + H)
    c.on("a.go", T0 + 2 * H)  # the send at T0 was before the policy: not in its log
    c.on("a.go", T0 + 3 * H)
    assert c.verdicts() == [
        ("sent", "no_policy", "sms"),
        ("sent", "allowed", "sms"),
        ("suppressed", "frequency_cap", "sms"),
    ]
    assert c.decisions[-1].policy == "test@1"
    book.withdraw(T0 + 4 * H)
    c.on("a.go", T0 + 5 * H)
    assert c.verdicts()[-1] == ("sent", "no_policy", "sms")


def test_quiet_hours_use_the_policys_default_zone_for_a_customer_with_none() -> None:
    """Issue 20: a customer who never gave a zone is not on UTC by mistake when the policy names one."""
    paris = QUIET.replace("action: hold}", "action: hold, default_timezone: Europe/Paris}")
    at = ms("2025-03-04T03:00:00Z")
    evening = ms("2025-03-04T20:30:00Z")  # 21:30 in Paris (quiet), 20:30 in UTC (not quiet)
    unknown = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(paris))
    unknown.profile(at - H, phone="+15550001")
    unknown.consent(at - H, "sms", True)
    unknown.on("a.go", evening)
    assert unknown.verdicts()[-1] == ("held", "quiet_hours", "sms")
    utc = Customer.of(registry(send_journey("a", "a.go", "sms")), policy(paris))
    utc.reachable(at - H, "sms", timezone="UTC")  # said UTC: UTC it is
    utc.on("a.go", evening)
    assert utc.verdicts()[-1] == ("sent", "allowed", "sms")
