"""When records count as read but never processed (Faust drops some around rebalances)."""

from __future__ import annotations

from orchestrator.runtime.reread import COOLDOWN_MS, SETTLE_MS, DropWatch


def test_a_partition_read_to_the_end_with_nothing_processed_counts_after_settling() -> None:
    watch = DropWatch()
    assert not watch.observe("raw-2", position=1986, expected=0, now_ms=0)
    assert not watch.observe("raw-2", 1986, 0, SETTLE_MS - 1)
    assert watch.observe("raw-2", 1986, 0, SETTLE_MS)


def test_records_on_their_way_or_making_progress_do_not_count() -> None:
    watch = DropWatch()
    # nothing read beyond the next offset to process
    assert not watch.observe("s", 1958, 1958, 0)
    assert not watch.observe("s", 1958, 1958, 10 * SETTLE_MS)
    # the agent makes progress: the clock starts again each time
    assert not watch.observe("t", 100, 11, 0)
    assert not watch.observe("t", 100, 21, SETTLE_MS)
    assert not watch.observe("t", 100, 31, 2 * SETTLE_MS)
    # caught up
    assert not watch.observe("t", 100, 100, 10 * SETTLE_MS)
    # the position unknown (the partition moved)
    assert not watch.observe("u", None, 40, 10 * SETTLE_MS)


def test_a_stalled_gap_counts_and_seeks_are_spaced() -> None:
    watch = DropWatch()
    watch.observe("t", 100, 31, 0)
    assert watch.observe("t", 100, 31, SETTLE_MS)
    assert watch.should_seek(SETTLE_MS)
    assert not watch.should_seek(SETTLE_MS + COOLDOWN_MS - 1)
    assert watch.should_seek(SETTLE_MS + COOLDOWN_MS)
    assert watch.seeks == 2
