"""Campaign files: what loads (each shape, to the model's values), and every refusal with file:line: field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.campaign import (
    CampaignSchedule,
    is_campaign_file,
    is_campaign_text,
    load_campaign_file,
    load_campaign_text,
)
from orchestrator.exceptions import CampaignValidationError

AT_SEND = """kind: campaign
id: spring_sale
version: 1
name: Spring sale
description: For cart abandoners in the US.
status: paused
audience:
  segment: cart_abandoners
  condition: profile.country == "US" && seen("page.viewed", duration("48h"))
send:
  channel: email
  template: spring_sale_v1
  category: marketing
  subscription_group: product_news
  personalization: {first_name: profile.first_name}
  on_unsent: continue
schedule:
  at: 2025-03-12T10:00:00Z
deliver_within: 3h
pace: 200
"""

LOCAL_JOURNEY = """kind: campaign
id: weekly-nudge
version: 3
audience: {segment: vip}
journey: cart_nudge
schedule:
  date: 2025-03-12
  local_time: 10:00
  default_timezone: Europe/Berlin
  every: 7d
  occurrences: 4
"""

HEAD = "kind: campaign\nid: c\nversion: 1\naudience: {segment: s}\njourney: j\n"
"""Lines 1-5 of a campaign whose schedule starts on line 6."""
GOOD = HEAD + "schedule: {at: 2025-03-12T10:00:00Z}\n"
"""A whole campaign of six lines."""


def _problems(text: str) -> list[str]:
    with pytest.raises(CampaignValidationError) as err:
        load_campaign_text(text, "c.yaml")
    return err.value.problems


def _schedule_problems(schedule: str) -> list[str]:
    return _problems(HEAD + "schedule:\n" + schedule)


def test_a_send_at_an_instant_loads_every_field() -> None:
    c = load_campaign_text(AT_SEND, "c.yaml")
    assert (c.id, c.version, c.name, c.description, c.status) == (
        "spring_sale", 1, "Spring sale", "For cart abandoners in the US.", "paused",
    )  # fmt: skip
    assert c.segment == "cart_abandoners"
    assert c.condition is not None
    assert c.condition.source.startswith('profile.country == "US"')
    assert c.journey is None
    assert c.send is not None
    assert (c.send.id, c.send.campaign, c.send.next, c.send.channel, c.send.template) == (
        "send", "spring_sale", None, "email", "spring_sale_v1",
    )  # fmt: skip
    assert (c.send.category, c.send.subscription_group, c.send.on_unsent) == (
        "marketing", "product_news", "continue",
    )  # fmt: skip
    assert [name for name, _ in c.send.personalization] == ["first_name"]
    at_ms = int(datetime(2025, 3, 12, 10, tzinfo=UTC).timestamp() * 1000)
    assert c.schedule == CampaignSchedule(at_ms=at_ms)
    assert not c.schedule.local
    assert c.deliver_within_ms == 3 * 3_600_000
    assert c.pace_per_second == 200.0
    assert c.max_lookback_ms == 48 * 3_600_000
    assert c.source_name == "c.yaml"
    assert c.journey_id == "campaign:spring_sale"
    assert c.key == ("spring_sale", 1)
    assert is_campaign_text(AT_SEND)
    assert not is_campaign_text("kind: segment\nid: s\n")


def test_a_journey_at_a_local_time_every_week_loads_with_its_defaults() -> None:
    c = load_campaign_text(LOCAL_JOURNEY, "c.yaml")
    assert (c.id, c.version, c.status) == ("weekly-nudge", 3, "active")
    assert (c.name, c.description) == ("weekly-nudge", "")  # (the name defaults to the id)
    assert (c.segment, c.condition, c.send, c.journey) == ("vip", None, None, "cart_nudge")
    assert c.schedule == CampaignSchedule(
        local_day=(date(2025, 3, 12) - date(1970, 1, 1)).days,
        local_time=(10, 0),  # (unquoted 10:00 is YAML 1.1's number 600: read as the time it was)
        default_timezone="Europe/Berlin",
        every_days=7,
        occurrences=4,
    )
    assert c.schedule.local
    assert c.deliver_within_ms == 2 * 3_600_000
    assert c.pace_per_second is None
    assert c.max_lookback_ms == 0


def test_an_offset_and_a_quoted_local_time_are_read_too() -> None:
    c = load_campaign_text(HEAD + "schedule: {at: '2025-03-12T11:00:00+01:00'}\n")
    assert c.schedule.at_ms == int(datetime(2025, 3, 12, 10, tzinfo=UTC).timestamp() * 1000)
    c = load_campaign_text(
        HEAD + "schedule: {date: 1970-01-02, local_time: '23:59', every: 1w, occurrences: 2}\n"
    )
    assert (c.schedule.local_day, c.schedule.local_time, c.schedule.every_days) == (1, (23, 59), 7)
    assert c.schedule.default_timezone is None


def test_a_file_loads_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "spring.yaml"
    path.write_text(AT_SEND)
    assert load_campaign_file(path).source_name == str(path)
    assert is_campaign_file(path)
    with pytest.raises(CampaignValidationError, match="cannot read the file"):
        load_campaign_file(tmp_path / "missing.yaml")


def test_status_name_and_description_are_not_content() -> None:
    base = load_campaign_text(AT_SEND)
    renamed = load_campaign_text(
        AT_SEND.replace("status: paused", "status: cancelled").replace("Spring sale", "X")
    )
    changed = load_campaign_text(AT_SEND.replace("spring_sale_v1", "spring_sale_v2"))
    assert base.content_hash == renamed.content_hash
    assert base.content_hash != changed.content_hash


AT_LINE = "  at: 2025-03-12T10:00:00Z\n"
LOCAL_LINES = "  date: 2025-03-12\n  local_time: '10:00'\n"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (AT_LINE + "  local_time: '10:00'\n", "c.yaml:7: schedule.at: write either 'at'"),
        (AT_LINE + "  date: 2025-03-12\n", "c.yaml:7: schedule.at: write either 'at'"),
        ("  every: 7d\n  occurrences: 2\n", "c.yaml:7: schedule.at: required field is missing: write 'at'"),
        ("  date: 2025-03-12\n", "c.yaml:7: schedule.date: 'date' needs 'local_time'"),
        ("  local_time: '10:00'\n", "c.yaml:7: schedule.local_time: 'local_time' needs 'date'"),
        ("  at: 2025-03-12T10:00:00\n", "c.yaml:7: schedule.at: '2025-03-12T10:00:00' has no zone"),
        ("  at: 2025-03-12\n", "c.yaml:7: schedule.at: '2025-03-12' has no zone"),
        ("  at: tomorrow\n", "c.yaml:7: schedule.at: 'tomorrow' is not an ISO 8601 time"),
        ("  at: 3025-03-12T10:00:00Z\n", "c.yaml:7: schedule.at: must be between 1970 and 2999"),
        (LOCAL_LINES.replace("2025-03-12", "'2025-02-30'"), "c.yaml:7: schedule.date: '2025-02-30' is not a"),
        (LOCAL_LINES.replace("2025-03-12", "2025-02-30"), "c.yaml:7: schedule.date: cannot read the value"),
        (LOCAL_LINES.replace("2025-03-12", "12.03.2025"), "c.yaml:7: schedule.date: '12.03.2025' is not a"),
        (LOCAL_LINES.replace("10:00", "25:00"), "c.yaml:8: schedule.local_time: '25:00' is not a time"),
        (
            LOCAL_LINES + "  default_timezone: Europe/Nowhere\n",
            "c.yaml:9: schedule.default_timezone: unknown time zone 'Europe/Nowhere'",
        ),
        (
            AT_LINE + "  default_timezone: Europe/Berlin\n",
            "c.yaml:8: schedule.default_timezone: only applies with 'local_time'",
        ),
        (AT_LINE + "  every: 36h\n  occurrences: 2\n", "c.yaml:8: schedule.every: must be whole days"),
        (AT_LINE + "  every: 7d\n", "c.yaml:8: schedule.occurrences: required with 'every'"),
        (AT_LINE + "  occurrences: 2\n", "c.yaml:8: schedule.occurrences: only applies with 'every'"),
        (AT_LINE + "  evry: 7d\n", "c.yaml:8: schedule.evry: unknown field (did you mean 'every'?)"),
    ],
)
def test_schedule_refusals_name_file_line_and_field(schedule: str, expected: str) -> None:
    problems = _schedule_problems(schedule)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD + "send: {channel: email, template: t}\n",
            "c.yaml:5: journey: write either 'send' (one message) or 'journey'",
        ),
        (
            GOOD.replace("journey: j\n", ""),
            "c.yaml:1: send: required field is missing: write 'send'",
        ),
        (
            GOOD.replace("journey: j", "send: {channel: emial, template: t}"),
            "c.yaml:5: send.channel: unknown value 'emial' (did you mean 'email'?)",
        ),
        (
            GOOD.replace("journey: j", "send: {channel: email}"),
            "c.yaml:5: send.template: required field is missing",
        ),
        (
            GOOD.replace("journey: j", "send: {channel: sms, template: t, next: x}"),
            "c.yaml:5: send.next: unknown field",
        ),
        (
            GOOD.replace("journey: j", "journey: Not_A_Journey"),
            "c.yaml:5: journey: 'Not_A_Journey' is not a valid name",
        ),
        (
            GOOD.replace("audience: {segment: s}", "audience: {segment: Cart-Abandoners}"),
            "c.yaml:4: audience.segment: 'Cart-Abandoners' is not a segment id",
        ),
        (
            GOOD.replace("audience: {segment: s}", "audience: {condition: 'true'}"),
            "c.yaml:4: audience.segment: required field is missing",
        ),
        (
            GOOD.replace("audience:", "audince:"),
            "c.yaml:4: audince: unknown field (did you mean 'audience'?)",
        ),
        (GOOD + "status: running\n", "c.yaml:7: status: unknown value 'running'"),
        (GOOD.replace("id: c", "id: Bad Id"), "c.yaml:2: id:"),
        (GOOD.replace("kind: campaign", "kind: campain"), "c.yaml:1: kind:"),
        (HEAD, "c.yaml:1: schedule: required field is missing"),
        (HEAD + "schedule:\n", "c.yaml:6: schedule: expected a mapping, got nothing"),
        (GOOD + "deliver_within: 8d\n", "c.yaml:7: deliver_within: must be at most 7d"),
        (GOOD + "deliver_within: 0s\n", "c.yaml:7: deliver_within: must be longer"),
        (GOOD + "deliver_within: 2\n", "c.yaml:7: deliver_within: write a unit"),
        (GOOD + "pace: 0\n", "c.yaml:7: pace: sends per second"),
        (GOOD + "pace: 100001\n", "c.yaml:7: pace: sends per second"),
        (GOOD + "pace: fast\n", "c.yaml:7: pace: expected a number"),
        ("", "c.yaml:1: (root): the file is empty"),
        ("kind: campaign\nid: [c\n", "c.yaml:3: (root): not valid YAML"),
    ],
)  # fmt: skip
def test_structure_refusals_name_file_line_and_field(text: str, expected: str) -> None:
    problems = _problems(text)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("event.type == 'x'", "c.yaml:6: audience.condition: a campaign's audience is about the customer"),
        ("journey.id == 'x'", "c.yaml:6: audience.condition: a campaign's audience is not part of a journey"),
        (
            "now > timestamp('2025-01-01T00:00:00Z')",
            "c.yaml:6: audience.condition: CEL: column 1: a campaign's audience may not read 'now'",
        ),
        ("size(profile.segments) > 1", "c.yaml:6: audience.condition: CEL: column 14: name the segment"),
        ("profile.x ==", "c.yaml:6: audience.condition: CEL: column"),
        ("seen('x', duration('800h'))", "c.yaml:6: audience.condition: looks back 800h"),
    ],
)  # fmt: skip
def test_audience_conditions_follow_the_segment_rules(condition: str, expected: str) -> None:
    text = (
        f'kind: campaign\nid: c\nversion: 1\naudience:\n  segment: s\n  condition: "{condition}"\n'
        "journey: j\nschedule: {at: 2025-03-12T10:00:00Z}\n"
    )
    problems = _problems(text)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_condition_may_name_other_segments_and_count_events() -> None:
    text = (
        "kind: campaign\nid: c\nversion: 1\naudience:\n  segment: s\n"
        "  condition: \"!('vip' in profile.segments) && count('order.completed', duration('720h')) < 2\"\n"
        "journey: j\nschedule: {at: 2025-03-12T10:00:00Z}\n"
    )
    assert load_campaign_text(text).max_lookback_ms == 720 * 3_600_000


def test_personalization_is_checked_as_cel() -> None:
    text = GOOD.replace(
        "journey: j", "send: {channel: push, template: t, personalization: {name: 'profile.x =='}}"
    )
    problems = _problems(text)
    assert any(p.startswith("c.yaml:5: send.personalization.name: CEL:") for p in problems), problems


@given(
    every=st.one_of(
        st.none(), st.integers(min_value=0, max_value=400), st.sampled_from(["36h", "1w", "48h", "x"])
    ),
    occurrences=st.one_of(st.none(), st.integers(min_value=-2, max_value=1100)),
)
def test_any_every_and_occurrences_load_or_are_refused_where_they_are(
    every: int | str | None, occurrences: int | None
) -> None:
    lines = ["  at: 2025-03-12T10:00:00Z"]
    every_text = f"{every}d" if isinstance(every, int) else every
    if every_text is not None:
        lines.append(f"  every: {every_text}")
    if occurrences is not None:
        lines.append(f"  occurrences: {occurrences}")
    text = HEAD + "schedule:\n" + "".join(f"{line}\n" for line in lines)
    every_days = {"1w": 7, "48h": 2}.get(every_text or "", every if isinstance(every, int) else None)
    valid_every = every_days is not None and 1 <= every_days <= 365
    if every_text is None:
        ok = occurrences is None
    else:
        ok = valid_every and occurrences is not None and 1 <= occurrences <= 1000
    if ok:
        schedule = load_campaign_text(text).schedule
        assert schedule.every_days == every_days
        assert schedule.occurrences == (occurrences if every_text is not None else 1)
        return
    problems = _problems(text)
    assert problems
    assert all(p.startswith(("c.yaml:8: schedule.every:", "c.yaml:9: schedule.occurrences:",
                             "c.yaml:8: schedule.occurrences:")) for p in problems), problems  # fmt: skip


def test_the_schema_lists_exactly_the_fields_the_loader_accepts() -> None:
    from orchestrator.core.campaign.loader import _AUDIENCE, _SCHEDULE, _SEND, _TOP
    from orchestrator.core.campaign.schema import campaign_schema

    schema = campaign_schema()
    props = schema["properties"]
    assert set(props) == set(_TOP)
    assert set(props["audience"]["properties"]) == set(_AUDIENCE)
    assert set(props["send"]["properties"]) == set(_SEND)
    assert set(props["schedule"]["properties"]) == set(_SCHEDULE)
    assert set(schema["required"]) == {"kind", "id", "version", "audience", "schedule"}
