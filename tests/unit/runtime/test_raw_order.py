"""Ingest's order times kept with its commits (:mod:`orchestrator.runtime.raw_order`)."""

from __future__ import annotations

import logging

import pytest
from faust.types import TP

from orchestrator.runtime.raw_order import RawOrder, fast_of, metadata_of, order_of

RAW = TP("orch.raw", 2)
OTHER = TP("orch.raw", 3)


def test_the_order_time_after_the_last_done_run_goes_with_the_commit() -> None:
    order = RawOrder()
    assert order.needs_restore(RAW)
    order.restore(RAW, None)  # nothing committed yet
    assert not order.needs_restore(RAW)
    assert order.metadata(RAW) == ""
    assert [order.next(RAW, t) for t in (100, 300, 200)] == [100, 300, 300]
    assert order.metadata(RAW) == ""  # the run is not done: its offsets are not committed either
    order.done(RAW)
    assert order_of(order.metadata(RAW)) == 300
    assert order.next(RAW, 400) == 400  # the next run, not done yet: the commit keeps 300
    assert order_of(order.metadata(RAW)) == 300


def test_a_worker_that_takes_the_partition_over_goes_on_from_the_committed_order_time() -> None:
    first = RawOrder()
    first.restore(RAW, None)
    first.next(RAW, 500)
    first.done(RAW)
    committed = first.metadata(RAW)

    second = RawOrder()
    second.restore(RAW, committed)
    assert second.next(RAW, 450) == 500  # a late event keeps its place after the committed ones
    assert order_of(second.metadata(RAW)) == 500  # restored: a commit before any run keeps it
    second.restore(OTHER, None)
    assert second.next(OTHER, 10) == 10  # each raw partition on its own


def test_a_revoked_partition_is_read_back_from_the_commit_when_it_comes_back() -> None:
    order = RawOrder()
    order.restore(RAW, metadata_of(700))
    order.forget([RAW])
    assert order.needs_restore(RAW)
    assert order.metadata(RAW) == ""
    order.restore(RAW, None)
    assert order.next(RAW, 5) == 5


@pytest.mark.parametrize("metadata", ["", None, "not json", '{"other": 1}', '{"order_ms": "x"}'])
def test_metadata_without_an_order_time_starts_the_running_maximum_again(
    metadata: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "orchestrator.worker"):
        assert order_of(metadata) is None
    if metadata:
        assert "keeps no order time" in caplog.text


def test_the_fast_allowance_rises_only_with_a_commit_that_succeeded() -> None:
    order = RawOrder()
    order.restore(RAW, None)
    assert order.fast_cap(RAW) == 0  # nothing committed: no fast-path watermark may go yet
    assert order.to_raise() == []
    order.want(RAW, 10_000)
    assert order.to_raise() == [RAW]  # a commit is due, even with the offset unchanged
    asked = order.metadata(RAW)
    assert fast_of(asked) == 10_000
    assert order_of(asked) is None
    assert order.fast_cap(RAW) == 0  # not before the commit succeeded
    order.committed(RAW)
    assert order.fast_cap(RAW) == 10_000
    assert order.to_raise() == []
    order.want(RAW, 5_000)  # never down
    assert fast_of(order.metadata(RAW)) == 10_000


def test_a_worker_that_takes_over_sends_nothing_by_the_fast_path_below_the_committed_allowance() -> None:
    first = RawOrder()
    first.restore(RAW, None)
    first.next(RAW, 500)
    first.done(RAW)
    first.want(RAW, 20_000)
    committed = first.metadata(RAW)
    first.committed(RAW)
    first.want(RAW, 90_000)  # asked for by a commit that never came (the worker was killed)
    assert first.fast_cap(RAW) == 20_000  # so no fast-path watermark went past 20,000

    second = RawOrder()
    assert second.fast_floor(RAW.partition) == 0
    second.restore(RAW, committed)
    assert second.fast_floor(RAW.partition) == 20_000  # below it: through the identity writer
    assert second.fast_cap(RAW) == 20_000  # the first worker may have sent that much already
    assert second.fast_floor(OTHER.partition) == 0
    second.forget([RAW])
    assert second.fast_floor(RAW.partition) == 0
    assert second.fast_cap(RAW) == 0


def test_a_commit_without_the_fast_path_keeps_the_order_time_alone() -> None:
    order = RawOrder()
    order.restore(RAW, metadata_of(700))
    assert order.metadata(RAW) == metadata_of(700) == '{"order_ms":700}'
    assert fast_of(metadata_of(700, 900)) == 900
    assert order_of(metadata_of(None, 900)) is None
