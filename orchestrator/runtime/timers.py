"""Which customers of a partition have a timer due: an index whose cost follows the due timers, and
whose memory is bounded.

Each customer has at most one wake-up time (its earliest pending timer, from the engine's
``next_wakeup_ms``), kept durably in the wake-up table. The index keeps, per partition, a heap of
(due, customer) plus the current due time of each customer; a stale heap entry (the customer's wake-up
moved) is skipped when popped. Taking the due ones costs O(k log n) for k due out of n in memory.

**Bounded** (``limit``, ``Settings.timer_cache``): a partition keeps in memory only the wake-ups due up
to its *horizon*, the earliest ``limit`` or so of them; every customer whose wake-up is at or before the
horizon is in memory, the later ones only in the table. When the ones in memory are taken (or the
clock passes the horizon), the index reads the table again (``scan``) for the next ``limit`` after the
horizon. Memory is thus about ``2 * limit`` entries per partition, whatever the number of customers
waiting; the price is one scan of the wake-up table per ``limit`` wake-ups fired. With fewer wake-ups
than ``limit`` pending there is no horizon and no scan.

The index is rebuilt from the wake-up table when a partition is assigned (after a restart or a
rebalance), so timers survive both.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["TAKEN_MAX", "TIMER_CACHE", "TimerIndex", "WakeupScan"]

TIMER_CACHE = 50_000
"""Default of ``Settings.timer_cache``: wake-ups kept in memory per customer partition (~180 B each)."""

TAKEN_MAX = 100_000
"""Customers taken and not set again yet that a partition remembers (those in flight: each comes back
with its next wake-up once processed, or is pinned for a retry); past it they are forgotten (a leak
guard: a later scan fires them again, harmless, and the count of pending wake-ups may drift)."""

WakeupScan = Callable[[int], Iterable[tuple[str, int]]]
"""Every (customer, due) of a partition in the wake-up table."""


def _order(row: tuple[str, int]) -> tuple[int, str]:
    return row[1], row[0]


@dataclass
class _PartitionTimers:
    heap: list[tuple[int, str]] = field(default_factory=list)
    due: dict[str, int] = field(default_factory=dict)
    horizon: tuple[int, str] | None = None
    """Every wake-up (due, customer) at or before it is in :attr:`due`; None: every wake-up is."""
    beyond: int = 0
    """Wake-ups in the table after the horizon."""
    pinned: set[str] = field(default_factory=set)
    """Customers whose wake-up is in memory only (a retry): kept whatever the horizon."""
    taken: set[str] = field(default_factory=set)
    """Customers taken by :meth:`TimerIndex.pop_due` and not set again yet: their row in the table is
    the old time, which a read of the table must not bring back (a bounded index only)."""


class TimerIndex:
    """``limit``: wake-ups kept in memory per partition (None: all); ``scan``: the table's wake-ups of a
    partition, read when the ones in memory run out (needed with a ``limit``)."""

    def __init__(self, limit: int | None = None, scan: WakeupScan | None = None) -> None:
        if limit is not None and (limit < 1 or scan is None):
            raise ValueError("a bounded timer index needs a limit of at least 1 and a scan of the table")
        self._parts: dict[int, _PartitionTimers] = {}
        self._limit = limit
        self._scan = scan
        self.scans = 0
        """Reads of the wake-up table after the ones at assignment (each: ``limit`` wake-ups fired)."""

    def load(self, partition: int, wakeups: Iterable[tuple[str, int]]) -> None:
        """The partition's wake-ups from the table (at assignment): the earliest ``limit`` in memory."""
        self._parts[partition] = self._earliest(wakeups, None)

    def load_all(self, partitions: Iterable[int], wakeups: Iterable[tuple[int, str, int]]) -> None:
        """:meth:`load` of several partitions from one read of the table's (partition, customer, due):
        memory for at most ``4 * limit`` of each partition while it reads."""
        wanted = set(partitions)
        found: dict[int, list[tuple[str, int]]] = {p: [] for p in wanted}
        dropped = dict.fromkeys(wanted, 0)
        limit = self._limit
        for partition, customer, due in wakeups:
            rows = found.get(partition)
            if rows is None:
                continue
            rows.append((customer, due))
            if limit is not None and len(rows) >= 4 * limit:  # keep the earliest: the rest wait in the table
                kept = heapq.nsmallest(limit, rows, key=_order)
                dropped[partition] += len(rows) - len(kept)
                found[partition] = kept
        for partition in wanted:
            part = self._earliest(found[partition], None)
            if dropped[partition]:
                part.beyond += dropped[partition]
                if part.horizon is None:  # (exactly limit kept: the last of them is the horizon)
                    part.horizon = max((d, c) for c, d in part.due.items())
            self._parts[partition] = part

    def set(
        self,
        partition: int,
        customer: str,
        due_ms: int | None,
        previous_ms: int | None = None,
        pin: bool = False,
    ) -> None:
        """Record the customer's next wake-up (None: no pending timer). ``previous_ms``: what the table
        had for it before (keeps the count of wake-ups beyond the horizon exact). ``pin``: a wake-up the
        table does not have (a retry): kept in memory until it is taken or set again."""
        part = self._parts.setdefault(partition, _PartitionTimers())
        horizon = part.horizon
        # a pinned or taken customer's row in the table is an old time, counted nowhere
        counted = customer not in part.pinned and customer not in part.taken
        if pin:
            part.pinned.add(customer)
        elif part.pinned:
            part.pinned.discard(customer)
        if part.taken:
            part.taken.discard(customer)
        if (
            pin
            and horizon is not None
            and counted
            and previous_ms is not None
            and (previous_ms, customer) > horizon
        ):
            part.beyond -= 1  # its row in the table (``previous_ms``) stops counting: the pinned time does
        if horizon is not None and not pin:
            was_beyond = counted and previous_ms is not None and (previous_ms, customer) > horizon
            now_beyond = due_ms is not None and (due_ms, customer) > horizon
            part.beyond += int(now_beyond) - int(was_beyond)
            if now_beyond:
                part.due.pop(customer, None)
                return
        if due_ms is None:
            part.due.pop(customer, None)
            return
        if part.due.get(customer) == due_ms:
            return
        part.due[customer] = due_ms
        heapq.heappush(part.heap, (due_ms, customer))
        if self._limit is not None and len(part.due) > 2 * self._limit:
            self._shrink(part, self._limit)
        elif len(part.heap) > 4 * len(part.due) + 1024:
            part.heap = [(d, c) for c, d in part.due.items()]
            heapq.heapify(part.heap)

    def pop_due(self, partition: int, now_ms: int, limit: int = 10_000) -> list[tuple[str, int]]:
        """Take (customer, due) of the wake-ups due at or before ``now_ms``; they leave the index
        (the customer's processing records its next one)."""
        part = self._parts.get(partition)
        if part is None:
            return []
        out: list[tuple[str, int]] = []
        if len(part.taken) >= TAKEN_MAX:
            # processing that never came back: forget them (a later scan fires them again, harmless);
            # never by the index's limit (more than that many may be in flight: a large take, a slow
            # batch), which made the count of pending wake-ups drift (test_timers)
            part.taken.clear()
        while True:
            heap = part.heap
            # (a pinned wake-up after the horizon waits for the table's earlier ones: read first)
            until = (
                (now_ms, "\U0010ffff") if part.horizon is None else min((now_ms, "\U0010ffff"), part.horizon)
            )
            while heap and heap[0] <= until and len(out) < limit:
                due, customer = heapq.heappop(heap)
                if part.due.get(customer) == due:
                    del part.due[customer]
                    part.pinned.discard(customer)
                    out.append((customer, due))
                    if self._limit is not None:
                        part.taken.add(customer)
            horizon = part.horizon
            if len(out) >= limit or horizon is None or (part.due and horizon[0] > now_ms):
                return out
            part = self._refill(partition, part)  # those in memory are taken: the next from the table

    def next_due(self, partition: int) -> int | None:
        """The partition's earliest wake-up (None when none is in memory: none pending, or the table
        is read again at the next tick)."""
        part = self._parts.get(partition)
        if part is None:
            return None
        while part.heap and part.due.get(part.heap[0][1]) != part.heap[0][0]:
            heapq.heappop(part.heap)
        return part.heap[0][0] if part.heap else None

    def pending(self, partition: int | None = None) -> int:
        if partition is not None:
            part = self._parts.get(partition)
            return len(part.due) + part.beyond if part else 0
        return sum(len(p.due) + p.beyond for p in self._parts.values())

    def in_memory(self) -> int:
        """Wake-ups held in memory, every partition."""
        return sum(len(p.due) for p in self._parts.values())

    def drop_partition(self, partition: int) -> None:
        self._parts.pop(partition, None)

    def partitions(self) -> list[int]:
        return sorted(self._parts)

    # -- internals ------------------------------------------------------------------------------
    def _earliest(
        self, wakeups: Iterable[tuple[str, int]], after: tuple[int, str] | None
    ) -> _PartitionTimers:
        """The wake-ups after ``after`` (None: all), the earliest ``limit`` of them in memory."""
        part = _PartitionTimers()
        if self._limit is None:
            part.due = {c: d for c, d in wakeups if after is None or (d, c) > after}
        else:
            seen = 0

            def later() -> Iterable[tuple[int, str]]:
                nonlocal seen
                after_due, after_customer = after if after is not None else (-(2**63), "")
                for customer, due in wakeups:
                    if due > after_due or (due == after_due and customer > after_customer):
                        seen += 1
                        yield due, customer

            kept = heapq.nsmallest(self._limit, later())
            part.beyond = seen - len(kept)
            if part.beyond:
                part.horizon = kept[-1]
            part.due = {c: d for d, c in kept}
        part.heap = [(d, c) for c, d in part.due.items()]
        heapq.heapify(part.heap)
        return part

    @staticmethod
    def _shrink(part: _PartitionTimers, limit: int) -> None:
        """Keep the earliest ``limit`` wake-ups in memory (and the pinned ones); the rest are in the table."""
        pinned = part.pinned
        kept = heapq.nsmallest(limit, ((d, c) for c, d in part.due.items() if c not in pinned))
        if not kept:
            return
        part.beyond += len(part.due) - len(pinned) - len(kept)
        part.horizon = kept[-1]
        part.due = {**{c: d for d, c in kept}, **{c: part.due[c] for c in pinned if c in part.due}}
        part.heap = [(d, c) for c, d in part.due.items()]
        heapq.heapify(part.heap)

    def _refill(self, partition: int, part: _PartitionTimers) -> _PartitionTimers:
        assert self._scan is not None
        assert part.horizon is not None
        self.scans += 1
        stale = part.pinned | part.taken  # (their rows in the table are old times)
        rows = self._scan(partition)
        fresh = self._earliest(((c, d) for c, d in rows if c not in stale) if stale else rows, part.horizon)
        for customer, due in part.due.items():  # (at or before the old horizon, or pinned)
            fresh.due[customer] = due
            heapq.heappush(fresh.heap, (due, customer))
        fresh.pinned = part.pinned
        fresh.taken = part.taken  # (set again once processed, a few ticks later; bounded in pop_due)
        self._parts[partition] = fresh
        return fresh
