"""When records count as read but never processed (Faust drops some around rebalances)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from orchestrator.runtime.reread import COOLDOWN_MS, HANDED_SETTLE_MS, SETTLE_MS, DropWatch


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


def test_records_handed_to_a_busy_agent_are_not_read_again(monkeypatch: Any) -> None:
    """An overloaded worker: its consumer is far ahead of what the agent processed, because the batches
    wait in the agent's queue. That is no drop (it was taken for one, and everything was read again,
    over and over); records never handed over still are."""
    from orchestrator.config import TopicNames
    from orchestrator.runtime import reading
    from orchestrator.runtime.metrics import WorkerMetrics

    topics = TopicNames()
    busy, idle = TP(topics.identify, 0), TP(topics.raw_events, 1)
    seeks: list[tuple[Any, int]] = []

    class _Consumer:
        async def seek(self, tp: Any, offset: int) -> None:
            seeks.append((tp, offset))

    app = SimpleNamespace(handed={busy: 302_102}, consumer=_Consumer())
    w = SimpleNamespace(
        settings=SimpleNamespace(topics=topics),
        drops=DropWatch(),
        app=app,
        metrics=WorkerMetrics(process_metrics=False),
    )

    async def expected(_: Any, tp: Any) -> int:
        return 126_298 if tp == busy else 500

    async def position(_: Any, tp: Any) -> int:
        return 302_102 if tp == busy else 900

    monkeypatch.setattr(reading, "expected_offset", expected)
    monkeypatch.setattr(reading, "highwater_of", lambda _app, _tp: None)
    monkeypatch.setattr(reading, "position_of", position)
    for now in (0, SETTLE_MS, 2 * SETTLE_MS):
        asyncio.run(reading.reread_dropped(w, [busy, idle], now))  # type: ignore[arg-type]
    assert seeks == [(idle, 500)]  # only the partition whose records never reached the agent
    # handed over, and still nothing processed after a long stop: dropped by the stream, read again
    asyncio.run(reading.reread_dropped(w, [busy, idle], 2 * SETTLE_MS + HANDED_SETTLE_MS))  # type: ignore[arg-type]
    assert (busy, 126_298) in seeks
