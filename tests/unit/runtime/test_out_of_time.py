"""The log lines about late and future events: the first at once, then one a minute with the rate."""

from __future__ import annotations

from orchestrator.runtime.out_of_time import OutOfTimeLog

T = 1_764_000_000_000  # 2025-11-24T16:00:00Z


def test_the_first_late_event_of_a_partition_is_said_at_once_with_what_it_means() -> None:
    log = OutOfTimeLog()
    line = log.note(3, "late", where="resolved[3]@17", occurred_ms=T, clock_ms=T + 86_400_000 * 3, wall_s=0)
    assert line is not None
    assert line.startswith("resolved[3]@17: an event of 2025-11-24T16:00:00Z is late")
    assert "the partition's clock is at 2025-11-27T16:00:00Z" in line
    assert "no journey starts" in line
    assert "orchestrator_events_out_of_time" in line


def test_then_one_line_a_minute_with_the_count_and_rate() -> None:
    log = OutOfTimeLog()
    assert log.note(0, "late", where="r[0]@1", occurred_ms=T, clock_ms=None, wall_s=100) is not None
    for i in range(119):
        assert (
            log.note(0, "late", where=f"r[0]@{i + 2}", occurred_ms=T, clock_ms=None, wall_s=100 + i / 2)
            is None
        )
    line = log.note(0, "late", where="r[0]@500", occurred_ms=T, clock_ms=None, wall_s=160)
    assert line == (
        "partition 0: 120 late events in the last 60 s (2.0/s), the last at r[0]@500 of 2025-11-24T16:00:00Z"
    )
    assert log.note(0, "late", where="r[0]@501", occurred_ms=T, clock_ms=None, wall_s=161) is None


def test_partitions_and_reasons_are_told_apart() -> None:
    log = OutOfTimeLog()
    assert log.note(0, "late", where="a", occurred_ms=T, clock_ms=None, wall_s=0) is not None
    assert log.note(1, "late", where="b", occurred_ms=T, clock_ms=None, wall_s=0) is not None
    future = log.note(0, "future", where="c", occurred_ms=T, clock_ms=T - 1000, wall_s=0)
    assert future is not None
    assert "applied now" in future
