"""Splits and holdouts, versions and statuses of the registry, condition entries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from conftest import T0, Driver, H, registry_of

from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.ids import split_bucket
from orchestrator.core.journey import JourneyRegistry, load_journey_text
from orchestrator.exceptions import JourneyValidationError

Make = Callable[..., Driver]

SPLIT = """
id: ab
version: 1
entry: {event: segment.entered}
goals: [{name: ordered, event: order.completed}]
holdout_window: 7d
steps:
  pick:
    type: split
    branches:
      - {name: a, percent: 45, next: mail_a}
      - {name: b, percent: 45, next: mail_b}
      - {name: control, percent: 10, holdout: true}
  mail_a: {type: send, channel: email, template: a, next: linger}
  mail_b: {type: send, channel: email, template: b, next: linger}
  linger: {type: wait, duration: 7d}
"""


def _group(d: Driver) -> str:
    return next(t.branch for t in d.transitions if t.kind == "split")  # type: ignore[return-value]


def test_split_is_deterministic_per_customer_and_roughly_proportional() -> None:
    groups: Counter[str] = Counter()
    first_logic, second_logic = CustomerLogic(registry_of(SPLIT)), CustomerLogic(registry_of(SPLIT))
    for i in range(1000):
        key = f"cust-{i}"
        first, second = Driver(first_logic, key=key), Driver(second_logic, key=key)
        for d in (first, second):
            d.event("segment.entered", T0, email=f"{key}@x.io")
        assert _group(first) == _group(second)
        groups[_group(first)] += 1
    assert 400 <= groups["a"] <= 500
    assert 400 <= groups["b"] <= 500
    assert 70 <= groups["control"] <= 130


def test_split_bucket_does_not_depend_on_the_version() -> None:
    assert split_bucket("c", "ab", "pick") == split_bucket("c", "ab", "pick")
    assert 0 <= split_bucket("c", "ab", "pick", "salt") < 10_000


def _customer_in(group: str, drive: Make) -> Driver:
    logic = drive(SPLIT).logic
    for i in range(200):
        d = Driver(logic, key=f"k{i}")
        d.event("segment.entered", T0, email="a@x.io")
        if _group(d) == group:
            return d
    raise AssertionError(group)


def test_holdout_gets_nothing_but_its_conversion_counts(drive: Make) -> None:
    d = _customer_in("control", drive)
    assert d.actions == []
    assert d.wakeup == T0 + 7 * 24 * H
    d.event("order.completed", T0 + H)
    goal = d.transitions[-1]
    assert (goal.kind, goal.reason, goal.splits) == ("goal", "ordered", {"pick": "control"})


def test_holdout_leaves_after_its_window(drive: Make) -> None:
    d = _customer_in("control", drive)
    d.wake(T0 + 7 * 24 * H)
    assert d.kinds()[-1] == ("exited", "pick", "holdout_window")
    assert d.state is not None
    assert d.state.instances == []


def test_treated_group_sends_its_variant(drive: Make) -> None:
    d = _customer_in("b", drive)
    assert d.templates() == ["b"]


V1 = """
id: promo
version: 1
entry: {event: cart.updated}
re_entry: {policy: always, max_concurrent: 3}
steps:
  w: {type: wait, duration: 1h, next: m}
  m: {type: send, channel: email, template: v1}
"""
V2 = V1.replace("version: 1", "version: 2").replace("template: v1", "template: v2")


def _logic(reg: JourneyRegistry) -> Driver:
    return Driver(CustomerLogic(reg))


def test_entries_pick_the_version_effective_at_event_time_and_in_flight_keep_theirs() -> None:
    reg = registry_of(V1)
    d = _logic(reg)
    d.event("cart.updated", T0, email="a@x.io")
    reg.deploy(load_journey_text(V2, "v2.yaml"), T0 + 30 * 60_000)
    d.event("cart.updated", T0 + 29 * 60_000)  # before v2 takes effect: v1
    d.event("cart.updated", T0 + 31 * 60_000)  # v2
    d.wake(T0 + 3 * H)
    assert d.templates() == ["v1", "v1", "v2"]


def test_migrate_moves_instances_in_flight_to_the_new_version() -> None:
    reg = registry_of(V1)
    d = _logic(reg)
    d.event("cart.updated", T0, email="a@x.io")
    reg.deploy(load_journey_text(V2 + "migrate: true\n", "v2.yaml"), T0 + 10 * 60_000)
    d.wake(T0 + H)
    assert d.templates() == ["v2"]


def test_paused_takes_no_new_entries_but_in_flight_go_on() -> None:
    reg = registry_of(V1)
    d = _logic(reg)
    d.event("cart.updated", T0, email="a@x.io")
    reg.set_status("promo", "paused", T0 + 1)
    d.event("cart.updated", T0 + 2)
    d.wake(T0 + 3 * H)
    assert d.templates() == ["v1"]


def test_archived_makes_instances_in_flight_exit() -> None:
    reg = registry_of(V1)
    d = _logic(reg)
    d.event("cart.updated", T0, email="a@x.io")
    reg.set_status("promo", "archived", T0 + 1)
    d.wake(T0 + 3 * H)
    assert d.templates() == []
    assert d.kinds()[-1] == ("exited", "w", "archived")


def test_same_version_with_other_content_is_refused() -> None:
    reg = registry_of(V1)
    with pytest.raises(JourneyValidationError, match="new version number"):
        reg.deploy(load_journey_text(V1.replace("template: v1", "template: other"), "x.yaml"), T0)
    reg.deploy(load_journey_text(V1.replace("version: 1", "version: 1\nstatus: paused"), "y.yaml"), T0)
    current = reg.current("promo", T0)
    assert current is not None
    assert current.status == "paused"


def test_registry_indexes_by_entry_event() -> None:
    reg = registry_of(V1, SPLIT)
    assert reg.entered_by("cart.updated") == ("promo",)
    assert reg.entered_by("segment.entered") == ("ab",)
    assert reg.entered_by("page.viewed") == ()
    assert reg.current("promo", -1) is None
    assert reg.current("promo", 0) is not None
    assert reg.current("nope", T0) is None


def test_journeys_not_matching_an_event_are_not_looked_at() -> None:
    """Cost per event grows with the journeys the event can match: unrelated journeys are never read."""

    class Counting(JourneyRegistry):
        looked: Counter[str]

        def current(self, journey_id: str, at_ms: int):  # type: ignore[no-untyped-def]
            self.looked[journey_id] += 1
            return super().current(journey_id, at_ms)

    reg = Counting()
    reg.looked = Counter()
    for i in range(50):
        reg.deploy(
            load_journey_text(V1.replace("id: promo", f"id: p{i}").replace("cart.updated", f"x.e{i}"), "f"), 0
        )
    d = _logic(reg)
    d.event("page.viewed", T0, email="a@x.io")
    d.event("x.e7", T0 + 1)
    assert dict(reg.looked) == {"p7": 1}


BECOMES = """
id: vip
version: 1
entry:
  becomes_true: 'has(profile.ltv) && profile.ltv > 1000'
re_entry: {policy: always}
steps:
  hello: {type: send, channel: email, template: vip}
"""


def test_condition_entry_fires_when_the_condition_becomes_true(drive: Make) -> None:
    d = drive(BECOMES)
    d.event("profile.updated", T0, {"ltv": 500}, email="a@x.io")
    d.event("profile.updated", T0 + 1, {"ltv": 1500})
    d.event("profile.updated", T0 + 2, {"ltv": 1600})  # still true: no new entry
    d.event("profile.updated", T0 + 3, {"ltv": 10})
    d.event("profile.updated", T0 + 4, {"ltv": 2000})  # true again
    assert d.templates() == ["vip", "vip"]


WAITING = """
id: w
version: {version}
migrate: true
entry: {{event: signed.up}}
steps:
  hello: {{type: send, channel: email, template: hello, next: wait_open}}
  wait_open:
    type: wait
    until_event: {{event: email.opened}}
    timeout: {{after: {timeout}, next: nudge}}
    next: done
  nudge: {{type: send, channel: email, template: nudge, next: done}}
  done: {{type: exit, reason: done}}
"""


@pytest.mark.parametrize("opened", [True, False])
def test_a_migrated_wait_keeps_its_start_and_takes_the_new_timeout(opened: bool) -> None:
    """v2 shortens the timeout from 24 h to 12 h with migrate: a customer waiting since T0 times out at
    T0 + 12 h, and an open at T0 + 2 h (after the migration) ends the wait: it happened in the wait
    (found by the impact preview: the wait's start was taken as the old due time - the new timeout)."""
    reg = JourneyRegistry()
    reg.deploy(load_journey_text(WAITING.format(version=1, timeout="24h"), "w1.yaml"), 0)
    reg.deploy(load_journey_text(WAITING.format(version=2, timeout="12h"), "w2.yaml"), T0 + H)
    d = Driver(CustomerLogic(reg))
    d.event("signed.up", T0, email="a@x.io")
    if opened:
        d.event("email.opened", T0 + 2 * H)
        assert ("exited", "done", "done") in d.kinds()
        assert d.templates() == ["hello"]
    else:
        d.event("page.viewed", T0 + 2 * H)  # (the instance migrates on its next event)
        assert d.wakeup == T0 + 12 * H
        d.wake(T0 + 12 * H)
        assert d.templates() == ["hello", "nudge"]
