"""Logical time of the streaming runtime: one clock per partition.

- An event's logical time is its ``occurred_at``, clamped to no later than the wall clock plus a
  small skew (a producer with a clock in the future cannot push time ahead).
- A partition's clock is the latest event time read on it. It moves with the wall clock only while
  the partition has no lag (the worker has read all there is), so a backlog is caught up by event
  time and gives the same result as live processing.
- Timers fire when their due time is at or before their partition's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PartitionClocks"]


@dataclass
class PartitionClocks:
    skew_ms: int = 5_000
    clocks: dict[int, int] = field(default_factory=dict)

    def event_time(self, occurred_ms: int, wall_ms: int) -> int:
        """The logical time of an event: its occurred time, never later than wall + skew."""
        return min(occurred_ms, wall_ms + self.skew_ms)

    def observe(self, partition: int, event_ms: int) -> int:
        """A read event moves its partition's clock forward (never back); returns the clock."""
        now = max(self.clocks.get(partition, 0), event_ms)
        self.clocks[partition] = now
        return now

    def tick(self, partition: int, wall_ms: int, lag: int) -> int:
        """With no lag, the partition's clock follows the wall clock; returns the clock."""
        now = self.clocks.get(partition, 0)
        if lag <= 0 and wall_ms > now:
            now = wall_ms
            self.clocks[partition] = now
        return now

    def get(self, partition: int) -> int:
        return self.clocks.get(partition, 0)

    def forget(self, partition: int) -> None:
        self.clocks.pop(partition, None)
