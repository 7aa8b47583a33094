"""Which input partitions are stuck: records waiting and no progress for a while (pure).

A partition is **stuck** when it has lag and the next offset to process has not moved for
``stuck_after_s`` (setting, default 30 s): a message that cannot be processed, an agent that waits
forever, a broker that does not deliver. ``/readyz`` answers false, the metric
``orchestrator_partition_stuck{topic, partition}`` is 1, and the alert ``OrchestratorPartitionStuck``
fires (docs/operations.md). A partition with no lag is never stuck, however long it is idle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StuckWatch"]


@dataclass
class StuckWatch:
    """Per partition: the last next-offset seen and since when it has not moved while lagging."""

    stuck_after_ms: int
    _next: dict[Any, int | None] = field(default_factory=dict)
    _since: dict[Any, int] = field(default_factory=dict)
    """When the partition last made progress or had no lag (wall ms)."""
    _lag: dict[Any, int] = field(default_factory=dict)

    def observe(self, tp: Any, next_offset: int | None, lag: int, wall_ms: int) -> None:
        """What the worker sees of ``tp`` now: where it will read next, and how much waits."""
        if lag <= 0 or tp not in self._since or next_offset != self._next.get(tp):
            self._since[tp] = wall_ms
        self._next[tp] = next_offset
        self._lag[tp] = lag

    def keep_only(self, tps: Iterable[Any]) -> None:
        """Forget partitions no longer assigned to this worker."""
        keep = set(tps)
        for tp in [t for t in self._since if t not in keep]:
            del self._since[tp]
            self._next.pop(tp, None)
            self._lag.pop(tp, None)

    def stalled_ms(self, tp: Any, wall_ms: int) -> int:
        """How long ``tp`` has lagged without progress (0 when it has no lag)."""
        if self._lag.get(tp, 0) <= 0 or tp not in self._since:
            return 0
        return max(0, wall_ms - self._since[tp])

    def stuck(self, wall_ms: int) -> list[Any]:
        """The partitions stuck at ``wall_ms``."""
        return [tp for tp in self._since if self.stalled_ms(tp, wall_ms) >= self.stuck_after_ms]

    def lag(self, tp: Any) -> int:
        """The lag last observed for ``tp``."""
        return self._lag.get(tp, 0)

    def watched(self) -> list[Any]:
        return list(self._since)
