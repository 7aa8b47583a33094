"""The event-time order of a customer partition's inputs (issue 17, docs/runtime.md: "Design note").

Free of Faust and Kafka: the customer stage feeds it what it reads and applies what it releases.

**The order key** of an event is ``(order time, raw partition, raw offset, n)`` (``n``: its place
among the messages one raw event releases — merge_outs, the event, erases; 0 on the fast path). The
*order time* is the running maximum of the event times read so far in the event's raw partition
(:class:`OrderTimes`, kept by ingest): within a raw partition it never goes back, so an event whose own
time is older than an earlier event of its partition (a late event: producers that merge sources)
keeps its place after that event, whichever path each of them takes to the customer partition.
Without it, a customer partition merging two streams could apply the late event first; the earlier
one would then look like a copy already applied (its raw offset is below the customer's last) and be
dropped. The event keeps its own time for the journeys (lateness, timestamps): only the order uses the
order time.

**The merge** (:class:`OrderedInputs`): each source — a stream that arrives in its own key order (a raw
partition's fast-path events; the identity writer's events, already in key order) — has a FIFO queue
and a watermark: an order time below which the source sends nothing more. The smallest key held is
released as soon as no other source can still send a smaller one: each other source either holds a
message (its head is larger) or has passed its time with its watermark (a source not heard from for
``idle_ms``, by the send times of the others, is left out until it is heard again: the bounded wait).
With one source — the identity writer alone, before the fast path — every message goes as it comes.
What was released stays released, so the released keys only grow: the last one is the partition's
*cursor* (a message read again after a crash with a key at or below it was applied before). The
partition's clock is the time below which nothing is held or still to come.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

__all__ = ["Admitted", "OrderKey", "OrderTimes", "OrderedInputs", "Released"]

OrderKey = tuple[int, int, int, int]
"""(order time in ms, raw partition, raw offset, n)."""

T = TypeVar("T")


@dataclass
class OrderTimes:
    """Ingest's side: the order time of each raw partition's events as they are read, in offset order.

    ``restore`` gives a partition the order time of the records before where reading starts (kept
    with the committed offset, so a restart or a takeover continues the same sequence)."""

    latest: dict[int, int] = field(default_factory=dict)

    def restore(self, raw_partition: int, order_ms: int | None) -> None:
        if order_ms is None:
            self.latest.pop(raw_partition, None)
        else:
            self.latest[raw_partition] = order_ms

    def next(self, raw_partition: int, event_ms: int) -> int:
        """The order time of the next event read from ``raw_partition`` (its time ``event_ms``)."""
        latest = self.latest.get(raw_partition)
        if latest is None or event_ms > latest:
            self.latest[raw_partition] = event_ms
            return event_ms
        return latest

    def get(self, raw_partition: int) -> int | None:
        """The order time of the last event read (what to keep with the offset after it)."""
        return self.latest.get(raw_partition)


class Admitted(Enum):
    """What :meth:`OrderedInputs.add` did with a message."""

    HELD = "held"
    NOW = "now"
    COPY = "copy"


@dataclass(frozen=True, slots=True)
class Released(Generic[T]):
    key: OrderKey
    item: T
    position: int
    """Where the message was read (the resolved topic's offset): what a commit may pass."""


def _key_of(message: Released[Any]) -> OrderKey:
    return message.key


class OrderedInputs(Generic[T]):
    """One customer partition's held inputs, released in key order up to the sources' watermarks."""

    def __init__(self, sources: Iterable[str], idle_ms: int | None = None) -> None:
        self.sources = frozenset(sources)
        self.idle_ms = idle_ms
        self.marks: dict[str, int] = {}
        self.heard: dict[str, int] = {}
        self.cursor: OrderKey | None = None
        """The key of the last message released."""
        self.clock = 0
        """The released time: every message with an order time below it is released."""
        self._queues: dict[str, deque[Released[T]]] = {}
        self._positions: dict[int, int] = {}
        """Read positions of the held messages (position → how many held there)."""

    def held(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def add(self, source: str, key: OrderKey, item: T, position: int) -> Admitted:
        """A message of ``source`` read at ``position`` (the resolved topic's offset).

        - ``HELD``: kept until :meth:`release` gives it;
        - ``NOW``: its key is at or below the cursor — a message read again after a crash (applied
          before: the customer's own checks tell), or a late message of a source that was left out
          while idle — to apply at once, in arrival order;
        - ``COPY``: the key of a message its source sent before and that is still held (a copy sent
          again after the sender's restart, behind its original): dropped.

        A message below its source's last held key that is no copy is *late* at its source (the identity
        writer releases an event whose raw partition's watermark had passed it, as soon as it reads it):
        it takes its place in the key order, as if it had come in time, unless the cursor has passed it
        (``NOW``). Taken for a copy, it would be lost: its original never existed."""
        if source not in self.sources:
            raise ValueError(f"unknown source {source!r}")
        queue = self._queues.setdefault(source, deque())
        late = bool(queue) and key <= queue[-1].key
        if late:
            at = bisect_left(queue, key, key=_key_of)
            if queue[at].key == key:
                return Admitted.COPY
        if self.cursor is not None and key <= self.cursor:
            return Admitted.NOW
        message = Released(key, item, position)
        if late:
            queue.insert(at, message)
        else:
            queue.append(message)
        self._positions[position] = self._positions.get(position, 0) + 1
        return Admitted.HELD

    def mark(self, source: str, order_ms: int, sent_ms: int | None = None) -> None:
        """A source's watermark: it sends nothing more with an order time below ``order_ms``.
        ``sent_ms``: the wall clock of the sender (how a silent source is told)."""
        if source not in self.sources:
            raise ValueError(f"unknown source {source!r}")
        if order_ms > self.marks.get(source, -1):
            self.marks[source] = order_ms
        if sent_ms is not None and sent_ms > self.heard.get(source, -1):
            self.heard[source] = sent_ms

    def assume_heard(self, sources: Iterable[str], at_ms: int) -> None:
        """Count ``sources`` as heard at ``at_ms`` until they send (reading began then): one that never
        sends — its ingest down when this partition was assigned — is left out after ``idle_ms`` like
        one that went silent, instead of holding the partition for ever."""
        for source in sources:
            if source in self.sources and source not in self.heard:
                self.heard[source] = at_ms

    def idle(self) -> frozenset[str]:
        """Sources left out of the minimum now: not heard from for ``idle_ms`` while others were."""
        if self.idle_ms is None or not self.heard:
            return frozenset()
        now = max(self.heard.values())
        return frozenset(s for s, at in self.heard.items() if now - at > self.idle_ms)

    def low(self) -> int | None:
        """The minimum watermark of the sources taken into account (None: one has not reported)."""
        idle = self.idle()
        counted = [s for s in self.sources if s not in idle]
        if not counted or any(s not in self.marks for s in counted):
            return None
        return min(self.marks[s] for s in counted)

    def release(self, limit: int | None = None) -> list[Released[T]]:
        """The held messages that may go now, smallest key first (at most ``limit``): the smallest held
        while every other source counted holds a larger one or has passed its time. An idle source's
        held messages go in their turn too: only its watermark stops counting."""
        idle = self.idle()
        out: list[Released[T]] = []
        queues = self._queues
        while limit is None or len(out) < limit:
            best: deque[Released[T]] | None = None
            best_source = ""
            for source, queue in queues.items():
                if queue and (best is None or queue[0].key < best[0].key):
                    best, best_source = queue, source
            if best is None:
                break
            time = best[0].key[0]
            blocked = False
            for source in self.sources:
                if source == best_source or source in idle or queues.get(source):
                    continue  # (a source holding a message holds a larger one)
                mark = self.marks.get(source)
                if mark is None or time >= mark:
                    blocked = True
                    break
            if blocked:
                break
            message = best.popleft()
            self._drop_position(message.position)
            self.cursor = message.key
            out.append(message)
        # the clock: no message older is held or still to come (a source holding one sends only larger)
        bounds = [q[0].key[0] for q in queues.values() if q]
        for source in self.sources:
            if source not in idle and not queues.get(source):
                mark = self.marks.get(source)
                if mark is None:
                    return out
                bounds.append(mark)
        clock = min(bounds, default=self.clock)
        if clock > self.clock:
            self.clock = clock
        return out

    def snapshot(self) -> dict[str, Any]:
        """What to keep with each batch (a table row) so that a restart goes on the same: the cursor,
        the clock, the sources' watermarks and send times. The held messages are not kept: the commit
        bound leaves them unread, and they are read again."""
        return {
            "cursor": None if self.cursor is None else list(self.cursor),
            "clock": self.clock,
            "marks": dict(self.marks),
            "heard": dict(self.heard),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Back to a :meth:`snapshot` (nothing held)."""
        cursor = snapshot.get("cursor")
        self.cursor = (
            None if cursor is None else (int(cursor[0]), int(cursor[1]), int(cursor[2]), int(cursor[3]))
        )
        self.clock = int(snapshot.get("clock", 0))
        self.marks = {str(s): int(m) for s, m in snapshot.get("marks", {}).items() if s in self.sources}
        self.heard = {str(s): int(m) for s, m in snapshot.get("heard", {}).items() if s in self.sources}
        self._queues = {}
        self._positions = {}

    def commit_bound(self, next_position: int) -> int:
        """The position a commit may pass: the oldest held message's, else ``next_position``."""
        return min(self._positions, default=next_position)

    def _drop_position(self, position: int) -> None:
        left = self._positions[position] - 1
        if left:
            self._positions[position] = left
        else:
            del self._positions[position]
