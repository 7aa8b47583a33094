"""Routing of raw messages: resolution and dead letters, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.config import TopicNames
from orchestrator.contracts import DeadLetter, Identifiers, ResolvedEvent, parse_event
from orchestrator.core.resolution import canonical_key
from orchestrator.exceptions import InvalidEventError
from orchestrator.runtime.ingest import route_raw
from tests.unit.contracts.test_engine_event import near_valid

TOPICS = TopicNames()
AT = datetime(2026, 11, 22, tzinfo=UTC)


def raw(**over: object) -> bytes:
    base = {
        "event_id": "e1",
        "type": "page.viewed",
        "identifiers": {"email": "Ann@Example.com", "device_id": "d1"},
        "occurred_at": "2026-11-20T10:00:00Z",
        "source": "web",
    }
    return orjson.dumps({**base, **over})


def test_resolved_event_is_keyed_by_canonical_key() -> None:
    routed = route_raw(raw(), None, topic="in", partition=0, offset=5, topics=TOPICS, at=AT)
    assert routed.topic == TOPICS.identify
    assert routed.key == b"email:ann@example.com"
    assert ResolvedEvent.model_validate_json(routed.value).event.event_id == "e1"


def test_bad_message_becomes_a_dead_letter_with_its_place() -> None:
    routed = route_raw(b"\xffnope", b"k", topic="in", partition=2, offset=9, topics=TOPICS, at=AT)
    assert routed.topic == TOPICS.dead_letter
    letter = DeadLetter.model_validate_json(routed.value)
    assert (letter.reason, letter.topic, letter.partition, letter.offset) == ("not_json", "in", 2, 9)
    assert letter.original_value() == b"\xffnope"
    assert letter.error.startswith("in[2]@9: ")
    empty = route_raw(None, None, topic="in", partition=0, offset=1, topics=TOPICS, at=AT)
    assert DeadLetter.model_validate_json(empty.value).reason == "not_json"


def test_canonical_key_priority() -> None:
    assert canonical_key(Identifiers(customer_id="C1", email="a@b")) == "C1"
    assert canonical_key(Identifiers(phone="+1", device_id="d")) == "phone:+1"
    assert canonical_key(Identifiers(anonymous_id="x")) == "anonymous_id:x"


@settings(max_examples=400, deadline=None)
@given(near_valid(), st.integers(0, 63), st.integers(0, 2**40), st.one_of(st.none(), st.integers(0, 2**45)))
def test_routed_bytes_are_what_the_models_write(
    event: dict[str, Any], partition: int, offset: int, order_ms: int | None
) -> None:
    """The resolved message is ResolvedEvent.to_json's bytes; a dead letter names the model's error."""
    value = orjson.dumps(event)
    given_times: list[int] = []

    def order(occurred_ms: int) -> int:
        given_times.append(occurred_ms)
        return order_ms if order_ms is not None else occurred_ms

    routed = route_raw(
        value, None, topic="in", partition=partition, offset=offset, topics=TOPICS, at=AT,
        order=None if order_ms is None else order,
    )  # fmt: skip
    try:
        model = parse_event(value)
    except InvalidEventError as exc:
        refused = exc.detail
    else:
        refused = None
    if refused is not None:
        assert routed.topic == TOPICS.dead_letter
        assert str(refused) in DeadLetter.model_validate_json(routed.value).error
        return
    expected = ResolvedEvent(
        customer_key=canonical_key(model.identifiers),
        event=model,
        source_partition=partition,
        source_offset=offset,
        order_ms=order_ms,
    )
    assert (routed.topic, routed.key) == (TOPICS.identify, expected.customer_key.encode())
    assert routed.value == expected.to_json()
    assert routed.event_ms == model.occurred_ms
    assert routed.order_ms == order_ms
    assert given_times == ([] if order_ms is None else [model.occurred_ms])  # once per valid event
