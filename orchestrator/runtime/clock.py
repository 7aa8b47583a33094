"""Logical time of the streaming runtime: watermarks carried through the resolved topic.

- An event's logical time is its ``occurred_at``, clamped to no later than the wall clock plus a
  small skew (a producer with a clock in the future cannot push time ahead).
- The resolution stage knows, per raw partition ``r``, the latest event time it resolved; when it
  has read everything there is in ``r`` (no lag), the wall clock too. It publishes that value as a
  *watermark* to every resolved partition, after the events it resolved from ``r`` (one producer,
  so they stay in order).
- A resolved partition's clock is the smallest watermark over all raw partitions: no event older
  than it can still be on its way from any raw partition (given each raw partition is in time
  order; an event that is not is "late"). So the clock is the latest event time read while there is
  a backlog, and moves with the wall clock only once every raw partition is caught up. A crashed
  worker's raw partitions send no watermark until another worker takes them over: clocks wait.
- Timers fire when their due time is before their partition's clock. Catching up on a backlog
  thus gives the same result as live processing, and a replay gives what simulate gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FUTURE_SKEW_MS", "PartitionClocks", "SourceWatermarks", "event_time"]

FUTURE_SKEW_MS = 5_000
"""How far ahead of the wall clock an event's time may be before it counts as from the future."""


def event_time(occurred_ms: int, wall_ms: int, skew_ms: int = FUTURE_SKEW_MS) -> int:
    """The logical time of an event: its occurred time, never later than wall + skew."""
    return min(occurred_ms, wall_ms + skew_ms)


@dataclass
class SourceWatermarks:
    """Resolution side: per raw partition, how far event time has been read."""

    latest: dict[int, int] = field(default_factory=dict)
    sent: dict[int, int] = field(default_factory=dict)

    def observe(self, raw_partition: int, event_ms: int) -> None:
        if event_ms > self.latest.get(raw_partition, 0):
            self.latest[raw_partition] = event_ms

    def watermark(self, raw_partition: int, lag: int, wall_ms: int) -> int:
        """The latest event time read; the wall clock as well when nothing is left to read."""
        latest = self.latest.get(raw_partition, 0)
        return max(latest, wall_ms) if lag <= 0 else latest

    def forget(self, raw_partition: int) -> None:
        self.latest.pop(raw_partition, None)
        self.sent.pop(raw_partition, None)


@dataclass
class PartitionClocks:
    """Customer side: per resolved partition, the watermark of every raw partition."""

    sources: int
    """How many raw partitions feed the resolved topic (all of them must report)."""
    marks: dict[int, dict[int, int]] = field(default_factory=dict)

    def watermark(self, partition: int, raw_partition: int, value: int) -> int:
        """A watermark read on ``partition``; returns the partition's clock."""
        marks = self.marks.setdefault(partition, {})
        if value > marks.get(raw_partition, 0):
            marks[raw_partition] = value
        return self.get(partition)

    def get(self, partition: int) -> int:
        marks = self.marks.get(partition)
        if not marks or len(marks) < self.sources:
            return 0
        return min(marks.values())

    def forget(self, partition: int) -> None:
        self.marks.pop(partition, None)
