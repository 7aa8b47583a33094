"""Subscription choices in the profile: per group, latest by event time, bounded, stored compactly."""

from __future__ import annotations

from typing import Any

from conftest import T0, H, make_event
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.engine.state import CustomerState
from orchestrator.core.profile import SUBSCRIPTIONS_KEPT, Profile, apply_event


def choose(p: Profile, at_ms: int, group: Any, **props: Any) -> None:
    apply_event(p, make_event("subscription.changed", at_ms, props={"group": group, **props}))


def test_unsubscribing_from_one_group_leaves_the_others() -> None:
    p = Profile("c1")
    choose(p, T0, "news", subscribed=True)
    choose(p, T0 + 1, "offers", status="subscribed")
    choose(p, T0 + 2, "news", status="unsubscribed")
    assert p.subscription_choice("news") is False
    assert p.subscription_choice("offers") is True
    assert p.subscription_choice("tips") is None
    assert p.subscriptions == {"news": [False, T0 + 2], "offers": [True, T0 + 1]}


def test_an_older_choice_arriving_late_does_not_override_a_newer_one() -> None:
    p = Profile("c1")
    choose(p, T0 + H, "news", subscribed=False)
    choose(p, T0, "news", subscribed=True)  # made before, arrives after
    assert p.subscription_choice("news") is False
    choose(p, T0 + 2 * H, "news", subscribed=True)
    assert p.subscription_choice("news") is True


def test_at_the_same_time_unsubscribed_wins_whatever_the_order() -> None:
    for first, second in ((True, False), (False, True)):
        p = Profile("c1")
        choose(p, T0, "news", subscribed=first)
        choose(p, T0, "news", subscribed=second)
        assert p.subscription_choice("news") is False


def test_events_that_say_nothing_clear_change_nothing() -> None:
    p = Profile("c1")
    choose(p, T0, "news")  # no choice
    choose(p, T0, "news", subscribed="yes")
    choose(p, T0, "news", status="maybe")
    choose(p, T0, "News Letter", subscribed=True)  # not a group id
    choose(p, T0, "x" * 65, subscribed=True)
    choose(p, T0, None, subscribed=True)
    apply_event(p, make_event("subscription.changed", T0, props={"subscribed": True}))
    assert p.subscriptions == {}
    assert "subscriptions" not in p.to_dict()  # nothing stored when there is no choice


def test_at_most_the_kept_number_of_groups_the_oldest_choice_let_go() -> None:
    p = Profile("c1")
    for i in range(SUBSCRIPTIONS_KEPT + 5):
        choose(p, T0 + i, f"g{i}", subscribed=True)
    assert len(p.subscriptions) == SUBSCRIPTIONS_KEPT
    assert set(p.subscriptions) == {f"g{i}" for i in range(5, SUBSCRIPTIONS_KEPT + 5)}
    choose(p, T0 - H, "ancient", subscribed=True)  # older than every kept choice: let go at once
    assert "ancient" not in p.subscriptions
    choose(p, T0 + 6, "g5", subscribed=False)  # a group already kept: nothing let go
    assert len(p.subscriptions) == SUBSCRIPTIONS_KEPT
    assert "g6" in p.subscriptions


def test_stored_state_round_trips_with_and_without_copy() -> None:
    state = CustomerState.new("c1")
    choose(state.profile, T0, "news", subscribed=True)
    choose(state.profile, T0 + 1, "offers", subscribed=False)
    stored = state.to_dict()
    assert stored["p"]["subscriptions"] == {"news": [True, T0], "offers": [False, T0 + 1]}
    assert CustomerState.from_dict(stored) == state
    assert CustomerState.from_dict(CustomerState.new("c1").to_dict(), copy=False) == CustomerState.new("c1")
    loose = CustomerState.from_dict(state.to_dict(), copy=False)
    assert loose == state
    assert loose.profile.subscription_choice("offers") is False


def test_an_old_stored_profile_without_choices_reads_as_none() -> None:
    old = Profile("c1").to_dict()
    assert "subscriptions" not in old
    assert Profile.from_dict(old).subscriptions == {}
    assert Profile.from_dict(old, copy=False).subscriptions == {}


choices = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), st.integers(0, 20)), max_size=12
)


@given(choices, st.randoms())
def test_the_outcome_does_not_depend_on_the_order_of_arrival(
    events: list[tuple[str, bool, int]], rnd: Any
) -> None:
    in_order = Profile("c1")
    for group, subscribed, at in events:
        choose(in_order, T0 + at, group, subscribed=subscribed)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    any_order = Profile("c1")
    for group, subscribed, at in shuffled:
        choose(any_order, T0 + at, group, subscribed=subscribed)
    assert any_order.subscriptions == in_order.subscriptions
    for group in {g for g, _, _ in events}:
        latest = max(at for g, _, at in events if g == group)
        said = {s for g, s, at in events if g == group and at == latest}
        assert in_order.subscription_choice(group) is (said == {True})
