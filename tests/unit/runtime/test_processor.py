"""The runtime's replay rules, without Kafka: applied offsets, the outbox, re-resolved copies."""

from __future__ import annotations

from pathlib import Path

import orjson

from orchestrator.contracts import parse_event
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.journey import JourneyRegistry, load_journey_file
from orchestrator.runtime.processor import Processor

ROOT = Path(__file__).resolve().parents[3]


def _processor() -> Processor:
    registry = JourneyRegistry()
    registry.deploy(load_journey_file(ROOT / "journeys" / "welcome.yaml"), 0)
    return Processor(CustomerLogic(registry))


def _signup(event_id: str = "s1") -> bytes:
    ids = {"customer_id": "c1", "email": "c1@example.com"}
    at = "2025-03-03T09:00:00Z"
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "account.created",
            "source": "t",
            "occurred_at": at,
            "identifiers": ids,
        }
    )


def test_a_replayed_message_resends_its_actions_and_changes_nothing() -> None:
    proc = _processor()
    first = proc.on_event("c1", None, parse_event(_signup()), offset=7, now_ms=1741000000000, source=(0, 3))
    assert [ch for ch, _ in first.actions] == ["email"]
    again = proc.on_event("c1", first.record, parse_event(_signup()), offset=7, now_ms=1741000000000)
    assert again.replayed
    assert not again.changed
    assert again.actions == first.actions
    assert again.decisions == first.decisions


def test_a_re_resolved_copy_is_recognised_by_its_raw_offset() -> None:
    proc = _processor()
    first = proc.on_event("c1", None, parse_event(_signup()), offset=7, now_ms=1741000000000, source=(2, 40))
    # the same raw message resolved again after a crash: a new resolved offset, even another event id
    copy = proc.on_event(
        "c1", first.record, parse_event(_signup("s1-copy")), 9, 1741000000000, source=(2, 40)
    )
    assert copy.duplicate
    assert not copy.changed
    assert copy.actions == []
    later = proc.on_event("c1", first.record, parse_event(_signup("s2")), 10, 1741000000000, source=(2, 41))
    assert not later.duplicate
    assert orjson.loads(later.record or b"{}")["raw"] == {"2": 41}


def test_a_replayed_message_that_carries_its_raw_offset_still_resends_its_actions() -> None:
    # Read again after a crash (same resolved offset, same raw offset): a replay, not a copy.
    # Taking it for a re-resolved copy would swallow actions that may never have reached Kafka.
    proc = _processor()
    first = proc.on_event("c1", None, parse_event(_signup()), offset=7, now_ms=1741000000000, source=(2, 40))
    again = proc.on_event("c1", first.record, parse_event(_signup()), 7, 1741000000000, source=(2, 40))
    assert again.replayed
    assert again.actions == first.actions
    assert again.next_wakeup_ms == first.next_wakeup_ms
