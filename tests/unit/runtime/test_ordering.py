"""The event-time order of a customer partition's inputs (:mod:`orchestrator.runtime.ordering`), against
the order ``orchestrator simulate`` would use: every event sorted by (order time, raw partition, raw
offset), whichever path each took and however the paths interleave on the way."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.runtime.ordering import Admitted, OrderedInputs, OrderKey, OrderTimes

WRITER = "w"

# per raw partition, its events' own times in offset order (producers that merge sources send some late)
raw_partitions = st.lists(st.lists(st.integers(0, 50), max_size=12), min_size=1, max_size=4)


def test_order_time_is_the_running_maximum_of_a_raw_partitions_event_times() -> None:
    times = OrderTimes()
    assert [times.next(0, t) for t in (10, 30, 20, 30, 40, 5)] == [10, 30, 30, 30, 40, 40]
    assert times.next(1, 7) == 7  # each raw partition on its own
    assert times.get(0) == 40
    restarted = OrderTimes()
    restarted.restore(0, times.get(0))  # kept with the committed offset: the same sequence goes on
    assert restarted.next(0, 12) == 40


def _paths(raws: list[list[int]], rng: random.Random) -> tuple[list[OrderKey], dict[str, list[OrderKey]]]:
    """Each event's key as ingest gives it, and the streams: a fast-path stream per raw partition (in its
    offset order) and the identity writer's (every ordered-path event, in key order)."""
    times = OrderTimes()
    keys: list[OrderKey] = []
    streams: dict[str, list[OrderKey]] = {WRITER: []}
    for rp, events in enumerate(raws):
        streams[f"r{rp}"] = []
        for offset, t in enumerate(events):
            key = (times.next(rp, t), rp, offset, 0)
            keys.append(key)
            streams[WRITER if rng.random() < 0.4 else f"r{rp}"].append(key)
    streams[WRITER].sort()
    return keys, streams


def _arrivals(
    streams: dict[str, list[OrderKey]], rng: random.Random
) -> list[tuple[str, OrderKey | None, int]]:
    """The streams interleaved at random (each keeps its own order), a watermark after some events: the
    order time below which the source sends nothing more (its last key's time; the writer's: its next
    key's time, all before it released), and a final watermark past everything."""
    out: list[tuple[str, OrderKey | None, int]] = []
    cursors = dict.fromkeys(streams, 0)
    while any(cursors[s] < len(keys) for s, keys in streams.items()):
        source = rng.choice([s for s, keys in streams.items() if cursors[s] < len(keys)])
        keys = streams[source]
        key = keys[cursors[source]]
        cursors[source] += 1
        out.append((source, key, 0))
        if rng.random() < 0.5:
            if source == WRITER:
                following = keys[cursors[source]] if cursors[source] < len(keys) else None
                mark = key[0] + 1 if following is None else following[0]
            else:
                mark = key[0]
            out.append((source, None, mark))
    out.extend((source, None, 10**6) for source in streams)
    return out


@settings(max_examples=300, deadline=None)
@given(raw_partitions, st.integers(0, 2**32))
def test_the_partition_applies_every_event_in_the_order_simulate_sorts_them(
    raws: list[list[int]], seed: int
) -> None:
    rng = random.Random(seed)
    keys, streams = _paths(raws, rng)
    inputs: OrderedInputs[OrderKey] = OrderedInputs(streams)
    applied: list[OrderKey] = []
    clocks: list[int] = []
    for position, (source, key, mark) in enumerate(_arrivals(streams, rng)):
        if key is None:
            inputs.mark(source, mark)
        else:
            assert inputs.add(source, key, key, position) is Admitted.HELD
        released = inputs.release(limit=rng.choice([None, 1, 3]))
        applied += [r.item for r in released]
        # whatever is held, a commit never passes it; the clock never passes it either
        held = [m for q in inputs._queues.values() for m in q]
        assert all(inputs.commit_bound(position + 1) <= m.position for m in held)
        assert all(inputs.clock <= m.key[0] for m in held)
        clocks.append(inputs.clock)
    while inputs.held():
        applied += [r.item for r in inputs.release(limit=2)]
    assert applied == sorted(keys)
    assert clocks == sorted(clocks)  # the clock never goes back
    for rp in range(len(raws)):  # each raw partition's events in offset order, whichever path
        offsets = [o for _, p, o, _ in applied if p == rp]
        assert offsets == sorted(offsets)


@settings(max_examples=200, deadline=None)
@given(raw_partitions, st.integers(0, 2**32), st.integers(0, 60))
def test_after_a_crash_the_partition_reads_from_its_commit_bound_and_applies_the_same(
    raws: list[list[int]], seed: int, crash_at: int
) -> None:
    """The state kept with each batch is the cursor (and the clock, the marks); what a crash loses is the
    held messages, which the commit bound has kept unread. Read again from there, the messages at or
    below the cursor come back NOW (applied before: the customer's own checks recognise them) and the
    rest are released as they were the first time."""
    rng = random.Random(seed)
    keys, streams = _paths(raws, rng)
    arrivals = _arrivals(streams, rng)
    crash_at = min(crash_at, len(arrivals))

    first: OrderedInputs[OrderKey] = OrderedInputs(streams)
    applied: list[OrderKey] = []
    for position, (source, key, mark) in enumerate(arrivals[:crash_at]):
        if key is None:
            first.mark(source, mark)
        else:
            first.add(source, key, key, position)
        applied += [r.item for r in first.release()]
    bound = first.commit_bound(crash_at)

    again: OrderedInputs[OrderKey] = OrderedInputs(streams)
    again.restore(first.snapshot())
    for position, (source, key, mark) in enumerate(arrivals[bound:], start=bound):
        if key is None:
            again.mark(source, mark)
        elif again.add(source, key, key, position) is Admitted.NOW:
            assert key in applied  # read again, applied before the crash
        applied += [r.item for r in again.release()]
    assert applied == sorted(keys)


def test_a_silent_source_is_left_out_after_idle_ms_and_its_late_messages_apply_at_once() -> None:
    inputs: OrderedInputs[str] = OrderedInputs(["r0", "r1"], idle_ms=1_000)
    inputs.add("r0", (100, 0, 0, 0), "a", 0)
    inputs.mark("r0", 100, sent_ms=0)
    inputs.mark("r1", 50, sent_ms=0)
    assert inputs.release() == []  # r1 has only passed 50
    inputs.mark("r0", 200, sent_ms=900)
    assert inputs.release() == []  # r1 heard 0.9 s ago: still counted
    inputs.mark("r0", 200, sent_ms=1_500)
    assert [r.item for r in inputs.release()] == ["a"]  # r1 silent for 1.5 s: left out
    assert inputs.idle() == frozenset({"r1"})
    assert inputs.add("r1", (60, 1, 0, 0), "late", 1) is Admitted.NOW  # older than what was released
    assert inputs.add("r1", (300, 1, 1, 0), "b", 2) is Admitted.HELD
    inputs.mark("r1", 300, sent_ms=1_600)  # heard again: back in the minimum
    assert inputs.idle() == frozenset()
    assert inputs.low() == 200
    assert inputs.release() == []
    assert inputs.add("r1", (300, 1, 1, 0), "b", 3) is Admitted.COPY  # sent again behind its original


def test_unknown_sources_are_refused() -> None:
    inputs: OrderedInputs[str] = OrderedInputs(["r0"])
    with pytest.raises(ValueError, match="r9"):
        inputs.add("r9", (1, 9, 0, 0), "x", 0)
    with pytest.raises(ValueError, match="r9"):
        inputs.mark("r9", 1)


def test_one_source_releases_every_message_as_it_comes() -> None:
    # the identity writer alone (before the fast path): its stream is in key order, nothing can overtake
    inputs: OrderedInputs[str] = OrderedInputs(["w"])
    assert inputs.add("w", (100, 0, 7, 0), "merge_out", 0) is Admitted.HELD
    assert inputs.add("w", (100, 0, 7, 1), "event", 1) is Admitted.HELD  # same raw event, next message
    assert [r.item for r in inputs.release()] == ["merge_out", "event"]
    assert inputs.clock == 0  # (no watermark yet: the clock waits)
    inputs.mark("w", 101)
    assert inputs.release() == []
    assert inputs.clock == 101
    assert inputs.commit_bound(2) == 2


def test_the_smallest_key_goes_once_every_other_source_holds_a_larger_one_or_passed_its_time() -> None:
    inputs: OrderedInputs[str] = OrderedInputs(["w", "r0", "r1"])
    inputs.add("r0", (10, 0, 0, 0), "a", 0)
    inputs.add("w", (20, 1, 5, 0), "b", 1)
    assert inputs.release() == []  # r1 has sent nothing: it could still send something older
    inputs.mark("r1", 10)
    assert inputs.release() == []  # r1 may still send time 10
    inputs.mark("r1", 11)
    assert [r.item for r in inputs.release()] == ["a"]  # w holds a larger key, r1 is past 10
    assert inputs.commit_bound(2) == 1  # b is held: a commit stops before it
    inputs.add("r1", (30, 2, 0, 0), "c", 2)
    assert inputs.release() == []  # r0 is empty and has not passed 20
    inputs.mark("r0", 25)
    assert [r.item for r in inputs.release()] == ["b"]
    assert inputs.clock == 10  # (r0 held a at 10, w held b, r1 had passed 10); w now holds nothing and
    # has sent no watermark: it could still send time 20
    inputs.mark("w", 40)
    assert inputs.release() == []
    assert inputs.clock == 25  # r0's mark; r1 holds c at 30 (it sends nothing older), w passed 40


def test_a_source_never_heard_since_reading_began_is_left_out_after_idle_ms() -> None:
    # reading began (assignment) while raw partition r1's ingest was down: it never sends
    inputs: OrderedInputs[str] = OrderedInputs(["w", "r0", "r1"], idle_ms=1_000)
    inputs.assume_heard(["r0", "r1"], 10_000)
    inputs.add("r0", (100, 0, 0, 0), "a", 0)
    inputs.mark("w", 200)
    inputs.mark("r0", 150, sent_ms=10_500)
    assert inputs.release() == []  # r1 could still send something older
    inputs.mark("r0", 160, sent_ms=11_200)
    assert inputs.idle() == frozenset({"r1"})
    assert [r.item for r in inputs.release()] == ["a"]
    assert "w" not in inputs.heard  # (the writer is never left out)


def test_a_late_message_of_the_writer_takes_its_place_instead_of_passing_for_a_copy() -> None:
    # Found by tests/integration/test_fast_path_crash.py: the writer released an event late (its raw
    # partition's watermark, the wall clock, had passed it before it reached the broker) after a larger
    # key it had released. Taken for a copy of a held message, it was dropped: the customer's first
    # event lost, and with it the welcome email.
    inputs: OrderedInputs[str] = OrderedInputs(["w", "r0"])
    assert inputs.add("w", (97_273, 0, 25, 0), "other customer", 32) is Admitted.HELD
    assert inputs.add("w", (97_223, 1, 40, 0), "late first event", 61) is Admitted.HELD
    assert inputs.add("r0", (97_300, 0, 26, 0), "fast", 70) is Admitted.HELD
    assert inputs.add("w", (97_223, 1, 40, 0), "a copy of it", 80) is Admitted.COPY
    assert inputs.commit_bound(81) == 32
    inputs.mark("w", 97_400)
    inputs.mark("r0", 97_400)
    assert [r.item for r in inputs.release()] == ["late first event", "other customer", "fast"]
    # late after the cursor passed it: applied at once (the customer's own checks tell a copy)
    assert inputs.add("w", (97_250, 2, 3, 0), "later still", 90) is Admitted.NOW
