"""Input records are processed strictly in order; skipped records are read again (runtime/offsets.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.runtime.offsets import RESEEK_MS, Admit, InputOffsets


def test_records_in_order_are_processed_and_committed_as_the_next_offset() -> None:
    offsets = InputOffsets()
    offsets.begin("r0", 5)
    assert offsets.last("r0") is None
    assert offsets.to_commit() == {}
    for offset in (5, 6, 7):
        assert offsets.admit("r0", offset, 0) is Admit.PROCESS
        offsets.done("r0", offset)
    assert offsets.last("r0") == 7
    assert offsets.to_commit() == {"r0": 8}
    offsets.on_committed({"r0": 8})
    assert offsets.to_commit() == {}


def test_the_first_records_skipped_by_faust_are_read_again() -> None:
    # the case the kill -9 test showed: a partition the group never committed, its first records
    # discarded during table recovery, the first record delivered at offset 7
    offsets = InputOffsets()
    offsets.begin("resolved-0", 0)
    assert offsets.admit("resolved-0", 7, 1_000) is Admit.SEEK
    # stale records keep coming for a while: no new seek
    assert offsets.admit("resolved-0", 8, 1_100) is Admit.WAIT
    assert offsets.to_commit() == {}  # nothing past the skipped records is committed
    # after the seek, from the start
    assert offsets.admit("resolved-0", 0, 1_200) is Admit.PROCESS
    offsets.done("resolved-0", 0)
    assert offsets.to_commit() == {"resolved-0": 1}
    assert offsets.skipped == 1


def test_a_seek_that_did_not_take_is_issued_again() -> None:
    offsets = InputOffsets()
    offsets.begin("p", 10)
    assert offsets.admit("p", 12, 0) is Admit.SEEK
    assert offsets.admit("p", 13, RESEEK_MS - 1) is Admit.WAIT
    assert offsets.admit("p", 14, RESEEK_MS) is Admit.SEEK


def test_records_delivered_again_after_a_seek_are_skipped() -> None:
    offsets = InputOffsets()
    offsets.begin("p", 0)
    for offset in range(4):
        assert offsets.admit("p", offset, 0) is Admit.PROCESS
        offsets.done("p", offset)
    assert offsets.admit("p", 2, 0) is Admit.DONE
    assert offsets.admit("p", 4, 0) is Admit.PROCESS


def test_revoked_partitions_start_over_from_the_group_offset() -> None:
    offsets = InputOffsets()
    offsets.begin("p", 0)
    offsets.done("p", 0)
    offsets.forget(["p"])
    assert not offsets.knows("p")
    assert offsets.to_commit() == {}
    offsets.begin("p", 40)
    assert offsets.admit("p", 40, 0) is Admit.PROCESS


@given(st.lists(st.integers(min_value=0, max_value=30), max_size=200))
def test_whatever_is_delivered_only_a_gapless_prefix_is_processed_and_committed(delivered: list[int]) -> None:
    offsets = InputOffsets()
    offsets.begin("p", 0)
    processed: list[int] = []
    for now, offset in enumerate(delivered):
        if offsets.admit("p", offset, now * 10) is Admit.PROCESS:
            processed.append(offset)
            offsets.done("p", offset)
    assert processed == list(range(len(processed)))
    assert offsets.to_commit() == ({"p": len(processed)} if processed else {})


def test_a_batch_is_taken_from_the_next_offset_up_to_a_hole() -> None:
    from orchestrator.runtime.offsets import InputOffsets

    offsets = InputOffsets()
    offsets.begin("p0", 10)
    assert offsets.take("p0", [8, 9, 10, 11, 12]) == (2, 5, None)  # 8, 9 processed already
    assert offsets.next["p0"] == 10, "moved only once the run is done"
    offsets.done("p0", 12)
    assert offsets.take("p0", [13, 14, 16, 17]) == (0, 2, 16)  # 15 is missing: seek back after 14
    offsets.done("p0", 14)
    assert offsets.admit("p0", 16, 0).value == "seek"
    assert offsets.take("p0", [20, 21]) == (0, 0, 20)  # nothing to take: all after a hole
    assert offsets.take("p0", [3, 4]) == (2, 2, None)  # all processed already


def test_a_record_done_after_its_partition_was_revoked_changes_nothing() -> None:
    from orchestrator.runtime.offsets import InputOffsets

    offsets = InputOffsets()
    offsets.begin("p0", 10)
    offsets.forget(["p0"])  # a rebalance while the batch was being applied
    offsets.done("p0", 12)
    assert offsets.to_commit() == {}
    assert not offsets.knows("p0")


def test_a_commit_stops_at_a_held_message_whatever_was_processed_after_it() -> None:
    offsets = InputOffsets()
    offsets.begin("resolved-0", 10)
    offsets.done("resolved-0", 19)  # read up to 19; the message at 12 is held (not applied yet)
    offsets.hold("resolved-0", 12)
    assert offsets.to_commit() == {"resolved-0": 12}
    offsets.on_committed({"resolved-0": 12})
    assert offsets.to_commit() == {}
    offsets.hold("resolved-0", None)  # released and applied
    assert offsets.to_commit() == {"resolved-0": 20}
    offsets.hold("resolved-0", 15)
    offsets.forget(["resolved-0"])  # revoked: the hold goes with the partition
    assert offsets.holds == {}
    offsets.hold("resolved-0", 3)  # (a partition not read: nothing to hold)
    assert offsets.holds == {}
