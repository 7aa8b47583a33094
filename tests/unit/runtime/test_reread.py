"""When records count as read but never processed (Faust drops some around rebalances)."""

from __future__ import annotations

from orchestrator.runtime.reread import COOLDOWN_MS, SETTLE_MS, DropWatch


def test_a_partition_read_to_the_end_with_nothing_handed_over_counts_after_settling() -> None:
    watch = DropWatch()
    assert not watch.observe("raw-2", position=1986, processed=None, handed=None, committed=None, now_ms=0)
    assert not watch.observe("raw-2", 1986, None, None, None, SETTLE_MS - 1)
    assert watch.observe("raw-2", 1986, None, None, None, SETTLE_MS)


def test_records_on_their_way_or_making_progress_do_not_count() -> None:
    watch = DropWatch()
    # a seek to the committed offset, nothing read since: Faust's read offset is the position
    assert not watch.observe("s", 1958, None, 1958, 1958, 0)
    assert not watch.observe("s", 1958, None, 1958, 1958, 10 * SETTLE_MS)
    # the agent makes progress: the clock starts again each time
    assert not watch.observe("t", 100, 10, 50, None, 0)
    assert not watch.observe("t", 100, 20, 50, None, SETTLE_MS)
    assert not watch.observe("t", 100, 30, 50, None, 2 * SETTLE_MS)
    # caught up: position right after the last processed offset
    assert not watch.observe("t", 31, 30, 30, None, 10 * SETTLE_MS)
    # nothing read beyond the committed offset
    assert not watch.observe("u", 40, None, None, 40, 10 * SETTLE_MS)


def test_a_stalled_gap_counts_and_seeks_are_spaced() -> None:
    watch = DropWatch()
    watch.observe("t", 100, 30, 30, None, 0)
    assert watch.observe("t", 100, 30, 30, None, SETTLE_MS)
    assert watch.should_seek(SETTLE_MS)
    assert not watch.should_seek(SETTLE_MS + COOLDOWN_MS - 1)
    assert watch.should_seek(SETTLE_MS + COOLDOWN_MS)
    assert watch.seeks == 2


def test_a_record_handed_over_and_never_processed_counts() -> None:
    # handed to a stream (read offset 50, position past it) and skipped there: no progress
    watch = DropWatch()
    assert not watch.observe("t", 51, None, 50, None, 0)
    assert watch.observe("t", 51, None, 50, None, SETTLE_MS)
