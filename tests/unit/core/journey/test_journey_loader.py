"""Loading and validating journey files: every problem names file, line and field; all are reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.core.campaign import is_campaign_file
from orchestrator.core.journey import SendStep, WaitStep, load_journey_file, load_journey_text, parse_duration
from orchestrator.core.journey.durations import format_duration
from orchestrator.core.journey.loader import _ALLOWED, _ENTRY, _RULE, _TOP
from orchestrator.core.policy import is_policy_file
from orchestrator.core.segment import is_segment_file
from orchestrator.exceptions import JourneyValidationError

ROOT = Path(__file__).resolve().parents[4]

GOOD = """\
id: welcome
version: 1
entry:
  event: account.created
steps:
  mail:
    type: send
    channel: email
    template: w1
    next: wait_open
  wait_open:
    type: wait
    until_event:
      event: email.opened
      of: mail
    timeout:
      after: 24h
      next: sms_nudge_1
  sms_nudge_1:
    type: send
    channel: sms
    template: s1
"""


def problems(text: str, name: str = "journeys/welcome.yaml") -> list[str]:
    with pytest.raises(JourneyValidationError) as info:
        load_journey_text(text, name)
    return info.value.problems


def test_a_good_file_loads_into_compiled_steps() -> None:
    j = load_journey_text(GOOD, "g.yaml")
    assert (j.id, j.version, j.start, j.status) == ("welcome", 1, "mail", "active")
    wait = j.steps["wait_open"]
    assert isinstance(wait, WaitStep)
    assert (wait.mode, wait.timeout_ms, wait.of_step, wait.timeout_next) == (
        "event",
        86_400_000,
        "mail",
        "sms_nudge_1",
    )
    assert j.event_types == {"account.created", "email.opened"}


def test_dangling_reference_names_file_line_field_and_a_suggestion() -> None:
    text = GOOD.replace("next: sms_nudge_1", "next: sms_nudge")
    assert problems(text) == [
        "journeys/welcome.yaml:18: steps.wait_open.timeout.next: "
        "unknown step 'sms_nudge' (did you mean 'sms_nudge_1'?)",
        "journeys/welcome.yaml:19: steps.sms_nudge_1: "
        "unreachable: no path from the start step 'mail' leads here",
    ]


def test_all_problems_are_reported_at_once() -> None:
    text = """\
id: Bad Id
version: 0
entry: {event: NotAType}
colour: blue
steps:
  a: {type: send, channel: fax, template: t, next: b}
  b: {type: branch, branches: [{when: 'profile.x >', next: a}]}
  c: {type: wiat}
"""
    found = problems(text, "bad.yaml")
    joined = "\n".join(found)
    for expected in (
        "bad.yaml:1: id: 'Bad Id' is not a valid name",
        "bad.yaml:2: version: must be at least 1",
        "bad.yaml:3: entry.event: 'NotAType' is not an event type",
        "bad.yaml:4: colour: unknown field",
        "bad.yaml:6: steps.a.channel: unknown value 'fax'",
        "bad.yaml:7: steps.b.branches[0].when: CEL: column",
        "bad.yaml:7: steps.b.default: a branch needs a 'default'",
        "bad.yaml:8: steps.c.type: unknown value 'wiat' (did you mean 'wait'?)",
    ):
        assert expected in joined, f"missing: {expected}\n{joined}"


def test_yaml_syntax_error_has_its_line() -> None:
    (p,) = problems("id: x\nsteps:\n  a: [unclosed\n", "s.yaml")
    assert p.startswith(("s.yaml:4: (root): not valid YAML", "s.yaml:3: (root): not valid YAML"))


def test_duplicate_keys_are_reported() -> None:
    found = problems(GOOD.replace("version: 1\n", "version: 1\nversion: 2\n"))
    assert "journeys/welcome.yaml:3: version: duplicate key (the later one would silently win)" in found


def test_loop_without_a_wait_is_refused_and_with_a_wait_allowed() -> None:
    looped = """\
id: loopy
version: 1
entry: {event: a.b}
steps:
  one: {type: update, set: {x: '1'}, next: two}
  two:
    type: branch
    branches: [{when: 'true', next: one}]
    default: three
  three: {type: exit}
"""
    (p,) = problems(looped, "l.yaml")
    assert p == "l.yaml:5: steps.one: loop without a wait: one -> two -> one (put a wait step in the loop)"
    ok = looped.replace("next: one}]", "next: pause}]") + "  pause: {type: wait, duration: 1d, next: one}\n"
    assert load_journey_text(ok).steps["pause"].kind == "wait"


def test_cel_errors_point_at_the_condition_line() -> None:
    found = problems(
        GOOD.replace("      of: mail\n", "      of: mail\n      condition: event.properties.x ==\n")
    )
    assert len(found) == 1
    assert found[0].startswith("journeys/welcome.yaml:16: steps.wait_open.until_event.condition: CEL: column")


def test_unknown_variable_is_a_type_error() -> None:
    found = problems(GOOD.replace("      of: mail\n", "      of: mail\n      condition: profle.x == 1\n"))
    assert "unknown variable 'profle'" in found[0]
    assert "did you mean 'profile'" in found[0]


def test_lookback_beyond_the_kept_history_is_refused() -> None:
    cond = '      condition: \'seen("email.opened", duration("1000h"))\'\n'
    found = problems(GOOD.replace("      of: mail\n", "      of: mail\n" + cond))
    assert "looks back 1000h but event history is only kept for 720h" in found[0]
    longer = load_journey_text(
        GOOD.replace("      of: mail\n", "      of: mail\n" + cond), history_window_ms=2000 * 3_600_000
    )
    assert longer.max_lookback_ms == 1000 * 3_600_000


def test_auto_and_unknown_channels() -> None:
    auto = problems(GOOD.replace("channel: sms", "channel: auto"))[0]
    assert "'channel: auto' needs a list of at least two" in auto
    assert "unknown value 'whatsapp'" in problems(GOOD.replace("channel: sms", "channel: whatsapp"))[0]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("      after: 24h\n", "      after: soon\n", "'soon' is not a duration"),
        (
            "    timeout:\n      after: 24h\n      next: sms_nudge_1\n",
            "",
            "timeout: required field is missing",
        ),
        ("    until_event:", "    duration: 1h\n    until_event:", "exactly one of: duration, until_time"),
        ("  event: account.created\n", "  condition: 'true'\n", "needs a trigger"),
        ("template: s1\n", "template: s1\n    category: promo\n", "unknown value 'promo'"),
        ("version: 1\n", "version: 1\nre_entry: {policy: cooldown}\n", "needs a cooldown duration"),
        ("version: 1\n", "version: 1\nstart: nope\n", "start: unknown step 'nope'"),
        ("      of: mail\n", "      of: wait_open\n", "'of' must name a send step"),
    ],
)
def test_field_problems(old: str, new: str, message: str) -> None:
    assert old in GOOD
    assert any(message in p for p in problems(GOOD.replace(old, new))), problems(GOOD.replace(old, new))


def test_split_percentages_must_add_up_to_100() -> None:
    text = """\
id: s
version: 1
entry: {event: a.b}
steps:
  pick:
    type: split
    branches:
      - {name: a, percent: 50, next: x}
      - {name: b, percent: 40, next: x}
      - {name: c, percent: 5}
  x: {type: exit}
"""
    found = problems(text, "s.yaml")
    assert (
        "s.yaml:10: steps.pick.branches[2].next: "
        "required field is missing (only a holdout branch may omit it)" in found
    )
    assert "s.yaml:7: steps.pick.branches: percentages add up to 95, not 100" in found


def test_time_of_day_and_time_zone() -> None:
    base = "id: t\nversion: 1\nentry: {event: a.b}\nsteps:\n  w: {type: wait, until_time: %s%s}\n"
    step = load_journey_text(base % ("09:30", "")).steps["w"]  # unquoted: YAML 1.1 reads 570
    assert isinstance(step, WaitStep)
    assert step.time_of_day == (9, 30)
    assert "unknown time zone 'Mars/Base'" in problems(base % ('"10:00"', ", timezone: Mars/Base"))[0]
    assert "not a time of day" in problems(base % ('"25:00"', ""))[0]


def test_empty_and_non_mapping_files() -> None:
    assert problems("", "e.yaml") == ["e.yaml:1: (root): the file is empty"]
    assert problems("- a\n- b\n", "l.yaml") == ["l.yaml:1: (root): expected a mapping, got a list"]


def test_durations() -> None:
    assert parse_duration("1h30m") == 5_400_000
    assert parse_duration("2w") == 14 * 86_400_000
    assert format_duration(5_400_000) == "1h30m"
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("3 days")


def test_example_journeys_load() -> None:
    files = [
        p
        for p in (ROOT / "journeys").glob("*.yaml")
        if not is_policy_file(p) and not is_segment_file(p) and not is_campaign_file(p)
    ]  # (policy.yaml, the segments, the campaign)
    ids = sorted(load_journey_file(p).id for p in files)
    assert ids == [
        "abandoned_cart",
        "appointment_reminder",
        "cart_nudge",
        "post_purchase",
        "welcome",
        "winback",
    ]


def test_file_not_found_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(JourneyValidationError, match="cannot read the file"):
        load_journey_file(tmp_path / "missing.yaml")


def test_schema_lists_exactly_the_fields_the_loader_accepts() -> None:
    schema = json.loads((ROOT / "schemas" / "journey.schema.json").read_text())
    assert set(schema["properties"]) == set(_TOP)
    for kind, allowed in _ALLOWED.items():
        assert set(schema["$defs"][kind]["properties"]) == set(allowed), kind
    assert set(schema["properties"]["entry"]["properties"]) == set(_ENTRY)
    assert set(schema["$defs"]["rule"]["properties"]) == set(_RULE)


def test_a_holdout_branch_must_not_lead_to_a_send() -> None:
    text = """\
id: s
version: 1
entry: {event: a.b}
steps:
  pick:
    type: split
    branches:
      - {name: a, percent: 90, next: mail}
      - {name: control, percent: 10, holdout: true, next: linger}
  mail: {type: send, channel: email, template: t}
  linger: {type: wait, duration: 1d, next: mail}
"""
    (p,) = problems(text, "h.yaml")
    assert p.startswith(
        "h.yaml:9: steps.pick.branches[1].next: holdout branch 'control' leads to send step(s) mail"
    )
    ok = text.replace("linger: {type: wait, duration: 1d, next: mail}", "linger: {type: wait, duration: 1d}")
    assert load_journey_text(ok).id == "s"


ONE_SEND = "steps:\n  mail: {type: send, channel: email, template: t}\n"


def test_custom_event_names_need_no_dot() -> None:
    """Issue 20: `back_in_stock` was refused (Braze and Iterable accept such names)."""
    text = "id: b\nversion: 1\nentry: {event: back_in_stock}\n" + ONE_SEND
    assert load_journey_text(text).entry.events == frozenset({"back_in_stock"})


def test_a_bad_event_name_is_said_once() -> None:
    text = "id: b\nversion: 1\nentry: {event: Back In Stock}\n" + ONE_SEND
    (p,) = problems(text, "b.yaml")
    assert p.startswith("b.yaml:3: entry.event: 'Back In Stock' is not an event type: lowercase words")
    wait = GOOD.replace("event: email.opened", "event: Email Opened", 1)
    assert len(problems(wait)) == 1


def test_the_schema_and_the_contract_agree_on_event_names() -> None:
    from orchestrator.contracts.events import EVENT_TYPE_PATTERN

    schema = json.loads((ROOT / "schemas" / "journey.schema.json").read_text())
    assert schema["$defs"]["event_type"]["pattern"] == EVENT_TYPE_PATTERN


SEGMENT_JOURNEY = """
id: nudge
version: 1
entry: {segment: cart_abandoners}
exit_when:
  - name: bought_vip
    entered_segment: vip
  - name: gone
    left_segment: cart_abandoners
steps:
  mail: {type: send, channel: email, template: t}
"""


def test_segment_entry_and_segment_exit_rules_load() -> None:
    from orchestrator.contracts.events import SEGMENT_ENTERED, SEGMENT_LEFT

    j = load_journey_text(SEGMENT_JOURNEY, "nudge.yaml")
    assert j.entry.segment == "cart_abandoners"
    assert j.entry.events == {SEGMENT_ENTERED}
    assert [(x.name, x.segment, x.events) for x in j.exits] == [
        ("bought_vip", "vip", {SEGMENT_ENTERED}),
        ("gone", "cart_abandoners", {SEGMENT_LEFT}),
    ]
    assert {SEGMENT_ENTERED, SEGMENT_LEFT} <= j.event_types


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("{segment: Bad-Name}", "journeys/welcome.yaml:4: entry.segment: 'Bad-Name' is not a segment id"),
        ("{segment: a, event: x.y}", "entry.segment: a segment entry is its own trigger"),
        ("{event: orchestrator.segment.entered}", "types starting with 'orchestrator.' are the engine's own"),
    ],
)
def test_segment_triggers_are_checked(entry: str, needle: str) -> None:
    text = SEGMENT_JOURNEY.replace("{segment: cart_abandoners}", entry)
    found = problems(text)
    assert any(needle in p for p in found), found


def test_a_send_step_names_its_subscription_group() -> None:
    text = "id: n\nversion: 1\nentry: {event: a.b}\nsteps:\n"
    good = text + "  mail: {type: send, channel: email, template: t, subscription_group: product_news}\n"
    step = load_journey_text(good).steps["mail"]
    assert isinstance(step, SendStep)
    assert step.subscription_group == "product_news"
    assert load_journey_text(GOOD).steps["mail"].subscription_group is None  # type: ignore[union-attr]
    bad = text + "  mail:\n    type: send\n    channel: email\n    template: t\n"
    bad += "    subscription_group: Product News\n"
    (p,) = problems(bad, "n.yaml")
    assert p.startswith("n.yaml:9: steps.mail.subscription_group: 'Product News' is not a valid name")
