"""Records Faust took from the consumer but never handed to an agent, noticed and read again.

Around a rebalance Faust drops records it has already fetched: a batch cut short when the
generation changes, messages skipped in a stream because they belong to the previous generation.
Faust counts on the seek to the committed offsets that follows an assignment to read them again,
but a drop after that seek is never repaired: the consumer's position is past records no agent
processed. Seen in the two-worker kill test: the worker that took the partitions over read a whole
raw partition without resolving one event of it.

:class:`DropWatch` notices the symptom per partition — the consumer's position ahead of what the
agent processed, with no progress for :data:`SETTLE_MS` — and says when to seek such a partition back
to its committed offset, or its oldest record when the group has none (at most every
:data:`COOLDOWN_MS`). Reading again is safe: every stage recognises a message
it already applied (docs/runtime.md, "Delivery guarantee").
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

__all__ = ["COOLDOWN_MS", "SETTLE_MS", "DropWatch"]

SETTLE_MS = 2_000
"""How long a partition may show records read but not processed, without progress, before it counts."""
COOLDOWN_MS = 10_000
"""Least time between two seeks back."""


@dataclass
class DropWatch:
    since: dict[Hashable, tuple[int | None, int]] = field(default_factory=dict)
    """Partition -> (processed offset when the gap was first seen, when)."""
    last_seek_ms: int = -COOLDOWN_MS
    seeks: int = 0

    def observe(
        self,
        tp: Hashable,
        position: int | None,
        processed: int | None,
        handed: int | None,
        committed: int | None,
        now_ms: int,
    ) -> bool:
        """One partition's state; True when the records between what was processed and the
        position look dropped. ``processed``: the agent's last offset since the assignment (None:
        none); ``handed``: Faust's read offset (the next offset after a seek, then the last one handed
        to a stream)."""
        if position is None:
            self.since.pop(tp, None)
            return False
        if processed is not None:
            gap = position > processed + 1
        elif handed is not None:
            # Faust's read offset: the next offset after a seek, then the last one handed over
            gap = handed < position
        else:
            gap = position > (committed or 0)
        if not gap:
            self.since.pop(tp, None)
            return False
        first = self.since.get(tp)
        if first is None or first[0] != processed:  # new, or the agent made progress: wait again
            self.since[tp] = (processed, now_ms)
            return False
        return now_ms - first[1] >= SETTLE_MS

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
