"""The customer stage: read a batch → apply per customer → write state and actions → acknowledge.

Its agent is handed one fetched batch of one partition at a time (:mod:`.batches`): a partition of the
resolved topic (events, hand-overs, watermarks) or of the timers topic (wake-ups). For each batch:

1. **read** — the run of records from the partition's next offset on (:meth:`InputOffsets.take`: what
   was processed already is skipped; a hole means Faust skipped records, and the partition is sought
   back to them after the run). Ordered messages (those with an order key: the identity writer's) go
   through the partition's :class:`~.ordering.OrderedInputs` and are applied in key order, each with the
   clock of its release; hand-overs (``merge_in``, forwarded events) are applied as they are read;
   watermarks move the sources' marks and the clock. A message held past the batch keeps the commit
   below it (:meth:`InputOffsets.hold`), so a crash reads it again;
2. **apply per customer** — each customer's messages, in order, with :meth:`Processor.apply`: its record
   read once and written once;
3. **write** — the record and the next wake-up to the tables' stores, their changelog records and the
   actions, decisions and hand-overs appended to record batches per topic partition (:mod:`.outgoing`),
   and the partition's segment counts when a customer entered or left one (:mod:`.segment_sizes`);
4. **acknowledge** — the batches are sent and the broker's acknowledgements awaited; only then is the
   run's last offset done, and the worker's next commit may pass it (:mod:`.reading`).

A message that fails is dead-lettered alone; the others of its customer apply as if it had not been
there. A failing state store or producer stops the worker before anything can be committed past it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from faust.types import TP

from orchestrator.core.engine.records import Transition
from orchestrator.runtime.batches import Pacer
from orchestrator.runtime.funnels import funnel_key
from orchestrator.runtime.identify import WATERMARK_KEY
from orchestrator.runtime.ordering import Admitted, OrderedInputs
from orchestrator.runtime.out_of_time import OutOfTimeLog
from orchestrator.runtime.outgoing import Outgoing, TableRows
from orchestrator.runtime.processor import Applied, Message, order_key
from orchestrator.runtime.reading import finish_run, take_run
from orchestrator.runtime.releases import RELEASE_KEY, campaigns_key, releases_key
from orchestrator.runtime.segment_sizes import sizes_key

if TYPE_CHECKING:
    from orchestrator.runtime.app import WorkerApp

__all__ = ["RETRY_WAKEUP_MS", "WRITER", "CustomerStage"]

log = logging.getLogger("orchestrator.worker")

RETRY_WAKEUP_MS = 60_000
"""A wake-up that failed is tried again this much later (partition clock): it neither stops the customer
nor spins."""

SetAside = Callable[[Any, Exception], Awaitable[None]]

WRITER = "w"
"""The source of the identity writer's messages and watermarks (those without ``via`` / ``src``); the
fast path's are the raw partitions', ``r<partition>``, each with its ingest's watermarks."""
Group = dict[str, list[tuple[Any, Message]]]


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class CustomerStage:
    w: WorkerApp
    topics: dict[str, str]
    """The action topics' names by channel, and ``decisions``."""
    resolved_topic: str
    set_aside: SetAside
    _rows: tuple[TableRows, TableRows, TableRows] | None = None
    out_of_time: OutOfTimeLog = field(default_factory=OutOfTimeLog)
    _markers: dict[int, list[str]] = field(default_factory=dict)
    """Per partition, the release markers read by :meth:`_read` for the batch being applied."""
    """Which lines about late and future events to log (one per partition and reason a minute)."""

    async def on_batch(self, tp: TP, records: list[Any]) -> None:
        """One fetched batch (aiokafka records of partition ``tp``, in offset order), within the agent's
        iteration of the stream (Faust's current event names the partition for the stores)."""
        w = self.w
        run, gap = await take_run(w, tp, records)
        if run:
            groups = await self._read(tp, run)
            committed = self._committed(tp.partition)
            timers = tp.topic == w.settings.topics.timers
            customers, wakeups, sizes = self._tables()
            p = tp.partition
            if not w.segment_sizes.known(p):  # (after an assignment: the table's rows)
                w.segment_sizes.load(p, sizes.read(sizes_key(p)))
            if not w.campaign_counts.known(p):
                w.campaign_counts.load(p, sizes.read(campaigns_key(p)))
            if not w.releases.known(p):
                w.releases.load(p, sizes.read(releases_key(p)))
            if not w.funnels.known(p):
                w.funnels.load(p, sizes.read(funnel_key(p)))
            markers = self._markers.pop(p, [])
            out = w.outgoing()
            pace = Pacer()
            finished: list[tuple[str, list[tuple[Any, Message]], Applied]] = []
            members: dict[str, int] = {}
            outcomes: list[tuple[str, int, str]] = []
            transitions: list[Transition] = []
            try:
                for key, items in groups.items():
                    applied = w.processor.apply(key, customers.get(key), [m for _, m in items], committed)
                    if timers and any(done.error is not None for done in applied.done):
                        self._retry_later(tp.partition, key)  # before the write: a wake-up due sooner wins
                    await self._write(out, tp, key, applied, customers, wakeups)
                    for segment in applied.entered:
                        members[segment] = members.get(segment, 0) + 1
                    for segment in applied.left:
                        members[segment] = members.get(segment, 0) - 1
                    for done in applied.done:
                        outcomes += done.campaigns
                        if not (done.replayed or done.duplicate):
                            transitions += done.transitions
                    finished.append((key, items, applied))
                    await pace()
                # the partition's counts and release progress, in the same delivery as its customers
                if any(members.values()):
                    counts = w.segment_sizes.apply(p, members)
                    await sizes.put(out, p, sizes_key(p), orjson.dumps(counts))
                if outcomes:
                    done_counts = w.campaign_counts.apply(p, outcomes)
                    await sizes.put(out, p, campaigns_key(p), orjson.dumps(done_counts))
                if transitions:
                    row = w.funnels.apply(p, transitions)
                    await sizes.put(out, p, funnel_key(p), orjson.dumps(row))
                if markers:
                    for key in markers:
                        row = w.releases.mark(p, key, w.book.campaign_registry)
                    await sizes.put(out, p, releases_key(p), orjson.dumps(row))
                await out.deliver()
            except BaseException:
                # The state store or Kafka failed: stop hard, before these offsets can be committed,
                # so the messages are read again after the restart (at-least-once).
                log.critical("worker failed while writing state or actions; exiting", exc_info=True)
                os._exit(70)
            for key, items, applied in finished:
                await self._account(tp, key, items, applied)
            w.offsets.done(tp, run[-1].offset)
            if not timers:
                inputs = w.ordered.get(tp.partition)
                bound = (
                    None if inputs is None or not inputs.held() else inputs.commit_bound(run[-1].offset + 1)
                )
                w.offsets.hold(tp, bound)
            w.metrics.took("customer", len(run))
        await finish_run(w, tp, gap)

    def _tables(self) -> tuple[TableRows, TableRows, TableRows]:
        if self._rows is None:  # built on the first batch: a table's store exists once the app runs
            w = self.w
            self._rows = (TableRows(w.customers), TableRows(w.wakeups), TableRows(w.segment_sizes_table))
        return self._rows

    async def _read(self, tp: TP, records: list[Any]) -> Group:
        """The run's messages by customer, in the order they are applied."""
        w = self.w
        p = tp.partition
        timers = tp.topic == w.settings.topics.timers
        inputs = None if timers else self._inputs(p)
        wall = _wall_ms()
        groups: Group = {}
        for rec in records:
            if rec.key is None or rec.value is None:
                log.error("customer message without key or value at %s[%s]@%s", tp.topic, p, rec.offset)
                continue
            if rec.key == RELEASE_KEY and timers:  # a release's wake-ups before it are read: it is done
                try:
                    self._markers.setdefault(p, []).append(str(orjson.loads(rec.value)["release"]))
                except Exception as exc:
                    await self.set_aside(rec, exc)
                continue
            if rec.key == WATERMARK_KEY:
                try:
                    mark = orjson.loads(rec.value)
                    assert inputs is not None
                    source = str(mark.get("src", WRITER))
                    sent = mark.get("s")
                    if source in inputs.sources:  # (a fast-path mark while this worker has it off: moot)
                        inputs.mark(source, int(mark["t"]), None if sent is None else int(sent))
                except Exception as exc:
                    await self.set_aside(rec, exc)
                    continue
                self._release(p, inputs, groups, wall)
                continue
            try:
                key = rec.key.decode()
            except UnicodeDecodeError as exc:  # not a customer key: this message alone
                await self.set_aside(rec, exc)
                continue
            if inputs is None:
                try:
                    wake = orjson.loads(rec.value)
                    # Never past this partition's own clock: a wake-up read again after a crash or a
                    # takeover was sent at the previous owner's clock, while the customer's events
                    # before that time may not be applied again yet (the resolved topic is read on its
                    # own). Fired early, a timer would miss them; held back, the ticker fires it when
                    # the clock gets there (the customer's wake-up stays recorded).
                    now = min(int(wake["now"]), w.clocks.get(p) - 1)
                    due = int(wake["due"])
                except Exception as exc:
                    await self.set_aside(rec, exc)
                    self._retry_later(p, key)
                    continue
                w.metrics.timer_fired(due, w.clocks.get(p), wall)
                groups.setdefault(key, []).append((rec, Message.wakeup(rec.offset, now)))
                continue
            try:
                body = orjson.loads(rec.value)
                order = order_key(body) if type(body) is dict else None
            except Exception:  # (the processor names what is wrong with it, and it is set aside alone)
                body, order = None, None
            source = WRITER if order is None else str(body.get("via", WRITER))
            if order is not None and source not in inputs.sources:
                log.warning("%s[%s]@%s comes by the fast path, which this worker has off (fast_path): "
                            "applied as it comes", tp.topic, p, rec.offset)  # fmt: skip
            elif order is not None:
                admitted = inputs.add(
                    source, (order[0], order[1], order[2], order[3]), (key, rec, body), rec.offset
                )
                if admitted is Admitted.HELD:
                    self._release(p, inputs, groups, wall)
                    continue
                if admitted is Admitted.COPY:  # sent again behind its original, still held
                    continue
            # a hand-over (applied as it is read) or a message read again below the cursor
            message = Message.resolved(rec.offset, rec.value, w.clocks.get(p), wall, body)
            groups.setdefault(key, []).append((rec, message))
        return groups

    def _inputs(self, p: int) -> OrderedInputs[tuple[str, Any, Any]]:
        inputs = self.w.ordered.get(p)
        if inputs is None:  # (read from the committed offset on: nothing held, nothing released yet)
            settings = self.w.settings
            sources = [WRITER]
            if settings.fast_path:
                sources += [f"r{raw}" for raw in range(settings.partitions)]
            idle = int(settings.watermark_idle_s * 1000) or None
            inputs = self.w.ordered[p] = OrderedInputs(sources, idle)
            inputs.assume_heard(sources[1:], _wall_ms())  # (the raw partitions; the writer never drops out)
        return inputs

    def _release(self, p: int, inputs: OrderedInputs[tuple[str, Any, Any]], groups: Group, wall: int) -> None:
        """What the partition's inputs release now, each at the clock of its release, into ``groups``."""
        w = self.w
        for released in inputs.release():
            key, rec, body = released.item
            message = Message.resolved(rec.offset, rec.value, w.clocks.get(p), wall, body)
            groups.setdefault(key, []).append((rec, message))
        w.clocks.watermark(p, 0, inputs.clock)

    async def _write(
        self, out: Outgoing, tp: TP, key: str, applied: Applied, customers: TableRows, wakeups: TableRows
    ) -> None:
        p = tp.partition
        if applied.changed:
            await customers.put(out, p, key, applied.record)
        if applied.touched:
            # A replay or a duplicate re-asserts the wake-up too: the wake-up table has its own
            # changelog, and a crash may have kept the customer's new state but lost this write.
            due = applied.next_wakeup_ms
            entry = None if due is None else f"{p}:{due}".encode()
            before = wakeups.get(key)
            if before != entry:
                await wakeups.put(out, p, key, entry)
            previous = None if before is None else int(before.partition(b":")[2])
            self.w.timers.set(p, key, due, previous)
        key_bytes = key.encode()
        topics = self.topics
        for done in applied.done:
            for channel, action in done.actions:
                await out.add_keyed(topics[channel], key_bytes, action)
            for decision in done.decisions:
                await out.add_keyed(topics["decisions"], key_bytes, decision)
            for to_key, message in done.forwards:
                await out.add_keyed(self.resolved_topic, to_key, message)

    async def _account(self, tp: TP, key: str, items: list[tuple[Any, Message]], applied: Applied) -> None:
        """After delivery: set aside what failed, count what was done."""
        w = self.w
        timers = tp.topic == w.settings.topics.timers
        for (rec, _), done in zip(items, applied.done, strict=True):
            if done.error is not None:  # a message the logic cannot take: set aside, never lost
                await self.set_aside(rec, done.error)
                continue
            if done.erased:  # a fast-path event of a customer erased meanwhile: as the graph would
                log.info("%s[%s]@%s: a fast-path event of %s, which has no record here (erased): dropped",
                         tp.topic, tp.partition, rec.offset, key)  # fmt: skip
                w.metrics.identified(0, 0, 1)
                continue
            if done.event_type is not None:
                w.metrics.event_consumed(done.event_type)
            if done.timing is not None:
                w.metrics.event_out_of_time(done.timing)
                line = self.out_of_time.note(
                    tp.partition, done.timing, where=f"{tp.topic}[{tp.partition}]@{rec.offset}",
                    occurred_ms=done.occurred_ms or 0, clock_ms=w.clocks.get(tp.partition),
                    wall_s=time.time(),
                )  # fmt: skip
                if line is not None:
                    log.warning("%s", line)
            w.metrics.processed(done, None if timers else rec.timestamp / 1000)
            if done.trimmed:
                w.metrics.trimmed(done.trimmed)
            if done.merged:
                log.info("merge into %s done (%d)", key, done.merged)
            w.metrics.record_decisions(done.decision_models)
            if done.segments:
                w.metrics.segments.changed(done.segments)
            if done.campaigns:
                w.metrics.campaigns.changed(done.campaigns)

    def _retry_later(self, p: int, key: str) -> None:
        # the ticker took the timer out of its index: try again a minute later (partition clock)
        w = self.w
        row = w.wakeups.get(key)
        if row is not None:  # (the table keeps the old time: the index pins this one)
            previous = int(row.partition(b":")[2])
            w.timers.set(p, key, w.clocks.get(p) + RETRY_WAKEUP_MS, previous_ms=previous, pin=True)

    def _committed(self, p: int) -> dict[str, int]:
        """The offsets committed on partition ``p`` of the stage's inputs (outbox entries below them can
        never be read again)."""
        t = self.w.settings.topics
        out: dict[str, int] = {}
        for source, topic in (("e", t.resolved_events), ("t", t.timers)):
            offset = self.w.offsets.committed.get(TP(topic, p))
            if offset is not None:
                out[source] = offset
        return out
