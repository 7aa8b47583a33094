"""Which resolved messages a customer has applied when its partition applies them in order-key order,
not in the order of their resolved offsets (docs/runtime.md, "Step (a) worked out", item 3)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.customer import CustomerLogic
from orchestrator.core.journey import JourneyRegistry, load_journey_file
from orchestrator.runtime.identify import control
from orchestrator.runtime.processor import Message, Processor, order_key

ROOT = Path(__file__).resolve().parents[3]
T0 = 1741000000000


def _processor() -> Processor:
    registry = JourneyRegistry()
    for name in ("welcome.yaml", "abandoned_cart.yaml"):
        registry.deploy(load_journey_file(ROOT / "journeys" / name), 0)
    return Processor(CustomerLogic(registry))


def _event(n: int, raw_partition: int, raw_offset: int, order_ms: int) -> bytes:
    """An ordered event of customer c1 as the identity writer sends it (its order key in its fields)."""
    kind = "account.created" if n == 0 else "cart.updated"
    return orjson.dumps(
        {
            "customer_key": "c1",
            "event": {
                "event_id": f"e{n}",
                "type": kind,
                "source": "t",
                "occurred_at": datetime.fromtimestamp(order_ms / 1000, UTC).isoformat(),
                "identifiers": {"customer_id": "c1", "email": "c1@example.com"},
                "properties": {"item_count": n, "total": 10 * n},
            },
            "source_partition": raw_partition,
            "source_offset": raw_offset,
            "order_ms": order_ms,
        }
    )


def _apply(
    proc: Processor, record: bytes | None, offset: int, value: bytes
) -> tuple[bytes | None, bool, list[bytes]]:
    done = proc.apply("c1", record, [Message.resolved(offset, value, T0)])
    one = done.done[0]
    assert one.error is None, one.error
    return done.record, one.replayed, [a for _, a in one.actions]


def _history(record: bytes | None) -> list[str]:
    state = orjson.loads(record or b"{}")["s"]
    return [row[1] if isinstance(row, list) else str(row) for row in state["p"]["history"]]


def test_the_order_key_of_an_event_and_of_a_control_message() -> None:
    assert order_key(orjson.loads(_event(0, 2, 40, T0))) == [T0, 2, 40, 0]
    body = orjson.loads(_event(0, 2, 40, T0))
    body["merged_from"] = ["anonymous_id:v1", "anonymous_id:v2"]
    assert order_key(body) == [T0, 2, 40, 2]  # after the two merge_outs of its release
    assert order_key(orjson.loads(control("merge_out", into="c1", at=T0, ord=[T0, 2, 40, 1]))) == [
        T0,
        2,
        40,
        1,
    ]
    # hand-overs carry none: they are applied as they are read
    assert order_key(orjson.loads(control("merge_in", key="v", s=None, at=T0, raw={}))) is None
    no_source = orjson.loads(_event(0, 2, 40, T0))
    del no_source["source_offset"]
    assert order_key(no_source) is None


def test_a_held_message_below_the_highest_offset_applied_is_still_applied() -> None:
    # Offsets 10 and 11 carry keys in the other order: the partition applies 11 first and holds 10. A
    # check by offset would take 10 for a message applied already (10 <= 11) and drop it.
    proc = _processor()
    early, late = _event(0, 0, 5, T0), _event(1, 1, 9, T0 + 1000)
    record, replayed, actions = _apply(proc, None, 11, early)
    assert not replayed
    assert actions
    record, replayed, _ = _apply(proc, record, 10, late)
    assert not replayed, "a held message, released after a higher offset, is applied"
    assert orjson.loads(record or b"{}")["rk"] == {"w0": [5, 0], "w1": [9, 0]}  # (each raw partition's lane)
    # both read again after a crash (in offset order): both recognised, the first re-sends its actions
    again, replayed, _ = _apply(proc, record, 10, late)
    assert replayed
    assert again == record
    again, replayed, resent = _apply(proc, record, 11, early)
    assert replayed
    assert again == record
    assert resent == actions


def test_a_merge_in_applied_before_a_held_event_does_not_hide_it() -> None:
    # A hand-over is applied when it is read; an ordered event at a lower offset may still be held.
    proc = _processor()
    merge_in = control("merge_in", key="anonymous_id:v1", s=None, at=T0, raw={})
    record, replayed, _ = _apply(proc, None, 12, merge_in)
    assert not replayed
    record, replayed, _ = _apply(proc, record, 9, _event(0, 0, 5, T0))
    assert not replayed
    assert orjson.loads(record or b"{}")["off"] == {"h": 12, "e": 9}
    again, replayed, _ = _apply(proc, record, 12, merge_in)
    assert replayed
    assert again == record


def test_a_record_of_a_release_before_order_keys_is_judged_by_its_offsets() -> None:
    proc = _processor()
    record, _, actions = _apply(proc, None, 20, _event(0, 0, 5, T0))
    old = orjson.loads(record or b"{}")
    old.pop("rk")
    old["out"] = [entry[:5] for entry in old["out"]]  # (outbox entries had no key)
    legacy = orjson.dumps(old)
    again, replayed, resent = _apply(proc, legacy, 20, _event(0, 0, 5, T0))
    assert replayed
    assert again == legacy
    assert resent == actions
    newer, replayed, _ = _apply(proc, legacy, 21, _event(1, 0, 6, T0 + 1000))
    assert not replayed
    assert orjson.loads(newer or b"{}")["rk"] == {"w0": [6, 0]}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3), min_size=2, max_size=8),
    st.randoms(use_true_random=False),
    st.integers(min_value=0, max_value=8),
)
def test_a_crash_at_any_point_applies_each_message_once(partitions: list[int], rng, crash: int) -> None:  # type: ignore[no-untyped-def]
    """Messages for one customer, their keys in an order their offsets do not follow (the fast path and
    the writer interleave in the resolved topic). A run applies them in key order; a crash after any of
    them reads every message again from the commit bound: those at or below the last key applied come
    at once, in offset order, the others are released in key order. The record and the actions are
    those of the run without a crash."""
    proc = _processor()
    messages = [(n, _event(n, p, 100 + n, T0 + 1000 * n)) for n, p in enumerate(partitions)]
    offsets = list(range(len(messages)))
    rng.shuffle(offsets)
    by_key = [(offsets[n], value) for n, value in messages]  # (already in key order: times rise)

    clean: bytes | None = None
    clean_actions: list[bytes] = []
    for offset, value in by_key:
        clean, _, actions = _apply(proc, clean, offset, value)
        clean_actions += actions

    crash = min(crash, len(by_key))
    record: bytes | None = None
    seen: list[bytes] = []
    for offset, value in by_key[:crash]:
        record, _, actions = _apply(proc, record, offset, value)
        seen += actions
    applied = by_key[:crash]
    for offset, value in sorted(applied):  # read again: at or below the cursor, at once
        again, replayed, actions = _apply(proc, record, offset, value)
        assert replayed
        assert again == record
        assert set(actions) <= set(seen)
    for offset, value in by_key[crash:]:
        record, replayed, actions = _apply(proc, record, offset, value)
        assert not replayed
        seen += actions
    assert record == clean
    assert seen == clean_actions
    assert len(_history(record)) == len(messages)


def test_a_late_message_of_another_raw_partition_is_applied_not_taken_for_a_copy() -> None:
    # A raw partition left out (idle) comes back: its message's key is below one applied already, but
    # its lane (raw partition 0, the writer's) has not seen it.
    proc = _processor()
    record, _, _ = _apply(proc, None, 3, _event(0, 1, 7, T0 + 5000))
    record, replayed, _ = _apply(proc, record, 4, _event(1, 0, 2, T0))
    assert not replayed
    assert len(_history(record)) == 2
    # the fast path's lane of raw partition 0 is another lane: its messages are judged apart
    fast = orjson.loads(_event(2, 0, 3, T0 + 6000))
    fast["via"] = "r0"
    record, replayed, _ = _apply(proc, record, 5, orjson.dumps(fast))
    assert not replayed
    assert orjson.loads(record or b"{}")["rk"] == {"w1": [7, 0], "w0": [2, 0], "f0": [3, 0]}


def test_the_same_raw_event_by_both_paths_is_applied_once() -> None:
    # read again by an ingest worker whose claims were behind: the writer's copy after the fast one
    proc = _processor()
    record, _, _ = _apply(proc, None, 1, _event(0, 0, 1, T0))
    fast = orjson.loads(_event(1, 0, 2, T0 + 1000))
    fast["via"] = "r0"
    record, _, _ = _apply(proc, record, 2, orjson.dumps(fast))
    again = proc.apply("c1", record, [Message.resolved(3, _event(1, 0, 2, T0 + 1000), T0)])
    assert again.done[0].duplicate  # the journeys' event-id dedupe
    assert len(_history(again.record)) == 2


def test_a_merged_visitors_raw_offsets_count_only_once_the_merge_is_done() -> None:
    # The visitor's state (with the raw offsets it applied) arrives while this customer still holds
    # messages of the same raw partition from before the merge; they are no copies.
    proc = _processor()
    merge_in = control("merge_in", key="anonymous_id:v1", s=None, at=T0, raw={"0": 50})
    record, _, _ = _apply(proc, None, 12, merge_in)
    assert "raw" not in orjson.loads(record or b"{}") or orjson.loads(record or b"{}")["raw"] == {}
    body = orjson.loads(_event(0, 0, 40, T0))
    del body["order_ms"]  # (an event of a release before order keys: judged by its raw offset)
    record, replayed, _ = _apply(proc, record, 13, orjson.dumps(body))
    assert not replayed
    assert len(_history(record)) == 1


def test_a_new_customers_failed_first_event_leaves_an_empty_record_for_the_fast_path() -> None:
    proc = _processor()
    broken = orjson.loads(_event(0, 0, 1, T0))
    broken["event"]["occurred_at"] = "not a time"
    fast = orjson.loads(_event(1, 0, 2, T0 + 1000))
    fast["via"] = "r0"
    done = proc.apply("c1", None, [Message.resolved(1, orjson.dumps(broken), T0)])
    assert done.done[0].error is not None
    assert orjson.loads(done.record or b"{}")["s"] is None  # kept: the customer exists (it was claimed)
    after = proc.apply("c1", done.record, [Message.resolved(2, orjson.dumps(fast), T0)])
    assert not after.done[0].erased
    assert len(_history(after.record)) == 1
    # without a record at all, a fast-path event is an erased customer's: dropped, as the graph would
    gone = proc.apply("c9", None, [Message.resolved(3, orjson.dumps(fast), T0)])
    assert gone.done[0].erased
    assert gone.record is None
    # a customer erased earlier in the same batch gets no empty record from a later failure
    erase = orjson.loads(_event(2, 0, 5, T0 + 2000))
    erase["event"]["type"] = "customer.erased"
    batch = [Message.resolved(4, _event(3, 0, 4, T0 + 500), T0), Message.resolved(5, orjson.dumps(erase), T0)]
    batch.append(Message.resolved(6, orjson.dumps(broken), T0))
    erased = proc.apply("c1", None, batch)
    assert erased.done[2].error is not None
    assert erased.record is None
