"""What a customer's state keeps for ``orchestrator inspect`` (issue 18, traps 2 and 6): the journeys it
finished lately (path, exit reason, times), bounded in time and number, and the events that were not
applied at their own time (late: no journey entry; future: applied now), counted by reason."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from conftest import T0, Driver, H, registry_of
from test_engine_steps import WELCOME, _signup

from orchestrator.core.customer import DAY_MS, CustomerLogic
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.identity.merge import merge_states

Make = Callable[..., Driver]


def test_a_finished_instance_keeps_its_path_reason_and_times(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    d.wake(T0 + 24 * H)  # no open: timeout -> branch -> sms -> end of the steps
    assert d.state is not None
    assert d.state.instances == []
    (done,) = d.state.finished
    assert (done.journey, done.version, done.entry_seq) == ("welcome", 1, 1)
    assert (done.kind, done.reason, done.step) == ("exited", "completed", "sms")
    assert list(done.visits) == ["mail", "wait_open", "sms_ok", "sms"]  # the order it took them
    assert (done.entered_ms, done.finished_ms) == (T0, T0 + 24 * H)


def test_a_goal_is_kept_with_its_name(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    d.event("order.completed", T0 + H)
    assert d.state is not None
    (done,) = d.state.finished
    assert (done.kind, done.reason, done.step, done.finished_ms) == ("goal", "bought", "wait_open", T0 + H)


def test_finished_instances_survive_the_stored_form(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    d.event("email.unsubscribed", T0 + H)
    assert d.state is not None
    again = CustomerState.from_dict(orjson.loads(orjson.dumps(d.state.to_dict())))
    assert again.finished == d.state.finished
    assert again.finished[0].reason == "unsubscribed"
    fast = CustomerState.from_dict(orjson.loads(orjson.dumps(d.state.to_dict())), copy=False)
    assert fast.finished == d.state.finished


REPEAT = WELCOME.replace(
    "entry: {event: account.created}", "entry: {event: account.created}\nre_entry: {policy: always}"
)


def test_finished_instances_are_let_go_after_the_keep_time_and_past_the_maximum(drive: Make) -> None:
    d = drive(REPEAT, finished_keep_ms=2 * DAY_MS, finished_max=3)
    for hour in range(5):  # five entries, each ended at once by an unsubscribe
        d.event("account.created", T0 + hour * H, email="a@x.io")
        d.event("email.unsubscribed", T0 + hour * H + 1000)
    assert d.state is not None
    assert [f.entry_seq for f in d.state.finished] == [3, 4, 5]  # the last three
    d.event("page.viewed", T0 + 3 * DAY_MS)  # the customer's clock moves on: all older than 2 days
    assert d.state.finished == []


def test_no_finished_instances_kept_when_the_maximum_is_zero(drive: Make) -> None:
    d = drive(WELCOME, finished_max=0)
    _signup(d)
    d.event("email.unsubscribed", T0 + H)
    assert d.state is not None
    assert d.state.finished == []


def test_a_late_event_is_counted_and_said_in_the_outcome(drive: Make) -> None:
    d = drive(WELCOME, lateness_ms=H)
    out = d.event("account.created", T0, email="a@x.io", now_ms=T0 + 2 * H)
    assert out.timing == "late"
    assert out.actions == []
    d.event("page.viewed", T0 + 10, now_ms=T0 + 3 * H)
    assert d.state is not None
    assert d.state.timing == {"late": [2, T0 + 10]}
    on_time = d.event("page.viewed", T0 + 3 * H)
    assert on_time.timing is None
    assert d.state.timing == {"late": [2, T0 + 10]}


def test_a_future_event_is_applied_now_and_counted(drive: Make) -> None:
    d = drive(WELCOME)
    out = d.event("account.created", T0 + DAY_MS, email="a@x.io", now_ms=T0)
    assert out.timing == "future"
    assert d.state is not None
    assert d.state.timing == {"future": [1, T0 + DAY_MS]}
    assert d.state.instances[0].entered_ms == T0  # applied at the clock, not at its own time


def test_a_merge_unites_finished_instances_and_timing_counts() -> None:
    logic = CustomerLogic(registry_of(WELCOME), lateness_ms=H)
    one = Driver(logic, key="a")
    two = Driver(logic, key="b")
    for d in (one, two):
        _signup(d)
    one.event("email.unsubscribed", T0 + H)
    two.event("page.viewed", T0, now_ms=T0 + 5 * H)  # late
    assert one.state is not None
    assert two.state is not None
    merged = merge_states(one.state, two.state, T0 + 6 * H).state
    # b's welcome instance exits as merged only when a runs it too; a finished it: b's moves over
    assert [f.reason for f in merged.finished] == ["unsubscribed"]
    assert merged.timing == {"late": [1, T0]}
    assert [i.journey for i in merged.instances] == ["welcome"]


def test_a_merge_keeps_the_instance_that_exits_as_merged() -> None:
    logic = CustomerLogic(registry_of(WELCOME))
    one, two = Driver(logic, key="a"), Driver(logic, key="b")
    for d in (one, two):
        _signup(d)
    assert one.state is not None
    assert two.state is not None
    merged = merge_states(one.state, two.state, T0 + H).state
    (gone,) = merged.finished
    assert (gone.journey, gone.kind, gone.reason, gone.finished_ms) == ("welcome", "exited", "merged", T0 + H)


def test_a_clock_that_jumps_ahead_keeps_the_story_of_recorded_events(drive: Make) -> None:
    """A worker catching up on recorded events moves the customer's clock to the wall clock (a wake-up
    a year later): the journeys those events ran through are still there to inspect."""
    d = drive(WELCOME)
    _signup(d)
    d.wake(T0 + 365 * DAY_MS)
    assert d.state is not None
    assert [f.reason for f in d.state.finished] == ["completed"]
    d.event("page.viewed", T0 + 365 * DAY_MS)  # the customer is active again, a year on
    assert d.state.finished == []
