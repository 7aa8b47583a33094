"""Profile addresses, consent and bounded history; condition-only exit rules; history in conditions."""

from __future__ import annotations

from collections.abc import Callable

from conftest import T0, Driver, H, make_event

from orchestrator.core.profile import Profile, apply_event

Make = Callable[..., Driver]


def test_addresses_from_identifiers_and_profile_updates() -> None:
    p = Profile("c1")
    apply_event(p, make_event("page.viewed", T0, email="a@x.io", phone="+1555"))
    apply_event(
        p,
        make_event(
            "profile.updated", T0 + 1, props={"push_token": "tok", "email": "new@x.io", "plan": "pro"}
        ),
    )
    assert p.addresses == {"email": "new@x.io", "sms": "+1555", "push": "tok"}
    assert p.attributes == {"plan": "pro"}
    apply_event(p, make_event("profile.updated", T0 + 2, props={"push_token": None}))
    assert "push" not in p.addresses


def test_consent_per_channel_and_category_with_defaults() -> None:
    p = Profile("c1")
    assert not p.has_consent("sms", "marketing")
    assert p.has_consent("sms", "transactional")
    apply_event(p, make_event("consent.changed", T0, props={"channel": "sms", "granted": True}))
    apply_event(
        p,
        make_event(
            "consent.changed",
            T0 + 1,
            props={"channel": "all", "category": "transactional", "status": "revoked"},
        ),
    )
    assert p.has_consent("sms", "marketing")
    assert not p.has_consent("email", "transactional")
    assert p.cel_view()["consent"]["sms"] == {"marketing": True, "transactional": False}


def test_history_is_bounded_by_window_and_count_and_kept_in_time_order() -> None:
    p = Profile("c1")
    for i in range(10):
        apply_event(p, make_event("page.viewed", T0 + i * H), history_window_ms=5 * H, history_max=100)
    assert [h["at_ms"] for h in p.history] == [T0 + i * H for i in range(4, 10)]
    apply_event(
        p, make_event("email.opened", T0 + 8 * H + 1, campaign="c"), history_window_ms=5 * H, history_max=3
    )
    assert [h["type"] for h in p.history] == ["page.viewed", "email.opened", "page.viewed"]
    assert Profile.from_dict(p.to_dict()) == p


RULES = """
id: rules
version: 1
entry: {event: cart.updated}
exit_when:
  - name: went_quiet
    condition: 'has(profile.quiet) && profile.quiet == true'
goals:
  - name: engaged
    condition: 'count("page.viewed", duration("24h")) >= 3'
steps:
  hold: {type: wait, duration: 7d}
"""


def test_condition_only_exit_rule_is_checked_on_any_event(drive: Make) -> None:
    d = drive(RULES)
    d.event("cart.updated", T0, email="a@x.io")
    d.event("profile.updated", T0 + H, {"quiet": True})
    assert d.kinds()[-1] == ("exited", "hold", "went_quiet")


def test_goal_on_history_condition(drive: Make) -> None:
    d = drive(RULES)
    d.event("cart.updated", T0, email="a@x.io")
    for i in range(1, 4):
        d.event("page.viewed", T0 + i * H)
    assert d.kinds()[-1] == ("goal", "hold", "engaged")
