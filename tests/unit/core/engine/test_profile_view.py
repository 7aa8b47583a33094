"""Conditions see the profile as it is when they run, and only what they read is made."""

from __future__ import annotations

from collections.abc import Callable

from conftest import T0, Driver, H

from orchestrator.core.cel import compile_condition

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
