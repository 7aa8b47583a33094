"""Each step kind, and the edges the issue names: exact timeout, after timeout, goal/exit while waiting,
re-entry inside and after the cool-down, loops, time zones with a DST change."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from conftest import T0, Driver, H, M

from orchestrator.core.engine.state import CustomerState

WELCOME = """
id: welcome
version: 1
entry: {event: account.created}
goals:
  - {name: bought, event: order.completed}
exit_when:
  - {name: unsubscribed, event: email.unsubscribed}
steps:
  mail:
    type: send
    channel: email
    template: t_mail
    personalization:
      name: 'has(profile.first_name) ? profile.first_name : "there"'
      plan: event.properties.plan
    next: wait_open
  wait_open:
    type: wait
    until_event: {event: email.opened, of: mail}
    timeout: {after: 24h, next: sms_ok}
    next: opened
  sms_ok:
    type: branch
    branches:
      - when: profile.consent.sms.marketing
        next: sms
    default: no_sms
  sms: {type: send, channel: sms, template: t_sms}
  opened: {type: exit, reason: opened}
  no_sms: {type: exit, reason: no_consent}
"""

Make = Callable[..., Driver]


def _signup(d: Driver, at: int = T0, sms: bool = True) -> None:
    if sms:
        d.event("consent.changed", at - 1000, {"channel": "sms", "granted": True}, phone="+1555")
    d.event("account.created", at, {"plan": "pro"}, email="a@x.io")


def test_send_builds_the_action_with_personalization_and_address(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    (a,) = d.actions
    assert (a.channel, a.recipient, a.template_id, a.campaign) == ("email", "a@x.io", "t_mail", "welcome")
    assert a.personalization == {"name": "there", "plan": "pro"}
    assert a.created_at.timestamp() * 1000 == T0
    assert d.wakeup == T0 + 24 * H


def test_send_without_address_is_skipped_and_recorded(drive: Make) -> None:
    d = drive(WELCOME)
    d.event("account.created", T0)  # no email known
    assert d.actions == []
    assert ("step", "mail", "no_address") in d.kinds()


def test_open_at_exactly_the_timeout_counts_as_in_time(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    d.event("email.opened", T0 + 24 * H, campaign="welcome")
    assert d.templates() == ["t_mail"]
    assert ("exited", "opened", "opened") in d.kinds()
    assert d.state is not None
    assert d.state.instances == []


def test_open_after_the_timeout_is_too_late(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    d.event("email.opened", T0 + 24 * H + 1, campaign="welcome")
    assert d.templates() == ["t_mail", "t_sms"]
    sms = d.actions[1]
    assert sms.created_at.timestamp() * 1000 == T0 + 24 * H  # fired at its due time, not the event's


def test_timeout_fires_on_wakeup_and_without_consent_sends_nothing(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d, sms=False)
    assert d.wake(T0 + 24 * H - 1).transitions == []
    d.wake(T0 + 24 * H)
    assert d.templates() == ["t_mail"]
    assert ("exited", "no_sms", "no_consent") in d.kinds()
    assert d.wakeup is None


def test_wait_is_tied_to_its_own_send_by_action_id(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    d.event("email.opened", T0 + H, action_id="act_some_other_email")
    assert d.state is not None
    assert len(d.state.instances) == 1
    d.event("email.opened", T0 + 2 * H, action_id=d.actions[0].action_id)
    assert d.state.instances == []
    assert ("exited", "opened", "opened") in d.kinds()


def test_open_of_another_campaign_does_not_count(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    d.event("email.opened", T0 + H, campaign="newsletter")
    d.event("email.opened", T0 + 2 * H)  # carries neither action_id nor campaign
    d.wake(T0 + 24 * H)
    assert d.templates() == ["t_mail", "t_sms"]


def test_goal_while_waiting_ends_the_journey_as_a_conversion(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    d.event("order.completed", T0 + H)
    assert ("goal", "wait_open", "bought") in d.kinds()
    d.wake(T0 + 48 * H)  # the old timer no longer matters
    assert d.templates() == ["t_mail"]


def test_exit_rule_while_waiting(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    d.event("email.unsubscribed", T0 + H)
    assert d.kinds()[-1] == ("exited", "wait_open", "unsubscribed")
    assert d.wakeup is None


def test_stale_wakeup_does_nothing(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    assert d.state is not None
    before = d.state.to_dict()
    out = d.wake(T0 + H)  # nothing is due yet
    assert out.actions == []
    assert out.transitions == []
    assert d.wakeup == T0 + 24 * H
    assert d.state.to_dict()["i"] == before["i"]


def test_duplicate_event_is_a_no_op(drive: Make) -> None:
    d = drive(WELCOME)
    d.event("account.created", T0, email="a@x.io", event_id="same")
    out = d.event("account.created", T0 + 1, email="a@x.io", event_id="same")
    assert out.duplicate
    assert out.actions == []
    assert out.transitions == []
    assert len(d.actions) == 1


def test_late_event_updates_the_profile_but_starts_nothing(drive: Make) -> None:
    d = drive(WELCOME, lateness_ms=H)
    d.event("account.created", T0, {"first_name": "Al"}, email="a@x.io", now_ms=T0 + 2 * H)
    assert d.actions == []
    assert d.state is not None
    assert d.state.profile.addresses["email"] == "a@x.io"


BRANCHY = """
id: branchy
version: 1
entry: {event: cart.updated}
re_entry: {policy: always, max_concurrent: 5}
steps:
  pick:
    type: branch
    branches:
      - {when: 'event.properties.total > 100', next: big}
      - {when: 'event.properties.total > 10', next: mid}
    default: small
  big: {type: send, channel: email, template: big}
  mid: {type: send, channel: email, template: mid}
  small: {type: update, set: {tier: '"small"', gone: 'null'}, next: done}
  done: {type: exit, reason: small_cart}
"""


def test_branch_takes_the_first_true_condition_else_default(drive: Make) -> None:
    d = drive(BRANCHY)
    d.event("profile.updated", T0 - 1, {"gone": 1}, email="a@x.io")
    for i, total in enumerate((500, 50, 5)):
        d.event("cart.updated", T0 + i, {"total": total})
    assert d.templates() == ["big", "mid"]
    assert d.state is not None
    assert d.state.profile.attributes == {"tier": "small"}
    assert ("exited", "done", "small_cart") in d.kinds()


def test_branch_condition_error_counts_as_false(drive: Make) -> None:
    d = drive(BRANCHY)
    d.event("cart.updated", T0, {"no_total": 1}, email="a@x.io")
    assert d.templates() == []
    assert ("step", "small", None) in d.kinds()


def test_re_entry_always_respects_max_concurrent(drive: Make) -> None:
    text = WELCOME.replace(
        "entry: {event: account.created}",
        "entry: {event: account.created}\nre_entry: {policy: always, max_concurrent: 2}",
    )
    d = drive(text)
    for i in range(3):
        d.event("account.created", T0 + i * M, email="a@x.io")
    assert d.state is not None
    assert [i.entry_seq for i in d.state.instances] == [1, 2]
    ids = [a.action_id for a in d.actions]
    assert len(set(ids)) == 2  # a re-entry sends again, with another id


COOL = WELCOME.replace(
    "entry: {event: account.created}",
    "entry: {event: account.created}\nre_entry: {policy: cooldown, cooldown: 2d}",
)


def test_re_entry_inside_the_cooldown_is_refused_and_after_it_allowed(drive: Make) -> None:
    d = drive(COOL)
    d.event("account.created", T0, email="a@x.io")
    d.event("order.completed", T0 + H)
    d.event("account.created", T0 + 2 * 24 * H - 1)
    assert len(d.actions) == 1
    d.event("account.created", T0 + 2 * 24 * H)
    assert len(d.actions) == 2
    assert [t.entry_seq for t in d.transitions if t.kind == "entered"] == [1, 2]


def test_re_entry_never(drive: Make) -> None:
    d = drive(WELCOME)
    d.event("account.created", T0, email="a@x.io")
    d.event("order.completed", T0 + H)
    d.event("account.created", T0 + 90 * 24 * H)
    assert len(d.actions) == 1


LOOP = """
id: looping
version: 1
entry: {event: order.completed}
steps:
  ask: {type: send, channel: email, template: ask, next: pause}
  pause: {type: wait, duration: 1d, next: again}
  again:
    type: branch
    branches:
      - {when: 'journey.visits.ask < 3', next: ask}
    default: stop
  stop: {type: exit, reason: asked_enough}
"""


def test_loops_send_again_with_new_action_ids(drive: Make) -> None:
    d = drive(LOOP)
    d.event("order.completed", T0, email="a@x.io")
    d.wake(T0 + 10 * 24 * H)
    assert d.templates() == ["ask", "ask", "ask"]
    assert len({a.action_id for a in d.actions}) == 3
    assert [a.created_at.timestamp() * 1000 for a in d.actions] == [T0, T0 + 24 * H, T0 + 48 * H]
    assert d.kinds()[-1] == ("exited", "stop", "asked_enough")


def test_replay_gives_the_same_action_ids(drive: Make) -> None:
    runs = []
    for _ in range(2):
        d = drive(LOOP)
        d.event("order.completed", T0, email="a@x.io", event_id="fixed")
        d.wake(T0 + 10 * 24 * H)
        runs.append([a.model_dump() for a in d.actions])
    assert runs[0] == runs[1]


TOD = """
id: morning
version: 1
entry: {event: order.completed}
steps:
  nine: {type: wait, until_time: "09:00", next: mail}
  mail: {type: send, channel: email, template: morning}
"""


def test_time_of_day_in_the_customers_zone_across_a_dst_change(drive: Make) -> None:
    d = drive(TOD)
    d.event("profile.updated", 0, {"timezone": "America/New_York"}, email="a@x.io")
    sat = 1741471200000  # 2025-03-08T22:00:00Z, Saturday 17:00 EST; DST starts Sunday 2025-03-09
    d.event("order.completed", sat)
    assert d.wakeup == 1741525200000  # 2025-03-09T13:00:00Z = 09:00 EDT (not 14:00Z)
    d.wake(d.wakeup)
    assert d.templates() == ["morning"]


def test_time_of_day_already_now_goes_on_at_once(drive: Make) -> None:
    d = drive(TOD)
    nine = 1741078800000  # 2025-03-04T09:00:00Z
    d.event("order.completed", nine, email="a@x.io")
    assert d.templates() == ["morning"]


def test_state_survives_serialisation_midway(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    assert d.state is not None
    d.state = CustomerState.from_dict(orjson.loads(orjson.dumps(d.state.to_dict())))
    d.event("email.opened", T0 + H, action_id=d.actions[0].action_id)
    assert ("exited", "opened", "opened") in d.kinds()


def test_erase_ends_everything_and_deletes_the_state(drive: Make) -> None:
    d = drive(WELCOME)
    _signup(d)
    out = d.event("customer.erased", T0 + H)
    assert out.state is None
    assert d.kinds()[-1] == ("exited", "wait_open", "erased")


UNSENT = """
id: unsent
version: 1
entry: {event: account.created}
steps:
  mail: {type: send, channel: email, template: t_mail, on_unsent: exit, next: later}
  later: {type: wait, duration: 1h, next: sms}
  sms: {type: send, channel: sms, template: t_sms}
"""


def test_on_unsent_exit_ends_the_journey_when_the_message_cannot_go_out(drive: Make) -> None:
    """Issue 20: no address (or no consent, a suppression) let the customer go on; `on_unsent: exit`
    ends the journey instead."""
    d = drive(UNSENT)
    d.event("account.created", T0, phone="+1555")  # no email address
    assert d.actions == []
    assert d.kinds()[-1] == ("exited", "mail", "unsent_no_address")
    assert d.state is not None
    assert d.state.instances == []


def test_on_unsent_continue_is_the_default(drive: Make) -> None:
    d = drive(UNSENT.replace(", on_unsent: exit", ""))
    d.event("account.created", T0, phone="+1555")
    d.wake(T0 + H)
    assert d.templates() == ["t_sms"]  # the email could not go out; the journey went on


PHONE = """
id: phone
version: 1
entry: {event: account.created}
steps:
  get_phone:
    type: wait
    until_condition: 'has(profile.phone) && profile.phone != ""'
    timeout: {after: 3d, next: no_phone}
    next: sms
  sms: {type: send, channel: sms, template: t_sms}
  no_phone: {type: exit, reason: no_phone}
"""


def test_a_wait_until_a_condition_goes_on_when_an_event_makes_it_true(drive: Make) -> None:
    """Issue 20: "until the profile has a phone number, at most 3 days"."""
    d = drive(PHONE)
    d.event("account.created", T0, email="a@x.io")
    assert d.wakeup == T0 + 72 * H
    d.event("page.viewed", T0 + H)  # still no phone: still waiting
    assert d.actions == []
    d.event("profile.updated", T0 + 2 * H, phone="+1555")
    assert d.templates() == ["t_sms"]
    assert d.actions[0].created_at.timestamp() * 1000 == T0 + 2 * H
    assert d.state is not None
    assert d.state.instances == []


def test_a_condition_that_holds_at_entry_does_not_wait(drive: Make) -> None:
    d = drive(PHONE)
    d.event("account.created", T0, email="a@x.io", phone="+1555")
    assert d.templates() == ["t_sms"]


def test_a_wait_until_a_condition_times_out(drive: Make) -> None:
    d = drive(PHONE)
    d.event("account.created", T0, email="a@x.io")
    d.wake(T0 + 72 * H)
    assert d.actions == []
    assert d.kinds()[-1] == ("exited", "no_phone", "no_phone")


def test_a_condition_on_now_alone_is_refused() -> None:
    from orchestrator.core.journey import load_journey_text
    from orchestrator.exceptions import JourneyValidationError

    text = PHONE.replace("""'has(profile.phone) && profile.phone != ""'""", "now.getHours() > 9")
    try:
        load_journey_text(text, "p.yaml")
    except JourneyValidationError as exc:
        (problem,) = exc.problems
        assert problem.startswith("p.yaml:8: steps.get_phone.until_condition: the condition only reads 'now'")
    else:
        raise AssertionError("accepted")


APPOINTMENT = """
id: appointment
version: 1
entry: {event: appointment.booked}
re_entry: {policy: always, max_concurrent: 3}
steps:
  day_before:
    type: wait
    until: journey.entry_event.properties.starts_at
    before: 1d
    next: remind
  remind: {type: send, channel: email, template: t_remind}
"""


def test_a_wait_until_a_time_from_the_data_with_an_offset(drive: Make) -> None:
    """Issue 20: "1 day before appointment_at", from the entry event."""
    d = drive(APPOINTMENT)
    d.event("appointment.booked", T0, {"starts_at": "2025-03-10T15:00:00Z"}, email="a@x.io")
    assert d.wakeup == T0 + 6 * 24 * H + 6 * H  # 2025-03-09T15:00Z
    d.wake(d.wakeup)
    assert d.templates() == ["t_remind"]


def test_a_time_already_past_goes_on_at_once_or_exits(drive: Make) -> None:
    d = drive(APPOINTMENT)
    d.event("appointment.booked", T0, {"starts_at": "2025-03-03T20:00:00Z"}, email="a@x.io")  # in 11 h
    assert d.templates() == ["t_remind"]  # 1 day before is past: the reminder goes now
    strict = drive(APPOINTMENT.replace("    before: 1d\n", "    before: 1d\n    if_past: exit\n"))
    strict.event("appointment.booked", T0, {"starts_at": "2025-03-03T20:00:00Z"}, email="a@x.io")
    assert strict.actions == []
    assert strict.kinds()[-1] == ("exited", "day_before", "wait_time_past")


def test_no_time_in_the_data_ends_the_journey(drive: Make) -> None:
    d = drive(APPOINTMENT)
    d.event("appointment.booked", T0, {"starts_at": "next tuesday"}, email="a@x.io")
    assert d.kinds()[-1] == ("exited", "day_before", "wait_time_unknown")


TRIAL = """
id: trial
version: 1
entry: {event: trial.started}
steps:
  after_trial:
    type: wait
    until: profile.attributes.trial_ends_at
    after: 3d
    next: winback
  winback: {type: send, channel: email, template: t_winback}
"""


def test_the_wait_is_timed_again_when_the_data_changes(drive: Make) -> None:
    """Issue 20: "3 days after trial_ends_at", from the profile; the trial is extended meanwhile."""
    d = drive(TRIAL)
    d.event("profile.updated", T0 - 1000, {"trial_ends_at": "2025-03-10T09:00:00Z"}, email="a@x.io")
    d.event("trial.started", T0)
    first = d.wakeup
    d.event("profile.updated", T0 + H, {"trial_ends_at": "2025-03-17T09:00:00Z"})  # extended a week
    assert d.wakeup == (first or 0) + 7 * 24 * H
    d.wake(first or 0)
    assert d.actions == []  # the old time means nothing now
    d.wake(d.wakeup or 0)
    assert d.templates() == ["t_winback"]


def test_an_until_time_may_not_read_the_event() -> None:
    from orchestrator.core.journey import load_journey_text
    from orchestrator.exceptions import JourneyValidationError

    text = APPOINTMENT.replace("journey.entry_event.properties.starts_at", "event.properties.starts_at")
    try:
        load_journey_text(text, "a.yaml")
    except JourneyValidationError as exc:
        (problem,) = exc.problems
        assert problem.startswith("a.yaml:9: steps.day_before.until: the time may not read 'event'")
        assert "journey.entry_event" in problem
    else:
        raise AssertionError("accepted")


WEEKDAY_MORNING = """
id: office
version: 1
entry: {event: form.submitted}
steps:
  next_morning:
    type: wait
    until_time: "09:00"
    weekdays: weekdays
    next: call
  call: {type: send, channel: email, template: t_call}
"""


def test_a_local_time_wait_limited_to_weekdays(drive: Make) -> None:
    """Issue 20: "the next weekday at 09:00": a form sent on Friday evening waits for Monday."""
    d = drive(WEEKDAY_MORNING)
    friday_evening = T0 + 4 * 24 * H + 10 * H  # 2025-03-07 (Friday) 19:00 UTC
    d.event("form.submitted", friday_evening, email="a@x.io")
    assert d.wakeup == T0 + 7 * 24 * H  # Monday 2025-03-10 09:00 UTC
    tuesday = drive(WEEKDAY_MORNING)
    tuesday.event("form.submitted", T0 + 24 * H - 1, email="a@x.io")  # Tuesday 08:59:59.999
    assert tuesday.wakeup == T0 + 24 * H


def test_weekdays_by_name_and_the_error_for_a_bad_day() -> None:
    from orchestrator.core.engine.clock import next_local_time
    from orchestrator.core.journey import load_journey_text
    from orchestrator.exceptions import JourneyValidationError

    saturday = next_local_time(T0, "Europe/Paris", 10, 0, frozenset({5}))
    assert saturday == T0 + 5 * 24 * H  # 2025-03-08 10:00 Paris is 09:00 UTC
    text = WEEKDAY_MORNING.replace("weekdays: weekdays", "weekdays: [mon, funday]")
    try:
        load_journey_text(text, "o.yaml")
    except JourneyValidationError as exc:
        (problem,) = exc.problems
        assert problem.startswith("o.yaml:9: steps.next_morning.weekdays[1]: 'funday' is not a day")
    else:
        raise AssertionError("accepted")


PARIS_MORNING = """
id: paris
version: 1
default_timezone: Europe/Paris
entry: {event: form.submitted}
steps:
  morning: {type: wait, until_time: "10:00", next: call}
  call: {type: send, channel: email, template: t_call}
"""


def test_a_customer_with_no_zone_gets_the_journeys_default_one_with_utc_keeps_utc(drive: Make) -> None:
    """Issue 20: the profile tells "zone unknown" from an explicit UTC."""
    unknown = drive(PARIS_MORNING)
    unknown.event("form.submitted", T0, email="a@x.io")  # 09:00 UTC = 10:00 Paris
    assert unknown.templates() == ["t_call"]
    explicit = drive(PARIS_MORNING)
    explicit.event("profile.updated", T0 - 1000, {"timezone": "UTC"}, email="a@x.io")
    explicit.event("form.submitted", T0)
    assert explicit.wakeup == T0 + H  # 10:00 UTC
    assert explicit.state is not None
    assert explicit.state.profile.timezone_known


def test_a_known_zone_fills_an_unknown_one_at_a_merge_and_never_replaces_a_known_utc() -> None:
    from orchestrator.core.identity.merge import merge_profiles
    from orchestrator.core.profile import Profile

    paris = Profile("p", timezone="Europe/Paris", timezone_known=True)
    unknown, utc = Profile("u"), Profile("c", timezone_known=True)
    merge_profiles(unknown, paris)
    merge_profiles(utc, paris)
    assert (unknown.timezone, unknown.timezone_known) == ("Europe/Paris", True)
    assert (utc.timezone, utc.timezone_known) == ("UTC", True)
    assert Profile.from_dict(utc.to_dict()).timezone_known
    assert not Profile.from_dict(Profile("n").to_dict()).timezone_known
    assert "timezone_known" not in paris.to_dict()  # a zone other than UTC is known by being there
