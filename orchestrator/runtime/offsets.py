"""Input records processed strictly in order, and the offsets the worker commits itself.

Faust can skip records of an input partition and still commit past them (faust-streaming 0.15.3,
measured in the kill -9 tests, docs/runtime.md "Reading in order"):

- records fetched while a partition's tables are being recovered are discarded, and the consumer's
  position stays past them; the seek "to the committed offsets" that follows does nothing for a
  partition the group has never committed, so its first records are never processed;
- a record arriving above Faust's read offset makes the offsets in between a "gap", and gaps count
  as acknowledged: they are committed although no agent saw them;
- records of the previous consumer generation are dropped by the stream, and records below the read
  offset by the fetch loop, after a seek.

So the agents' topics are consumed with Faust's acknowledgements off, and this module decides, per
input partition, what happens to each record delivered: the next offset is processed; an offset
already processed since the assignment is skipped; an offset above the next one means records were
skipped, and the partition is sought back to the next offset (again after :data:`RESEEK_MS` while
stale records keep coming). The worker commits the next offsets itself, after flushing the producer
(:class:`~orchestrator.runtime.producer.DurableProducer`), so a committed offset never passes a record
whose state, actions and hand-overs are not on the broker. Pure: the caller passes the clock.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["RESEEK_MS", "Admit", "InputOffsets"]

RESEEK_MS = 1_000
"""Least time between two seeks of one partition to the same offset (stale records still arriving)."""


class Admit(enum.Enum):
    """What to do with a delivered record."""

    PROCESS = "process"
    """The next record of its partition."""
    DONE = "done"
    """Processed already since the assignment (delivered again after a seek): skip it."""
    SEEK = "seek"
    """Records before it were skipped: seek the partition back to the next offset, skip this one."""
    WAIT = "wait"
    """Records were skipped and a seek back was issued lately: skip this one, the seek is on its way."""


@dataclass
class InputOffsets:
    """Per input partition: the next offset to process, and what was committed."""

    next: dict[Hashable, int] = field(default_factory=dict)
    """Partition -> the next offset to process (set from the group's offset when it is assigned)."""
    committed: dict[Hashable, int] = field(default_factory=dict)
    """Partition -> the last offset this worker committed for it."""
    seeking: dict[Hashable, tuple[int, int]] = field(default_factory=dict)
    """Partition -> (offset sought back to, when)."""
    started: dict[Hashable, int] = field(default_factory=dict)
    """Partition -> where reading started at the assignment."""
    skipped: int = 0
    """Records found skipped (gaps), over the worker's life."""
    holds: dict[Hashable, int] = field(default_factory=dict)
    """Partition -> an offset no commit may pass (a message read but held, not applied yet)."""

    def knows(self, tp: Hashable) -> bool:
        return tp in self.next

    def begin(self, tp: Hashable, start: int) -> None:
        """``tp`` was assigned; reading starts at ``start`` (the group's committed offset, else the
        oldest record kept)."""
        self.next[tp] = self.started[tp] = start
        self.committed[tp] = start
        self.seeking.pop(tp, None)

    def admit(self, tp: Hashable, offset: int, now_ms: int) -> Admit:
        expected = self.next[tp]
        if offset == expected:
            self.seeking.pop(tp, None)
            return Admit.PROCESS
        if offset < expected:
            return Admit.DONE
        last = self.seeking.get(tp)
        if last is not None and last[0] == expected and now_ms - last[1] < RESEEK_MS:
            return Admit.WAIT
        self.seeking[tp] = (expected, now_ms)
        self.skipped += 1
        return Admit.SEEK

    def take(self, tp: Hashable, offsets: Sequence[int]) -> tuple[int, int, int | None]:
        """Of a fetched batch's offsets (ascending): ``(start, end, gap)`` — ``offsets[start:end]`` is
        the run to process (from the next offset on, without a hole), ``gap`` the first offset after a
        hole (records skipped: :meth:`admit` it to seek back), None when there is none. Records below
        the next offset were processed already. Does not move the next offset: :meth:`done` does, once
        the run is processed, so no commit passes records still being applied."""
        expected = self.next[tp]
        start = 0
        while start < len(offsets) and offsets[start] < expected:
            start += 1
        end = start
        while end < len(offsets) and offsets[end] == expected:
            expected += 1
            end += 1
        if end > start:
            self.seeking.pop(tp, None)
        return start, end, offsets[end] if end < len(offsets) else None

    def done(self, tp: Hashable, offset: int) -> None:
        """The record at ``offset`` was processed (its state written and its messages handed over).
        Nothing for a partition revoked meanwhile (:meth:`forget`): its new owner reads it again."""
        if tp in self.next:
            self.next[tp] = offset + 1

    def hold(self, tp: Hashable, bound: int | None) -> None:
        """Commits of ``tp`` stop at ``bound`` (the oldest message read and still held: a crash must
        read it again), whatever was processed after it; None: no hold."""
        if bound is None:
            self.holds.pop(tp, None)
        elif tp in self.next:
            self.holds[tp] = bound

    def last(self, tp: Hashable) -> int | None:
        """The last offset processed since the assignment; None when none."""
        nxt = self.next.get(tp)
        if nxt is None or nxt <= self.started.get(tp, 0):
            return None
        return nxt - 1

    def to_commit(self) -> dict[Hashable, int]:
        """Next offsets not committed yet (no further than a hold)."""
        holds = self.holds
        out: dict[Hashable, int] = {}
        for tp, n in self.next.items():
            bound = holds.get(tp)
            if bound is not None and bound < n:
                n = bound
            if self.committed.get(tp) != n:
                out[tp] = n
        return out

    def on_committed(self, offsets: Mapping[Hashable, int]) -> None:
        for tp, offset in offsets.items():
            if tp in self.next:
                self.committed[tp] = offset

    def forget(self, tps: Iterable[Hashable]) -> None:
        """Partitions revoked: where they are read from is decided again when they come back."""
        for tp in tps:
            self.next.pop(tp, None)
            self.committed.pop(tp, None)
            self.seeking.pop(tp, None)
            self.started.pop(tp, None)
            self.holds.pop(tp, None)
