"""The customer side of the streaming runtime without Kafka, for tests and benchmarks.

:class:`LocalPipeline` joins the identify stage (:class:`~orchestrator.runtime.identify.IdentifyStage`)
and the customer stage's :class:`~orchestrator.runtime.processor.Processor` by in-memory partition
logs, as the worker joins them by topics:

1. :meth:`LocalPipeline.resolve` feeds raw events (one raw partition, a watermark after each event, as
   a worker reading a backlog sends) to the identify stage and appends what it publishes (events,
   merge and erase control messages, watermarks) to the resolved partitions' logs;
2. :meth:`LocalPipeline.run` reads the logs in fetches of ``batch`` records per partition, round
   robin, and applies each fetch with the processor's batch API; hand-overs the processor sends are
   appended to the logs (read by a later fetch); after each fetch the partition's due timers fire
   (strictly before its clock, as the worker's ticker fires them).

Deterministic: the same events give the same actions, decisions and stored records. Not a model of
crashes or of Faust: the resilience tests on a real broker are.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from orchestrator.contracts import ResolvedEvent, parse_event
from orchestrator.core.customer import CustomerLogic
from orchestrator.runtime.identify import WATERMARK_KEY, IdentifyStage
from orchestrator.runtime.outgoing import trimmed
from orchestrator.runtime.processor import Applied, Message, Processor
from orchestrator.runtime.timers import TimerIndex

__all__ = ["LocalPipeline", "PipelineOutput"]

Entry = tuple[int, bytes, bytes]
"""(offset, key, value) of a resolved partition's log."""


@dataclass(slots=True)
class PipelineOutput:
    """What the customer side produced, in the order it was produced."""

    actions: list[bytes] = field(default_factory=list)
    decisions: list[bytes] = field(default_factory=list)
    messages: int = 0
    """Messages applied (events, hand-overs, wake-ups)."""


class LocalPipeline:
    """Identify stage → resolved partitions → processor, with timers; see the module docstring."""

    def __init__(self, logic: CustomerLogic, *, partitions: int = 6, batch: int = 3000) -> None:
        self.stage = IdentifyStage(sources=1, partitions=partitions, erasure_key=b"local-pipeline")
        self.processor = Processor(logic)
        self.partitions = partitions
        self.batch = batch
        self.logs: list[list[Entry]] = [[] for _ in range(partitions)]
        self.read = [0] * partitions
        self.clocks = [0] * partitions
        self.records: dict[str, bytes] = {}
        self.timers = TimerIndex()
        self.timer_offsets = [0] * partitions
        self.committed: list[dict[str, int]] = [{} for _ in range(partitions)]
        """Per partition, the offsets committed after its last fetch (resolved ``e``, timers ``t``)."""
        self.output = PipelineOutput()
        self._identify_offset = 0
        self._raw_offset = 0

    def partition(self, key: bytes) -> int:
        return zlib.crc32(key) % self.partitions

    # -- the identify stage --------------------------------------------------------------------
    def resolve(self, raw_events: Iterable[bytes], until_ms: int | None = None) -> None:
        """Feed raw event lines (invalid ones are skipped) to the identify stage; ``until_ms``: a last
        watermark that releases everything held."""
        for raw in raw_events:
            event = parse_event(raw)
            resolved = ResolvedEvent(
                customer_key="-", event=event, source_partition=0, source_offset=self._raw_offset
            )
            self._raw_offset += 1
            self._publish(self.stage.on_event(self._next_identify(), resolved, event.occurred_ms).messages)
            mark = self.stage.on_watermark(self._next_identify(), 0, event.occurred_ms)
            self._publish(mark.messages)
        if until_ms is not None:
            self._publish(self.stage.on_watermark(self._next_identify(), 0, until_ms).messages)

    def _next_identify(self) -> int:
        self._identify_offset += 1
        return self._identify_offset - 1

    def _publish(self, messages: Iterable[tuple[bytes, bytes, int | None]]) -> None:
        for key, value, partition in messages:
            p = self.partition(key) if partition is None else partition
            self.logs[p].append((len(self.logs[p]), key, value))

    # -- the customer stage --------------------------------------------------------------------
    def run(self) -> PipelineOutput:
        """Read every log to its end (fetch by fetch, round robin), firing timers as clocks move."""
        while True:
            progressed = False
            for p in range(self.partitions):
                start = self.read[p]
                fetch = self.logs[p][start : start + self.batch]
                if not fetch:
                    continue
                self.read[p] = start + len(fetch)
                self.apply_fetch(p, fetch)
                self.fire_due(p)
                # the worker commits what it applied: those messages are never read again
                self.committed[p] = {"e": self.read[p], "t": self.timer_offsets[p]}
                progressed = True
            if not progressed:
                return self.output

    def apply_fetch(self, p: int, fetch: list[Entry]) -> None:
        """One fetched batch of partition ``p``: watermarks move the clock; the rest is applied per
        customer with :meth:`Processor.apply`."""
        messages: list[tuple[str, Message]] = []
        for offset, key, value in fetch:
            if key == WATERMARK_KEY:
                self.clocks[p] = max(self.clocks[p], int(orjson.loads(value)["t"]))
                continue
            messages.append((key.decode(), Message.resolved(offset, value, self.clocks[p])))
        self._apply(p, messages)

    def fire_due(self, p: int) -> None:
        """Wake-ups due strictly before the partition's clock, as the ticker sends them."""
        until = self.clocks[p] - 1
        due = self.timers.pop_due(p, until)
        messages = []
        for customer, _ in due:
            messages.append((customer, Message.wakeup(self.timer_offsets[p], until)))
            self.timer_offsets[p] += 1
        self._apply(p, messages)

    def _apply(self, p: int, messages: list[tuple[str, Message]]) -> None:
        by_customer: dict[str, list[Message]] = {}
        for customer, message in messages:
            by_customer.setdefault(customer, []).append(message)
        for customer, mine in by_customer.items():
            applied = self.processor.apply(customer, self.records.get(customer), mine, self.committed[p])
            self._take(p, customer, applied)

    def _take(self, p: int, customer: str, applied: Applied) -> None:
        for one in applied.done:
            if one.error is not None:
                raise one.error
            self.output.messages += 1
            self.output.actions += [a for _, a in one.actions]
            self.output.decisions += one.decisions
            for to_key, value in one.forwards:
                q = self.partition(to_key)
                self.logs[q].append((len(self.logs[q]), to_key, value))
        if applied.changed:
            if applied.record is None:
                self.records.pop(customer, None)
            else:
                self.records[customer] = trimmed(applied.record)  # kept: see trimmed()
        if applied.touched:  # as the worker does
            self.timers.set(p, customer, applied.next_wakeup_ms)
