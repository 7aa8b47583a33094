"""How the agents read their inputs: in order, committed by the worker, dropped records read again.

The decisions are pure (:mod:`.offsets`, :mod:`.reread`); this module asks the consumer and acts:
admit a delivered record or seek back, commit after a flush, watch for records read but never
delivered, and report lag. docs/runtime.md, "Reading in order".
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TP

from orchestrator.runtime.batches import Pacer, batch_of
from orchestrator.runtime.offsets import Admit
from orchestrator.runtime.outgoing import Outgoing
from orchestrator.runtime.reread import HANDED_SETTLE_MS, SETTLE_MS

if TYPE_CHECKING:
    from orchestrator.runtime.app import WorkerApp

__all__ = [
    "Position",
    "admit",
    "commit",
    "committed_metadata",
    "each_record",
    "expected_offset",
    "finish_run",
    "highwater_of",
    "lag_of",
    "position_of",
    "reread_dropped",
    "start_offset",
    "take_run",
]

log = logging.getLogger("orchestrator.worker")


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Position:
    """A record's place, for :func:`admit`."""

    tp: TP
    offset: int


async def take_run(w: WorkerApp, tp: TP, records: list[Any]) -> tuple[list[Any], int | None]:
    """Of a fetched batch of ``tp``: the records to process (from the next offset on, without a hole)
    and the offset after a hole (None: none). Mark each processed record done, then call
    :func:`finish_run` with the hole: it seeks the partition back to the skipped records."""
    offsets = w.offsets
    if not offsets.knows(tp):
        offsets.begin(tp, await start_offset(w.app, tp))
    start, end, gap = offsets.take(tp, [r.offset for r in records])
    return records[start:end], gap


async def finish_run(w: WorkerApp, tp: TP, gap: int | None) -> None:
    if gap is not None:
        await admit(w, Position(tp, gap))  # records were skipped before it: seek back


async def each_record(
    w: WorkerApp,
    stage: str,
    event: Any,
    one: Callable[[TP, Any, Outgoing], Awaitable[None]],
    delivered: Callable[[TP], None] | None = None,
    then: Callable[[TP, Outgoing], Awaitable[None]] | None = None,
) -> None:
    """A batch stream event of a stage that applies its records one by one, in order: ``one(tp, record,
    out)`` for the run :func:`take_run` gives, appending what it writes to ``out``; then the writes are
    delivered (awaited), ``delivered(tp)`` is called, and the run is done, so no commit passes a record
    whose output is not on the broker. The event loop gets its turns meanwhile. ``one`` handles what a
    record's logic cannot take (dead letters); anything else failing here, or a failed delivery, stops
    the worker: the store may hold rows whose changelog records were never sent. ``then(tp, out)``
    appends what may go only once the first writes are on the broker; it is delivered second."""
    tp, records = batch_of(event)
    run, gap = await take_run(w, tp, records)
    if run:
        out = w.outgoing()
        pace = Pacer()
        try:
            for rec in run:
                await one(tp, rec, out)
                await pace()
            await out.deliver()
            if then is not None:
                second = w.outgoing()
                await then(tp, second)
                await second.deliver()
        except BaseException:
            log.critical(
                "%s stage: %s[%s] failed while writing; exiting", stage, tp.topic, tp.partition, exc_info=True
            )
            os._exit(70)
        if delivered is not None:
            delivered(tp)
        w.offsets.done(tp, run[-1].offset)
        w.metrics.took(stage, len(run))
    await finish_run(w, tp, gap)


async def admit(w: WorkerApp, msg: Any) -> bool:
    """True when ``msg`` is the next record of its partition to process; otherwise it is skipped, and
    when records before it were skipped the partition is sought back to them (:mod:`.offsets`)."""
    tp = msg.tp
    offsets = w.offsets
    if not offsets.knows(tp):
        offsets.begin(tp, await start_offset(w.app, tp))
    verdict = offsets.admit(tp, msg.offset, _wall_ms())
    if verdict is Admit.PROCESS:
        return True
    if verdict is Admit.SEEK:
        expected = offsets.next[tp]
        oldest = await _earliest(w.app, tp)
        if oldest is not None and oldest > expected:
            log.error(
                "%s[%s]: records %s..%s were deleted by retention before they were processed",
                tp.topic, tp.partition, expected, oldest - 1,
            )  # fmt: skip
            offsets.begin(tp, oldest)
            return await admit(w, msg)
        log.warning(
            "%s[%s]: record %s delivered while %s was next (records skipped): reading again from %s",
            tp.topic, tp.partition, msg.offset, expected, expected,
        )  # fmt: skip
        w.metrics.reread()
        try:
            await w.app.consumer.seek(tp, expected)
        except Exception:  # the partition moved meanwhile: its new owner reads it
            log.info("%s[%s] moved before the seek", tp.topic, tp.partition)
    return False


async def commit(w: WorkerApp) -> None:
    """Commit the next offsets of the records processed, once everything they produced (state
    changelogs, actions, hand-overs) is on the broker."""
    assigned = w.app.consumer.assignment()
    # only partitions still assigned: Faust drops the others and aiokafka refuses an empty commit
    pending: dict[Hashable, int] = {tp: n for tp, n in w.offsets.to_commit().items() if tp in assigned}
    raw = w.settings.topics.raw_events
    for tp in w.raw_order.to_raise():
        # the fast path's allowance goes up with a commit, also of an offset that did not move
        if tp in assigned and tp not in pending and tp in w.offsets.committed:
            pending[tp] = w.offsets.committed[tp]
    if not pending:
        return
    # ingest's order times go with its offsets, taken now, with the offsets (:mod:`.raw_order`)
    kept = {
        tp: (n, w.raw_order.metadata(tp))  # type: ignore[arg-type]
        for tp, n in pending.items()
        if getattr(tp, "topic", None) == raw  # (Faust's TP or aiokafka's TopicPartition: equal tuples)
    }
    rest = {tp: n for tp, n in pending.items() if tp not in kept}
    await w.app.producer.flush()  # DurableProducer: waits for the broker's acknowledgements
    if rest and await w.app.consumer._commit(rest):  # type: ignore[attr-defined]
        w.offsets.on_committed(rest)
    if kept and await w.app.consumer.commit_with_metadata(kept):  # type: ignore[attr-defined]
        w.offsets.on_committed({tp: n for tp, (n, _) in kept.items()})
        for done in kept:
            w.raw_order.committed(done)  # type: ignore[arg-type]


async def committed_metadata(app: faust.App, tp: TP, attempts: int = 5) -> str | None:
    """The metadata of the group's committed offset of ``tp`` (ingest's order time, :mod:`.raw_order`),
    asked of the group coordinator; tried again for a while (a coordinator moving), then the worker
    stops rather than order events without it."""
    for attempt in range(attempts):
        try:
            found: str | None = await app.consumer.committed_metadata(tp)  # type: ignore[attr-defined]
            return found
        except Exception:
            if attempt == attempts - 1:
                log.critical("%s[%s]: the committed offset's metadata could not be read; exiting",
                             tp.topic, tp.partition, exc_info=True)  # fmt: skip
                os._exit(70)
            log.warning("%s[%s]: reading the committed offset's metadata failed; trying again",
                        tp.topic, tp.partition, exc_info=True)  # fmt: skip
            await asyncio.sleep(1.0)
    return None


async def reread_dropped(w: WorkerApp, actives: Any, wall: int) -> None:
    """Seek back when records were read but never reached an agent and none came after (:mod:`.reread`)."""
    t = w.settings.topics
    ours = {t.raw_events, t.identify, t.resolved_events, t.timers}
    handed: dict[Any, int] = getattr(w.app, "handed", {})
    dropped: dict[TP, tuple[int | None, int]] = {}
    for tp in actives:
        if tp.topic not in ours:
            continue
        expected = await expected_offset(w, tp)
        high = highwater_of(w.app, tp)
        if high is not None and 0 <= high <= expected:
            # nothing left to read, so nothing can have been dropped: no consumer call (each one
            # waits for the consumer thread's fetch)
            w.drops.observe(tp, expected, expected, wall)
            continue
        # handed to the agent and not processed yet: queued behind other batches of a busy agent (an
        # overloaded worker took this for a drop and read everything again, for ever), or dropped by
        # the stream: only a long stop counts
        settle = HANDED_SETTLE_MS if handed.get(tp, 0) > expected else SETTLE_MS
        position = await position_of(w.app, tp)
        if w.drops.observe(tp, position, expected, wall, settle):
            dropped[tp] = (position, expected)
    if dropped and w.drops.should_seek(wall):
        for tp, (position, expected) in dropped.items():
            log.warning(
                "%s[%s]: records read (position %s) but never processed: reading again from %s",
                tp.topic, tp.partition, position, expected,
            )  # fmt: skip
            try:
                await w.app.consumer.seek(tp, expected)
            except Exception:  # the partition moved meanwhile: its new owner reads it
                log.info("%s[%s] moved before the seek", tp.topic, tp.partition)
        w.metrics.reread()


async def _earliest(app: faust.App, tp: TP) -> int | None:
    """The oldest offset ``tp`` keeps; None when the broker did not answer."""
    try:
        earliest = await app.consumer.earliest_offsets(tp)
    except Exception:
        return None
    return int(earliest.get(tp) or 0)


async def start_offset(app: faust.App, tp: TP) -> int:
    """Where the group reads ``tp`` from: its committed offset (as read at the assignment), else the
    oldest record kept."""
    committed: int | None = app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
    if committed is not None:
        return committed
    return await _earliest(app, tp) or 0


def highwater_of(app: faust.App, tp: TP) -> int | None:
    """The end offset of ``tp`` as last fetched; None when unknown (not fetched yet, or the partition
    moved while the caller awaited something)."""
    try:
        high: int | None = app.consumer.highwater(tp)
    except Exception:  # aiokafka asserts the partition is still assigned
        return None
    return high


async def position_of(app: faust.App, tp: TP) -> int | None:
    """The consumer's position in ``tp``; None when unknown (the partition moved meanwhile)."""
    try:
        position: int | None = await app.consumer.position(tp)
    except Exception:
        return None
    return position


async def lag_of(w: WorkerApp, tp: TP) -> int:
    """Records of ``tp`` not processed yet; unknown (no fetch answered yet) counts as lagging."""
    high = highwater_of(w.app, tp)
    if high is None or high < 0:
        return 1
    return max(0, high - await expected_offset(w, tp))


async def expected_offset(w: WorkerApp, tp: TP) -> int:
    """The next offset of ``tp`` to process; before anything was delivered since the assignment, where
    reading starts (asked once per assignment: :attr:`WorkerApp.start_offsets`)."""
    expected = w.offsets.next.get(tp)
    if expected is None:
        expected = w.start_offsets.get(tp)
        if expected is None:
            expected = w.start_offsets[tp] = await start_offset(w.app, tp)
    return expected
