"""The runtime's replay rules, without Kafka: applied offsets, the outbox, re-resolved copies."""

from __future__ import annotations

from pathlib import Path

import orjson

from orchestrator.contracts import parse_event
from orchestrator.core.customer import CustomerLogic, CustomerState
from orchestrator.core.journey import JourneyRegistry, load_journey_file
from orchestrator.runtime.processor import Message, Processor

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


def _resolved(raw: bytes, key: str = "c1") -> bytes:
    return orjson.dumps({"customer_key": key, "event": orjson.loads(parse_event(raw).to_json())})


def test_a_batch_reads_and_writes_the_record_once_and_replays_like_one_by_one() -> None:
    proc = _processor()
    batch = [Message.resolved(10 + i, _resolved(_signup(f"s{i}")), 0) for i in range(3)]
    applied = proc.apply("c1", None, batch)
    assert applied.changed
    assert [len(d.actions) for d in applied.done] == [1, 0, 0]  # s1 and s2: the same customer again
    together = proc.decode(applied.record)
    alone = proc._one_by_one("c1", None, batch)
    assert together is not None
    assert together["s"] == (proc.decode(alone.record) or {})["s"]
    # read again after a crash (nothing committed): the first message re-sends its action, byte for byte
    again = proc.apply("c1", applied.record, batch[:1])
    assert again.done[0].replayed
    assert again.done[0].actions == applied.done[0].actions
    assert not again.changed


def test_outbox_entries_below_the_committed_offset_are_dropped_when_the_record_is_written() -> None:
    proc = _processor()
    first = proc.apply("c1", None, [Message.resolved(10, _resolved(_signup("a")), 0)])
    assert len((proc.decode(first.record) or {})["out"]) == 1
    later = proc.apply(
        "c1", first.record, [Message.resolved(11, _resolved(_signup("b")), 0)], committed={"e": 11}
    )
    assert (proc.decode(later.record) or {})["out"] == []  # offset 10 is committed: never read again
    kept = proc.apply(
        "c1", first.record, [Message.resolved(11, _resolved(_signup("b")), 0)], committed={"e": 10}
    )
    assert [e[1] for e in (proc.decode(kept.record) or {})["out"]] == [10]


def test_a_failing_message_fails_alone_in_its_batch() -> None:
    proc = _processor()
    batch = [
        Message.resolved(1, _resolved(_signup("a")), 0),
        Message.resolved(2, b'{"customer_key": "c1", "event": {"type": "x.y"}}', 0),
        Message.resolved(3, _resolved(_signup("c")), 0),
    ]
    applied = proc.apply("c1", None, batch)
    assert [d.error is not None for d in applied.done] == [False, True, False]
    assert "not an event this orchestrator wrote" in str(applied.done[1].error)
    state = proc.state_of(applied.record)
    assert state is not None
    assert set(state.seen) == {"a", "c"}


def test_a_late_event_is_said_late_with_its_own_time() -> None:
    registry = JourneyRegistry()
    registry.deploy(load_journey_file(ROOT / "journeys" / "welcome.yaml"), 0)
    proc = Processor(CustomerLogic(registry, lateness_ms=3_600_000))
    signup_ms = 1740992400000  # 2025-03-03T09:00:00Z
    clock = signup_ms + 2 * 3_600_000  # the partition's clock two hours on
    applied = proc.apply("c1", None, [Message.resolved(1, _resolved(_signup()), clock, clock)])
    (done,) = applied.done
    assert (done.timing, done.occurred_ms, done.actions) == ("late", signup_ms, [])
    on_time = proc.apply("c1", None, [Message.resolved(1, _resolved(_signup()), signup_ms, signup_ms)])
    assert on_time.done[0].timing is None
    assert [ch for ch, _ in on_time.done[0].actions] == ["email"]
    assert CustomerState.from_dict((proc.decode(applied.record) or {})["s"]).timing == {
        "late": [1, signup_ms]
    }
