"""The event and action contracts: what they accept, what they refuse and how they say why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator.contracts import ChannelAction, CustomerEvent, DeadLetter, make_action_id, parse_event
from orchestrator.contracts.engine_event import read_event
from orchestrator.contracts.schemas import stale_schemas
from orchestrator.exceptions import InvalidEventError

ROOT = Path(__file__).resolve().parents[2]


def event(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": "e1",
        "type": "email.opened",
        "identifiers": {"customer_id": "c1"},
        "occurred_at": "2026-11-20T10:00:00+01:00",
        "source": "esp",
    }
    return {**base, **over}


def test_valid_event_round_trips() -> None:
    e = parse_event(orjson.dumps(event(action_id="act_1", campaign="spring", properties={"x": [1, 2]})))
    assert e.action_id == "act_1"
    assert e.occurred_ms == 1795165200000
    assert parse_event(e.to_json()) == e


@pytest.mark.parametrize("etype", ["order.completed", "app.installed", "custom.loyalty.tier_changed"])
def test_custom_and_known_types_are_accepted(etype: str) -> None:
    assert parse_event(orjson.dumps(event(type=etype))).type == etype


@pytest.mark.parametrize(
    ("raw", "reason", "needle"),
    [
        (b"{oops", "not_json", "not valid JSON"),
        (b"[1, 2]", "invalid_event", "JSON object"),
        (orjson.dumps(event(type="Email Opened")), "invalid_event", "field 'type'"),
        (orjson.dumps(event(identifiers={})), "invalid_event", "at least one identifier"),
        (orjson.dumps(event(occurred_at="2026-11-20T10:00:00")), "invalid_event", "field 'occurred_at'"),
        (orjson.dumps(event(event_id="")), "invalid_event", "field 'event_id'"),
        (orjson.dumps(event(surprise=1)), "invalid_event", "field 'surprise'"),
        (
            orjson.dumps(event(identifiers={"customer_id": "c", "ssn": "1"})),
            "invalid_event",
            "identifiers.ssn",
        ),
    ],
)
def test_invalid_events_name_what_is_wrong(raw: bytes, reason: str, needle: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        parse_event(raw)
    assert info.value.reason == reason
    assert needle in info.value.detail


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_parser(raw: bytes) -> None:
    reason = "ok"
    try:
        parse_event(raw)
    except InvalidEventError as exc:
        reason = exc.reason
    assert reason in {"ok", "not_json", "invalid_event"}


def test_action_id_is_deterministic_and_sensitive_to_each_part() -> None:
    parts = ("c1", "welcome", 3, 1, "send_email", 1)
    assert make_action_id(*parts) == make_action_id(*parts)
    for i in range(len(parts)):
        changed = list(parts)
        changed[i] = f"{changed[i]}x"
        assert make_action_id(*changed) != make_action_id(*parts)


def test_action_contract() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    action = ChannelAction(
        action_id="act_1", channel="sms", category="marketing", customer_id="c1", recipient="+15550100",
        journey_id="welcome", journey_version=1, step_id="sms", template_id="tpl", created_at=now,
    )  # fmt: skip
    assert orjson.loads(action.to_json())["channel"] == "sms"
    with pytest.raises(ValidationError, match="channel"):
        ChannelAction.model_validate({**action.model_dump(), "channel": "fax"})
    with pytest.raises(ValidationError, match="created_at"):
        ChannelAction.model_validate({**action.model_dump(), "created_at": "2026-11-20T00:00:00"})
    # template_version: optional, left out of the JSON until a connector stamps the version it rendered
    assert "template_version" not in orjson.loads(action.to_json())
    stamped = action.model_copy(update={"template_version": 2})
    assert orjson.loads(stamped.to_json())["template_version"] == 2
    assert ChannelAction.model_validate_json(stamped.to_json()).template_version == 2
    with pytest.raises(ValidationError, match="template_version"):
        ChannelAction.model_validate({**action.model_dump(), "template_version": 0})


def test_dead_letter_keeps_the_original_bytes() -> None:
    letter = DeadLetter.of(
        reason="not_json", error="x", topic="t", partition=1, offset=7, key=b"k", value=b"\xff\x00",
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    assert DeadLetter.model_validate_json(letter.to_json()).original_value() == b"\xff\x00"


def test_checked_in_schemas_match_the_models() -> None:
    assert stale_schemas(ROOT / "schemas") == [], "run: orchestrator schemas"


def test_event_schema_documents_the_dedupe_key() -> None:
    schema = CustomerEvent.model_json_schema()
    assert "event_id" in schema["required"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"type": "Page Viewed"},
            "field 'type': an event type is lowercase words of letters, digits and _, each starting with a "
            "letter, optionally joined by dots, like 'back_in_stock', 'page.viewed' or 'app.trial.started' "
            "(got 'Page Viewed')",
        ),
        (
            {"occurred_at": "2026-11-20T10:00:00"},
            "field 'occurred_at': needs a time zone: an ISO 8601 time with its time zone, like "
            "2025-03-01T10:00:00Z or 2025-03-01T11:00:00+01:00 (got '2026-11-20T10:00:00')",
        ),
        ({"occurred_at": "yesterday"}, "field 'occurred_at': must be an ISO 8601 time"),
        ({"event_id": ""}, "field 'event_id': must not be empty (got '')"),
        ({"colour": "red"}, "field 'colour': is not a field of an event (its fields: event_id, type,"),
        (
            {"identifiers": {"user": "u1"}},
            "field 'identifiers.user': is not an identifier (the identifiers: ",
        ),
    ],
)
def test_invalid_events_are_described_in_plain_words(changes: dict[str, object], expected: str) -> None:
    # issue 18, trap 7: produce (and simulate, and dead letters) showed pydantic's own messages
    with pytest.raises(InvalidEventError) as caught:
        parse_event(orjson.dumps(event(**changes)))
    assert expected in caught.value.detail
    for pydantic_words in ("String should", "Input should", "Field required", "Extra inputs", "Value error"):
        assert pydantic_words not in caught.value.detail


def test_a_missing_field_is_required_in_plain_words() -> None:
    body = event()
    del body["source"]
    with pytest.raises(InvalidEventError) as caught:
        parse_event(orjson.dumps(body))
    assert caught.value.detail == "field 'source': is required"


def test_the_engines_own_event_types_are_refused_from_producers() -> None:
    for etype in ("orchestrator.segment.entered", "orchestrator.segment.left", "orchestrator.anything"):
        with pytest.raises(InvalidEventError) as err:
            parse_event(orjson.dumps(event(type=etype)))
        assert (
            "field 'type': event types starting with 'orchestrator.' are the engine's own" in err.value.detail
        )
        with pytest.raises(InvalidEventError):  # (the runtime's fast reader too)
            read_event(orjson.dumps(event(type=etype)))
