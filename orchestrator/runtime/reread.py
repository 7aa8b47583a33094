"""Records Faust took from the consumer but never handed to an agent, noticed and read again.

Around a rebalance Faust drops records it has already fetched: a batch cut short when the
generation changes, messages skipped in a stream because they belong to the previous generation.
Faust counts on the seek to the committed offsets that follows an assignment to read them again,
but a drop after that seek is never repaired: the consumer's position is past records no agent
processed. Seen in the two-worker kill test: the worker that took the partitions over read a whole
raw partition without resolving one event of it.

A record that does arrive after such a drop shows it at once (:mod:`.offsets`); when none comes
after, :class:`DropWatch` notices the symptom per partition — the consumer's position past the next
offset to process, with no progress for :data:`SETTLE_MS` — and says when to seek such a partition
back to that offset (at most every :data:`COOLDOWN_MS`). Reading again is safe: every stage
recognises a message it already applied (docs/runtime.md, "Delivery guarantee").
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

__all__ = ["COOLDOWN_MS", "SETTLE_MS", "DropWatch"]

SETTLE_MS = 2_000
"""How long a partition may show records read but not processed, without progress, before it counts."""
COOLDOWN_MS = 10_000
"""Least time between two seeks back."""
HANDED_SETTLE_MS = 30_000
"""The same, for records already handed to the agent's stream: they may wait behind other batches of a
busy agent (an overloaded worker took such a queue for a drop, and re-read it for ever), or have been
dropped by the stream itself (a record of an older consumer generation): only a long stop counts."""


@dataclass
class DropWatch:
    since: dict[Hashable, tuple[int, int]] = field(default_factory=dict)
    """Partition -> (next offset to process when the gap was first seen, when)."""
    last_seek_ms: int = -COOLDOWN_MS
    seeks: int = 0

    def observe(
        self, tp: Hashable, position: int | None, expected: int, now_ms: int, settle_ms: int = SETTLE_MS
    ) -> bool:
        """One partition's state; True when the records between the next offset to process
        (``expected``) and the consumer's position look dropped: the position is past it and the
        agent made no progress for ``settle_ms``."""
        if position is None or position <= expected:
            self.since.pop(tp, None)
            return False
        first = self.since.get(tp)
        if first is None or first[0] != expected:  # new, or the agent made progress: wait again
            self.since[tp] = (expected, now_ms)
            return False
        return now_ms - first[1] >= settle_ms

    def should_seek(self, now_ms: int) -> bool:
        """Called after a partition was found dropped; False while the last seek is recent."""
        if now_ms - self.last_seek_ms < COOLDOWN_MS:
            return False
        self.last_seek_ms = now_ms
        self.seeks += 1
        self.since.clear()
        return True

    def forget(self) -> None:
        """Partitions moved: start over."""
        self.since.clear()
