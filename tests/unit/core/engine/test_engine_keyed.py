"""Keyed journeys (issue 20): one instance per appointment id — re-entry and max_concurrent per key,
an event that names a key reaches only that key's instance, the key in the action id (unkeyed ids
unchanged), a bound on open keys, and the merge rule."""

from __future__ import annotations

from collections.abc import Callable

from conftest import T0, Driver, H, registry_of

from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.ids import action_id
from orchestrator.core.identity.merge import merge_states

Make = Callable[..., Driver]

REMINDERS = """
id: reminders
version: 1
entry:
  event: appointment.booked
  key: event.properties.appointment_id
re_entry: {policy: never}
exit_when:
  - name: cancelled
    event: appointment.cancelled
steps:
  confirm: {type: send, channel: email, template: t_confirm, next: wait}
  wait:
    type: wait
    until_event: {event: appointment.cancelled}
    timeout: {after: 2d, next: remind}
  remind: {type: send, channel: email, template: t_remind}
"""


def _book(d: Driver, appointment: str, at: int) -> None:
    d.event("appointment.booked", at, {"appointment_id": appointment}, email="a@x.io")


def test_one_instance_per_key_and_never_twice_for_the_same_key(drive: Make) -> None:
    d = drive(REMINDERS)
    _book(d, "A1", T0)
    _book(d, "B2", T0 + H)
    _book(d, "A1", T0 + 2 * H)  # the same appointment again: never
    assert d.state is not None
    assert sorted(i.key or "" for i in d.state.instances) == ["A1", "B2"]
    assert d.templates() == ["t_confirm", "t_confirm"]


def test_an_event_with_a_key_reaches_only_that_keys_instance(drive: Make) -> None:
    """Only the cancelled appointment's journey ends; the other one still reminds."""
    d = drive(REMINDERS)
    _book(d, "A1", T0)
    _book(d, "B2", T0 + H)
    d.event("appointment.cancelled", T0 + 2 * H, {"appointment_id": "A1"})
    assert d.state is not None
    assert [i.key for i in d.state.instances] == ["B2"]
    assert d.kinds()[-1] == ("exited", "wait", "cancelled")
    d.wake(T0 + H + 48 * H)
    assert d.templates() == ["t_confirm", "t_confirm", "t_remind"]


def test_an_event_without_a_key_reaches_every_instance(drive: Make) -> None:
    d = drive(REMINDERS)
    _book(d, "A1", T0)
    _book(d, "B2", T0 + H)
    d.event("appointment.cancelled", T0 + 2 * H)  # no appointment id: all of them
    assert d.state is not None
    assert d.state.instances == []


def test_the_key_goes_into_the_action_id_and_unkeyed_ids_stay_as_they_were(drive: Make) -> None:
    d = drive(REMINDERS)
    _book(d, "A1", T0)
    (a,) = d.actions
    assert a.action_id == action_id("c1", "reminders", 1, 1, "confirm", 1, "A1")
    assert a.action_id != action_id("c1", "reminders", 1, 1, "confirm", 1)
    # the reference id of an unkeyed send, computed before keys existed
    assert (
        action_id("c1", "welcome", 1, 1, "mail", 1)
        == "act_"
        + __import__("hashlib")
        .blake2b("\x1f".join(["c1", "welcome", "1", "1", "mail", "1"]).encode(), digest_size=16)
        .hexdigest()
    )


def test_the_key_is_journey_key_in_conditions(drive: Make) -> None:
    text = REMINDERS.replace(
        "    event: appointment.cancelled\n  ",
        "    event: appointment.cancelled\n    condition: event.properties.reason == journey.key\n  ",
        1,
    )
    d = drive(text)
    _book(d, "A1", T0)
    d.event("appointment.cancelled", T0 + H, {"reason": "A1"})  # no appointment id: reaches it, and
    assert d.state is not None
    assert d.state.instances == []  # journey.key == "A1" makes the exit rule hold


def test_a_bound_on_open_keys(drive: Make) -> None:
    d = drive(
        REMINDERS.replace(
            "  key: event.properties.appointment_id\n",
            "  key: event.properties.appointment_id\n  max_keys: 2\n",
        )
    )
    for n, key in enumerate(("A", "B", "C")):
        _book(d, key, T0 + n * H)
    assert d.state is not None
    assert sorted(i.key or "" for i in d.state.instances) == ["A", "B"]


def test_an_event_without_a_key_enters_no_keyed_journey(drive: Make) -> None:
    d = drive(REMINDERS)
    d.event("appointment.booked", T0, {}, email="a@x.io")
    assert d.actions == []


def test_a_merge_keeps_both_keys_and_the_canonical_side_on_the_same_key() -> None:
    logic = CustomerLogic(registry_of(REMINDERS))
    one, two = Driver(logic, key="a"), Driver(logic, key="b")
    _book(one, "A1", T0)
    _book(two, "A1", T0 + H)
    _book(two, "B2", T0 + H)
    assert one.state is not None
    assert two.state is not None
    merged = merge_states(one.state, two.state, T0 + 2 * H)
    assert sorted((i.key or "", i.entry_seq) for i in merged.state.instances) == [("A1", 1), ("B2", 3)]
    assert [(t.reason, t.entry_seq) for t in merged.transitions] == [("merged", 1)]  # b's A1
