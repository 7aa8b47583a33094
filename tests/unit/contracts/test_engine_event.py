"""The engine's event form and its fast reader give exactly what the pydantic contract gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.contracts import ChannelAction, CustomerEvent, Decision, parse_event
from orchestrator.contracts.engine_event import Event, read_event, read_event_json
from orchestrator.exceptions import InvalidEventError

VALID: dict[str, Any] = {
    "event_id": "e1",
    "type": "cart.updated",
    "identifiers": {"customer_id": "c1", "email": "c1@example.com"},
    "occurred_at": "2025-03-03T10:04:48.123Z",
    "source": "shop",
    "properties": {"item_count": 2, "total": 17.5},
}


def _fields(event: Event) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.type,
        event.identifiers,
        event.occurred_ms,
        event.source,
        event.properties,
        event.action_id,
        event.campaign,
        event.journey,
    )


def _outcome(raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", _fields(Event.of(parse_event(raw)))
    except InvalidEventError as exc:
        return exc.reason, exc.detail


def _read(raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", _fields(read_event(raw))
    except InvalidEventError as exc:
        return exc.reason, exc.detail


texts = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "x", "page.viewed", "Page.Viewed", "a.b\n", "x" * 201, "é.b", "a..b"]),
)
values = st.one_of(
    st.none(), st.integers(-3, 3), st.floats(allow_nan=False), st.booleans(), texts, st.just([])
)
times = st.one_of(
    st.sampled_from(
        [
            "2025-03-03T10:04:48Z",
            "2025-03-03T10:04:48.5+02:00",
            "2025-03-03T10:04:48.1234567Z",
            "2025-03-03 10:04:48Z",
            "2025-03-03T10:04:48",
            "2025-02-30T10:04:48Z",
            "2025-03-03T24:00:00Z",
            "2025-03-03T10:04:60Z",
            "2025-03-03t10:04:48z",
            "1741000000",
        ]
    ),
    st.integers(0, 2_000_000_000),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.isoformat()
    ),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)).map(
        lambda d: d.replace(tzinfo=timezone(timedelta(minutes=330))).isoformat()
    ),
)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(orjson.dumps(VALID))
    event["occurred_at"] = draw(times)
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["drop", "set", "extra", "ids", "props", "link"]))
        if what == "drop":
            event.pop(draw(st.sampled_from(sorted(event))), None)
        elif what == "set":
            event[draw(st.sampled_from(["event_id", "type", "source", "occurred_at"]))] = draw(values)
        elif what == "extra":
            event[draw(st.sampled_from(["extra", "Type", "tenant"]))] = draw(values)
        elif what == "ids":
            event["identifiers"] = draw(
                st.one_of(
                    st.dictionaries(
                        st.sampled_from(
                            [
                                "customer_id",
                                "email",
                                "phone",
                                "device_id",
                                "anonymous_id",
                                "customer_key",
                                "x",
                            ]
                        ),
                        values,
                        max_size=4,
                    ),
                    values,
                )
            )
        elif what == "props":
            event["properties"] = draw(st.one_of(values, st.dictionaries(st.text(max_size=3), values)))
        else:
            event[draw(st.sampled_from(["action_id", "campaign", "journey"]))] = draw(values)
    return event


@settings(max_examples=600, deadline=None)
@given(near_valid())
def test_read_event_accepts_and_refuses_exactly_what_the_contract_does(event: dict[str, Any]) -> None:
    raw = orjson.dumps(event)
    assert _read(raw) == _outcome(raw)


def _json_outcome(raw: bytes) -> tuple[str, Any]:
    try:
        event, data = read_event_json(raw)
        return "ok", (_fields(event), data)
    except InvalidEventError as exc:
        return exc.reason, exc.detail


def _model_json_outcome(raw: bytes) -> tuple[str, Any]:
    try:
        model = parse_event(raw)
        return "ok", (_fields(Event.of(model)), model.to_json())
    except InvalidEventError as exc:
        return exc.reason, exc.detail


@settings(max_examples=600, deadline=None)
@given(near_valid())
def test_read_event_json_writes_the_contracts_bytes(event: dict[str, Any]) -> None:
    raw = orjson.dumps(event)
    assert _json_outcome(raw) == _model_json_outcome(raw)


@pytest.mark.parametrize(
    "ids",
    [
        {"customer_key": "email:ann@x.io"},
        {"customer_key": "C"},
        {"customer_key": "C", "email": "ann@x.io"},
        {"customer_key": ""},
        {"customer_key": 7},
        {"customer_key": None, "customer_id": "C"},
    ],
)
def test_a_receipt_naming_its_customer_by_key_reads_as_the_contract_does(ids: dict[str, Any]) -> None:
    raw = orjson.dumps({**VALID, "type": "email.opened", "identifiers": ids, "action_id": "act_1"})
    assert _json_outcome(raw) == _model_json_outcome(raw)
    assert _read(raw) == _outcome(raw)


@pytest.mark.parametrize(
    "when",
    [
        "2025-03-03T10:04:48.000Z",
        "2025-03-03T10:04:48.000120Z",
        "2025-03-03T10:04:48+00:00",
        "2025-03-03T10:04:48-00:00",
        "2025-03-03T10:04:48.5-05:30",
        "0001-01-01T00:00:00Z",
        "0999-12-31T23:59:59.999999+14:00",
        "9999-12-31T23:59:59.999999Z",
    ],
)
def test_read_event_json_times(when: str) -> None:
    raw = orjson.dumps({**VALID, "occurred_at": when, "properties": {"a": None, "b": [None, 1.5e300]}})
    assert _json_outcome(raw) == _model_json_outcome(raw)


@pytest.mark.parametrize(
    "raw", [b"", b"[]", b"{", b'"x"', orjson.dumps({**VALID, "properties": {"a": {"b": {}}}})]
)
def test_read_event_edge_inputs(raw: bytes) -> None:
    assert _read(raw) == _outcome(raw)


def test_trusted_reads_what_the_contract_wrote() -> None:
    model = CustomerEvent.model_validate({**VALID, "campaign": "spring", "action_id": "act_1"})
    data = orjson.loads(model.to_json())
    event = Event.trusted(data)
    assert _fields(event) == _fields(Event.of(model))
    assert event.to_dict() is data  # kept as read: written again byte for byte
    assert orjson.dumps(Event.of(model).to_dict()) == model.to_json()


def test_trusted_refuses_what_is_not_an_event() -> None:
    with pytest.raises(ValueError, match="not an event this orchestrator wrote"):
        Event.trusted({"type": "x.y"})


@settings(max_examples=200, deadline=None)
@given(
    ms=st.integers(-(10**12), 253402300799999),
    personalization=st.dictionaries(st.text(max_size=4), st.one_of(values, st.lists(values, max_size=3))),
    campaign=st.one_of(st.none(), st.text(max_size=5)),
    template_version=st.one_of(st.none(), st.integers(1, 1000)),
    group=st.one_of(st.none(), st.text(min_size=1, max_size=5)),
)
def test_action_and_decision_json_are_the_models_dump(
    ms: int,
    personalization: dict[str, Any],
    campaign: str | None,
    template_version: int | None,
    group: str | None,
) -> None:
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    action = ChannelAction(
        action_id="act_1", channel="sms", category="marketing", customer_id="c", recipient="+33",
        journey_id="j", journey_version=2, step_id="s", template_id="t", campaign=campaign,
        personalization=personalization, created_at=at, not_before=None if ms % 2 else at,
        template_version=template_version, subscription_group=group,
    )  # fmt: skip
    # (template_version and subscription_group are left out when not set: actions without them are the
    # bytes they were)
    unset = {
        k for k, v in (("template_version", template_version), ("subscription_group", group)) if v is None
    }
    assert action.to_json() == orjson.dumps(action.model_dump(mode="json", exclude=unset or None))
    decision = Decision(
        decision_id="dec_1", kind="held", reason="quiet_hours", customer_id="c", action_id="act_1",
        original_action_id="act_1", journey_id="j", journey_version=1, step_id="s", campaign=campaign,
        category="marketing", channel="email", original_channel="sms", at=at,
        release_at=None if ms % 3 else at, policy=None if ms % 5 else "p@1",
    )  # fmt: skip
    assert decision.to_json() == orjson.dumps(decision.model_dump(mode="json", exclude_none=True))


@settings(max_examples=100, deadline=None)
@given(
    ms=st.integers(0, 253402300799999),
    personalization=st.dictionaries(st.text(max_size=4), values),
    campaign=st.one_of(st.none(), st.text(max_size=5)),
)
def test_models_the_engine_builds_without_validation_equal_validated_ones(
    ms: int, personalization: dict[str, Any], campaign: str | None
) -> None:
    from orchestrator.contracts.actions import trusted_model
    from orchestrator.core.engine.clock import utc_from_ms

    fields: dict[str, Any] = {
        "action_id": "act_1", "channel": "push", "category": "transactional", "customer_id": "c",
        "recipient": "tok", "journey_id": "j", "journey_version": 3, "step_id": "s", "template_id": "t",
        "campaign": campaign, "personalization": personalization, "created_at": utc_from_ms(ms),
        "not_before": None, "template_version": None, "subscription_group": None,
    }  # fmt: skip
    trusted = trusted_model(ChannelAction, dict(fields))
    validated = ChannelAction.model_validate(fields)
    assert trusted == validated
    assert trusted.to_json() == validated.to_json()
    assert trusted.model_dump() == validated.model_dump()
    decision: dict[str, Any] = {
        "decision_id": "dec_1", "kind": "sent", "reason": "allowed", "rule": None, "detail": "",
        "customer_id": "c", "action_id": "act_1", "original_action_id": "act_1", "journey_id": "j",
        "journey_version": 1, "step_id": "s", "campaign": campaign, "category": "marketing",
        "channel": "email", "original_channel": "email", "at": utc_from_ms(ms), "release_at": None,
        "policy": None, "choice": None if ms % 2 else {"channel": "email", "rates": {"email": 0.5}},
    }  # fmt: skip
    assert list(decision) == list(Decision.model_fields)  # the engine's dicts are in field order
    assert list(fields) == list(ChannelAction.model_fields)
    made = trusted_model(Decision, dict(decision))
    assert made == Decision.model_validate(decision)
    assert made.to_json() == Decision.model_validate(decision).to_json()
