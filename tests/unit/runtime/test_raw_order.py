"""Ingest's order times kept with its commits (:mod:`orchestrator.runtime.raw_order`)."""

from __future__ import annotations

import logging

import pytest
from faust.types import TP

from orchestrator.runtime.raw_order import RawOrder, metadata_of, order_of

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
