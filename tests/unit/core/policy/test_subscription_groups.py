"""Subscription groups: the membership rule, and the policy's verdicts on sends that name a group."""

from __future__ import annotations

import pytest
from policy_helpers import T0, Customer, D, H, ms, policy, registry, send_journey

from orchestrator.contracts import DECISION_REASONS
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.policy import PolicyRegistry, SubscriptionGroup, load_policy_text
from orchestrator.core.policy.subscriptions import is_subscribed, subscriptions_view
from orchestrator.core.profile import Profile

GROUPS = """\
subscription_groups:
  - {id: news, channel: email, default: opt_out}
  - {id: offers, channel: email, default: opt_in}
  - {id: texts, channel: sms, default: opt_in}
"""

# (default, explicit choice, marketing consent on the channel) -> in the group?
MEMBERSHIP = [
    ("opt_in", None, False, False),
    ("opt_in", None, True, False),
    ("opt_in", True, False, False),  # consent comes first
    ("opt_in", True, True, True),
    ("opt_in", False, False, False),
    ("opt_in", False, True, False),
    ("opt_out", None, False, False),  # the default applies only among customers with consent
    ("opt_out", None, True, True),
    ("opt_out", True, False, False),
    ("opt_out", True, True, True),
    ("opt_out", False, False, False),
    ("opt_out", False, True, False),  # an explicit unsubscribe always wins
]


@pytest.mark.parametrize(("default", "choice", "consent", "member"), MEMBERSHIP)
def test_the_membership_rule(default: str, choice: bool | None, consent: bool, member: bool) -> None:
    group = SubscriptionGroup(id="news", channel="email", default=default)  # type: ignore[arg-type]
    p = Profile("c1", consent={"email": {"marketing": consent}})
    if choice is not None:
        p.subscriptions["news"] = [choice, T0]
    assert is_subscribed(p, group) is member
    p.consent["sms"] = {"marketing": not consent}  # consent on another channel does not count
    assert is_subscribed(p, group) is member


def test_the_category_of_the_send_decides_which_consent_counts() -> None:
    group = SubscriptionGroup(id="orders", channel="sms", default="opt_out")
    p = Profile("c1")  # never said: no marketing, yes transactional
    assert not is_subscribed(p, group)
    assert is_subscribed(p, group, "transactional")
    p.subscriptions["orders"] = [False, T0]
    assert not is_subscribed(p, group, "transactional")


def test_the_view_conditions_read() -> None:
    p = Profile("c1", consent={"email": {"marketing": True}})
    p.subscriptions = {"offers": [True, T0], "retired": [False, T0], "kept": [True, T0]}
    assert subscriptions_view(p, policy(GROUPS)) == {
        "news": True,  # opt_out, with consent
        "offers": True,
        "texts": False,  # no sms consent
        "retired": False,  # not a group of the policy: the choice as given
        "kept": True,
    }
    assert subscriptions_view(p, None) == {"offers": True, "retired": False, "kept": True}


def test_a_send_outside_its_group_is_suppressed_and_says_which_group() -> None:
    reg = registry(
        send_journey("news", "news.go", "email", group="news"),
        send_journey("offer", "offer.go", "email", group="offers"),
    )
    c = Customer.of(reg, policy(GROUPS))
    c.reachable(T0, "email")
    c.on("news.go", T0 + 1)  # opt_out: in by default
    c.on("offer.go", T0 + 2)  # opt_in: never subscribed
    assert [a.journey_id for a in c.actions] == ["news"]
    assert c.verdicts() == [("sent", "allowed", "email"), ("suppressed", "not_subscribed", "email")]
    refused = c.decisions[-1]
    assert refused.rule == "offers"
    assert refused.detail == "not in subscription group offers (email): an opt_in group, never subscribed"
    c.on("subscription.changed", T0 + H, {"group": "offers", "subscribed": True})
    c.on("subscription.changed", T0 + H, {"group": "news", "status": "unsubscribed"})
    c.on("offer.go", T0 + 2 * H)
    c.on("news.go", T0 + 2 * H)
    assert [a.journey_id for a in c.actions] == ["news", "offer"]
    assert c.decisions[-1].reason == "not_subscribed"
    assert c.decisions[-1].detail == "not in subscription group news (email): unsubscribed"
    assert {d.reason for d in c.decisions} <= set(DECISION_REASONS)


def test_consent_comes_first_for_an_opt_out_group() -> None:
    c = Customer.of(registry(send_journey("news", "news.go", "email", group="news")), policy(GROUPS))
    c.profile(T0, email="a@example.com")
    c.on("news.go", T0 + 1)
    assert c.verdicts() == [("suppressed", "no_consent", "email")]


def test_a_group_the_policy_does_not_define_suppresses_the_send() -> None:
    reg = registry(
        send_journey("gone", "gone.go", "email", group="tips"),
        send_journey("wrong", "wrong.go", "email", group="texts"),
    )
    c = Customer.of(reg, policy(GROUPS))
    c.reachable(T0, "email", "sms")
    c.on("subscription.changed", T0, {"group": "texts", "subscribed": True})
    c.on("gone.go", T0 + 1)
    c.on("wrong.go", T0 + 2)
    assert c.actions == []
    assert c.verdicts() == [("suppressed", "unknown_subscription_group", "email")] * 2
    assert c.decisions[0].detail == "subscription group tips is not defined in policy test@1"
    assert c.decisions[1].detail == "subscription group texts is a group of sms, not email in policy test@1"


def test_a_send_naming_a_group_does_not_fall_back_to_another_channel() -> None:
    reg = registry(
        send_journey("texted", "texted.go", "sms", group="texts"),
        send_journey("plain", "plain.go", "sms"),
    )
    c = Customer.of(reg, policy(GROUPS + "fallback: {sms: [email]}\n"))
    c.reachable(T0, "email")
    c.profile(T0, phone="+15550001")  # an address, but no sms consent
    c.on("subscription.changed", T0, {"group": "texts", "subscribed": True})
    c.on("texted.go", T0 + 1)
    c.on("plain.go", T0 + 2)
    assert c.verdicts() == [("suppressed", "no_consent", "sms"), ("redirected", "no_consent", "email")]
    assert [a.journey_id for a in c.actions] == ["plain"]


def test_a_held_send_is_judged_again_with_its_group_at_release() -> None:
    quiet = 'quiet_hours: {start: "21:00", end: "08:00", channels: [sms], action: hold}\n'
    c = Customer.of(registry(send_journey("a", "a.go", "sms", group="texts")), policy(GROUPS + quiet))
    at = ms("2025-03-04T23:00:00Z")
    c.reachable(at - H, "sms")
    c.on("subscription.changed", at - H, {"group": "texts", "subscribed": True})
    c.on("a.go", at)
    assert c.verdicts() == [("held", "quiet_hours", "sms")]
    assert c.state is not None
    (held,) = c.state.held
    assert held.subscription_group == "texts"
    stored = c.state.to_dict()
    assert stored["hs"][0]["sg"] == "texts"
    c.state = CustomerState.from_dict(stored, copy=False)
    c.on("subscription.changed", at + H, {"group": "texts", "subscribed": False})
    c.wake(ms("2025-03-05T08:00:00Z"))
    assert c.actions == []
    assert c.verdicts()[-1] == ("suppressed", "not_subscribed", "sms")


def test_a_held_send_is_released_when_still_in_the_group() -> None:
    quiet = 'quiet_hours: {start: "21:00", end: "08:00", channels: [sms], action: hold}\n'
    c = Customer.of(registry(send_journey("a", "a.go", "sms", group="texts")), policy(GROUPS + quiet))
    at = ms("2025-03-04T23:00:00Z")
    c.reachable(at - H, "sms")
    c.on("subscription.changed", at - H, {"group": "texts", "subscribed": True})
    c.on("a.go", at)
    c.wake(ms("2025-03-05T08:00:00Z"))
    assert c.verdicts() == [("held", "quiet_hours", "sms"), ("sent", "released", "sms")]


def test_a_late_older_choice_does_not_override_a_newer_one_for_the_gate() -> None:
    c = Customer.of(registry(send_journey("a", "a.go", "email", group="offers")), policy(GROUPS))
    c.reachable(T0, "email")
    c.on("subscription.changed", T0 + 2 * H, {"group": "offers", "subscribed": False})
    c.on("subscription.changed", T0 + H, {"group": "offers", "subscribed": True})  # older, arrives late
    c.on("a.go", T0 + 3 * H)
    assert c.verdicts() == [("suppressed", "not_subscribed", "email")]


def test_the_policy_in_force_at_the_send_defines_the_groups() -> None:
    opt_out = GROUPS.replace(
        "{id: offers, channel: email, default: opt_in}", "{id: offers, channel: email, default: opt_out}"
    )
    book = PolicyRegistry(policy(GROUPS), T0)
    book.deploy(load_policy_text("kind: policy\nid: test\nversion: 2\n" + opt_out, "p2.yaml"), T0 + D)
    book.deploy(load_policy_text("kind: policy\nid: test\nversion: 3\n", "p3.yaml"), T0 + 2 * D)
    c = Customer.of(registry(send_journey("a", "a.go", "email", group="offers")), book)
    c.reachable(T0, "email")
    c.on("a.go", T0 + H)
    c.on("a.go", T0 + D + H)
    c.on("a.go", T0 + 2 * D + H)
    assert c.verdicts() == [
        ("suppressed", "not_subscribed", "email"),
        ("sent", "allowed", "email"),
        ("suppressed", "unknown_subscription_group", "email"),
    ]


def test_without_a_policy_the_group_is_not_checked() -> None:
    c = Customer.of(registry(send_journey("a", "a.go", "email", group="offers")), None)
    c.profile(T0, email="a@example.com")
    c.on("a.go", T0 + 1)
    assert c.verdicts() == [("sent", "no_policy", "email")]
