"""Conditions see the profile as it is when they run, and only what they read is made."""

from __future__ import annotations

from collections.abc import Callable

from conftest import T0, Driver, H, registry_of
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.cel import compile_condition
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.run import Run
from orchestrator.core.policy import Policy, PolicyRegistry, load_policy_text

# A timer whose branch reads the profile, and a journey entered by a profile attribute.
NUDGE = """
id: nudge
version: 1
name: Nudge
entry: {event: page.viewed}
steps:
  wait: {type: wait, duration: 1h, next: check}
  check:
    type: branch
    branches:
      - when: profile.tier == "gold"
        next: gold
    default: done
  gold: {type: send, channel: email, category: transactional, template: gold_nudge}
  done: {type: exit, reason: not_gold}
"""
VIP = """
id: vip
version: 1
name: VIP
entry:
  event: profile.updated
  condition: profile.tier == "gold"
steps:
  hello: {type: send, channel: email, category: transactional, template: vip_hello}
"""


def test_a_condition_after_the_event_sees_the_profile_the_event_changed(drive: Callable[..., Driver]) -> None:
    d = drive(NUDGE, VIP)
    d.event("page.viewed", T0, email="c1@example.com")
    # the nudge's timer fires first in this call (its branch makes a view of the profile: no tier),
    # then the profile update, then the VIP entry condition: it must see the new tier
    d.event("profile.updated", T0 + 2 * H, {"attributes": {"tier": "gold"}})
    assert d.templates() == ["vip_hello"]


def test_the_fields_a_condition_reads() -> None:
    assert compile_condition('profile.consent.sms.marketing && profile.phone != ""').fields_read(
        "profile"
    ) == {
        "consent",
        "phone",
    }
    assert compile_condition("profile.engagement.email.opened > 1").fields_read("profile") == {"engagement"}
    # used as a whole: any field may be read
    assert compile_condition("has(profile.engagement)").fields_read("profile") is None
    assert compile_condition("size(profile) > 2").fields_read("profile") is None
    assert compile_condition('event.type == "a.b"').fields_read("profile") is None


GROUPS = """\
kind: policy
id: groups
version: {version}
subscription_groups:
  - {{id: news, channel: email, default: {default}}}
"""


def groups_policy(default: str = "opt_out", version: int = 1) -> Policy:
    return load_policy_text(GROUPS.format(version=version, default=default), f"p{version}.yaml")


# Two journeys on one event: one asks the condition, the other sends to the group through the policy.
ASKS = """
id: asks
version: 1
entry: {event: news.go, condition: profile.subscriptions.news}
re_entry: {policy: always}
steps:
  say: {type: send, channel: email, category: transactional, template: condition_says_in}
"""
SENDS = """
id: sends
version: 1
entry: {event: news.go}
re_entry: {policy: always}
steps:
  mail: {type: send, channel: email, template: news, subscription_group: news}
"""


def test_conditions_read_subscriptions_as_a_field() -> None:
    assert compile_condition("profile.subscriptions.news").fields_read("profile") == {"subscriptions"}
    assert compile_condition('has(profile.subscriptions.tips) && profile.tier == "a"').fields_read(
        "profile"
    ) == {"subscriptions", "tier"}


def test_the_view_has_the_policys_groups_and_the_choices_it_does_not_define(
    drive: Callable[..., Driver],
) -> None:
    d = drive(ASKS, policy=groups_policy())
    d.event("profile.updated", T0, {"email": "a@example.com"})
    d.event("consent.changed", T0, {"channel": "email", "granted": True})
    d.event("subscription.changed", T0, {"group": "tips", "subscribed": True})
    assert d.state is not None
    journey = registry_of(ASKS).current("asks", T0)
    assert journey is not None
    view = Run("c1", d.state, d.logic.policies).activation({}, T0, None, journey)["profile"]
    assert view["subscriptions"] == {"news": True, "tips": True}
    run = Run("c1", d.state, d.logic.policies)
    lite = run.activation({}, T0, None, journey, frozenset({"profile"}), frozenset({"email"}))["profile"]
    assert "subscriptions" not in lite  # not made for a condition that does not read it


def test_a_condition_sees_the_groups_of_the_policy_in_effect_at_its_time(
    drive: Callable[..., Driver],
) -> None:
    later = """
id: later
version: 1
entry: {event: news.go}
steps:
  pause: {type: wait, duration: 2h, next: check}
  check:
    type: branch
    branches:
      - {when: profile.subscriptions.news, next: in_group}
    default: out_of_group
  in_group: {type: send, channel: email, category: transactional, template: in_news}
  out_of_group: {type: send, channel: email, category: transactional, template: not_in_news}
"""
    book = PolicyRegistry(groups_policy("opt_out"), 0)
    book.deploy(groups_policy("opt_in", version=2), T0 + H)
    d = drive(ASKS, later, policy=book)
    d.event("profile.updated", T0, {"email": "a@example.com"})
    d.event("consent.changed", T0, {"channel": "email", "granted": True})
    d.event("news.go", T0 + 1)  # opt_out then: in
    d.wake(T0 + 3 * H)  # opt_in by the time the wait ends, never subscribed: out
    assert d.templates() == ["condition_says_in", "not_in_news"]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["opt_in", "opt_out"]),
    st.sampled_from([None, True, False]),
    st.booleans(),
)
def test_conditions_and_the_policy_agree_on_membership(
    default: str, choice: bool | None, consent: bool
) -> None:
    d = Driver(CustomerLogic(registry_of(ASKS, SENDS), policy=groups_policy(default)))
    d.event("profile.updated", T0, {"email": "a@example.com"})
    d.event("consent.changed", T0, {"channel": "email", "granted": consent})
    if choice is not None:
        d.event("subscription.changed", T0, {"group": "news", "subscribed": choice})
    d.event("news.go", T0 + 1)
    asked = "condition_says_in" in d.templates()
    assert asked == ("news" in d.templates())
    assert asked == (consent and (choice if choice is not None else default == "opt_out"))
    d.event("subscription.changed", T0 + 2, {"group": "news", "subscribed": not asked})
    d.event("news.go", T0 + 3)  # the change is seen at once by both
    assert d.templates().count("condition_says_in") == d.templates().count("news")
