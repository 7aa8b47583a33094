"""Hostile events through the ingest stage's pure part: whatever the bytes, route_raw never raises, an
event over a bound is dead-lettered with reason ``over_limit`` naming the field and the setting, and
everything it emits fits Kafka's default 1 MB message limit."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import TopicNames, load_settings
from orchestrator.contracts import DeadLetter
from orchestrator.contracts.events import EventLimits
from orchestrator.contracts.records import DEAD_LETTER_KEEP_BYTES
from orchestrator.exceptions import InvalidEventError
from orchestrator.runtime.ingest import route_raw

TOPICS = TopicNames()
AT = datetime(2026, 11, 20, tzinfo=UTC)
KAFKA_LIMIT = 1_000_000
LIMITS = load_settings(environ={}).event_limits()


def _event(**extra: object) -> dict[str, object]:
    return {
        "event_id": "e1",
        "type": "app.opened",
        "identifiers": {"customer_id": "c-1"},
        "occurred_at": "2026-11-20T10:00:00Z",
        "source": "test",
        **extra,
    }


def _route(value: bytes | None, key: bytes | None = b"k", limits: EventLimits = LIMITS) -> tuple[str, bytes]:
    routed = route_raw(value, key, topic="raw", partition=1, offset=7, topics=TOPICS, at=AT, limits=limits)
    assert len(routed.value) + len(routed.key or b"") < KAFKA_LIMIT
    return routed.reason, routed.value


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def test_defaults_fit_kafkas_message_limit() -> None:
    assert EventLimits() == LIMITS
    assert LIMITS.max_bytes < KAFKA_LIMIT // 2  # room for the wrapper of the identify stage


@pytest.mark.parametrize(
    ("event", "field", "setting"),
    [
        (_event(properties=_nested(200)), "properties.a.a.a", "max_event_depth"),
        (_event(properties=_nested(16)), "properties.a", "max_event_depth"),
        (_event(properties={f"k{i}": i for i in range(1001)}), "properties", "max_event_properties"),
        (
            _event(properties={"l": list(range(600)), "m": list(range(600))}),
            "properties",
            "max_event_properties",
        ),
        (_event(properties={"s": "x" * (32 * 1024 + 1)}), "properties.s", "max_event_string_chars"),
        (_event(properties={"k" * (32 * 1024 + 1): 1}), "properties", "max_event_string_chars"),
    ],
)
def test_an_event_over_a_bound_is_dead_lettered_naming_field_and_setting(
    event: dict[str, object], field: str, setting: str
) -> None:
    reason, value = _route(orjson.dumps(event))
    assert reason == "over_limit"
    letter = DeadLetter.model_validate_json(value)
    assert letter.reason == "over_limit"
    assert f"field '{field}" in letter.error
    assert setting in letter.error
    assert letter.error.startswith("raw[1]@7: ")


def test_just_within_the_bounds_passes() -> None:
    event = _event(properties={"deep": _nested(13), "s": "x" * 32 * 1024, "l": list(range(900))})
    reason, _ = _route(orjson.dumps(event))
    assert reason == "resolved"


def test_a_large_message_keeps_a_prefix_its_length_and_hash() -> None:
    raw = b'{"event_id": "' + b"x" * 900_000 + b'"}'
    reason, value = _route(raw, key=b"K" * 900_000)
    assert reason == "over_limit"
    letter = DeadLetter.model_validate_json(value)
    assert "message of 900016 bytes, over the limit of 262144 (max_event_bytes)" in letter.error
    assert letter.value_truncated
    assert letter.value_bytes == len(raw)
    assert letter.value_sha256 == hashlib.sha256(raw).hexdigest()
    assert letter.original_value() == raw[:DEAD_LETTER_KEEP_BYTES]
    assert base64.b64decode(letter.key_b64 or "") == b"K" * 1024


def test_a_small_bad_message_is_kept_whole() -> None:
    letter = DeadLetter.model_validate_json(_route(b"{nope")[1])
    assert (letter.reason, letter.value_truncated, letter.original_value()) == ("not_json", False, b"{nope")


def test_deep_json_beyond_the_parsers_own_limit_is_not_json() -> None:
    reason, value = _route(b'{"properties": ' + b"[" * 2000 + b"]" * 2000 + b"}")
    assert reason in ("not_json", "over_limit")
    assert DeadLetter.model_validate_json(value).offset == 7


def test_huge_numbers_and_duplicate_keys() -> None:
    assert _route(orjson.dumps(_event()).replace(b'"source"', b'"n": ' + b"9" * 5000 + b', "source"'))[0] in (
        "not_json",
        "invalid_event",
    )
    dup = orjson.dumps(_event()).replace(b'"event_id":"e1"', b'"event_id":"e0","event_id":"e1"')
    assert _route(dup)[0] == "resolved"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda c: st.lists(c, max_size=8) | st.dictionaries(st.text(max_size=10), c, max_size=8),
    max_leaves=60,
)
_SMALL = EventLimits(max_bytes=4096, max_depth=4, max_properties=20, max_string_chars=64)


@given(_JSON)
def test_any_properties_are_resolved_or_dead_lettered_never_raised(props: object) -> None:
    try:
        raw = orjson.dumps(_event(properties=props))
    except orjson.JSONEncodeError:
        return
    for limits in (LIMITS, _SMALL):
        reason, value = _route(raw, limits=limits)
        assert reason in ("resolved", "invalid_event", "over_limit")
        if reason != "resolved":
            assert DeadLetter.model_validate_json(value).original_value() == raw[:DEAD_LETTER_KEEP_BYTES]


@given(st.binary(max_size=3000), st.one_of(st.none(), st.binary(max_size=50)))
def test_any_bytes_never_raise(value: bytes, key: bytes | None) -> None:
    reason, _ = _route(value, key)
    assert reason in ("resolved", "not_json", "invalid_event", "over_limit")


@given(st.text(max_size=200))
def test_any_text_in_any_encoding(text: str) -> None:
    for encoding in ("utf-8", "utf-16", "latin-1"):
        data = orjson.dumps(_event(source=text or "s")).decode().encode(encoding, errors="replace")
        reason, _ = _route(data)
        assert reason in ("resolved", "not_json", "invalid_event", "over_limit")


@given(_JSON)
def test_the_fast_walk_and_the_naming_walk_agree(props: object) -> None:
    data = {"event_id": "e", "properties": props}
    try:
        _SMALL._name_violation(data)
        named = False
    except InvalidEventError:
        named = True
    assert _SMALL._within(data) is not named
