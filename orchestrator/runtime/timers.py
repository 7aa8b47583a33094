"""Which customers of a partition have a timer due: an index whose cost follows the due timers.

Each customer has at most one wake-up time (its earliest pending timer, from the engine's
``next_wakeup_ms``). The index keeps, per partition, a heap of (due, customer) plus the current due
time of each customer; a stale heap entry (the customer's wake-up moved) is skipped when popped.
Taking the due ones costs O(k log n) for k due out of n pending.

The index is memory only; it is rebuilt from the durable wake-up table when a partition is
assigned (after a restart or a rebalance), so timers survive both.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

__all__ = ["TimerIndex"]


@dataclass
class _PartitionTimers:
    heap: list[tuple[int, str]] = field(default_factory=list)
    due: dict[str, int] = field(default_factory=dict)


class TimerIndex:
    def __init__(self) -> None:
        self._parts: dict[int, _PartitionTimers] = {}

    def set(self, partition: int, customer: str, due_ms: int | None) -> None:
        """Record the customer's next wake-up (None: no pending timer)."""
        part = self._parts.setdefault(partition, _PartitionTimers())
        if due_ms is None:
            part.due.pop(customer, None)
            return
        if part.due.get(customer) == due_ms:
            return
        part.due[customer] = due_ms
        heapq.heappush(part.heap, (due_ms, customer))
        if len(part.heap) > 4 * len(part.due) + 1024:
            part.heap = [(d, c) for c, d in part.due.items()]
            heapq.heapify(part.heap)

    def pop_due(self, partition: int, now_ms: int, limit: int = 10_000) -> list[tuple[str, int]]:
        """Take (customer, due) of the wake-ups due at or before ``now_ms``; they leave the index
        (the customer's processing records its next one)."""
        part = self._parts.get(partition)
        if part is None:
            return []
        out: list[tuple[str, int]] = []
        heap = part.heap
        while heap and heap[0][0] <= now_ms and len(out) < limit:
            due, customer = heapq.heappop(heap)
            if part.due.get(customer) == due:
                del part.due[customer]
                out.append((customer, due))
        return out

    def next_due(self, partition: int) -> int | None:
        part = self._parts.get(partition)
        if part is None:
            return None
        while part.heap and part.due.get(part.heap[0][1]) != part.heap[0][0]:
            heapq.heappop(part.heap)
        return part.heap[0][0] if part.heap else None

    def pending(self, partition: int | None = None) -> int:
        if partition is not None:
            part = self._parts.get(partition)
            return len(part.due) if part else 0
        return sum(len(p.due) for p in self._parts.values())

    def drop_partition(self, partition: int) -> None:
        self._parts.pop(partition, None)

    def partitions(self) -> list[int]:
        return sorted(self._parts)
