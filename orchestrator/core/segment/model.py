"""A segment as an immutable Python object, ready for the per-customer logic.

A :class:`SegmentDefinition` is what a segment file (``kind: segment``, docs/segments.md) becomes after
loading and validation: its CEL condition compiled once, the segments it reads named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator.core.journey.model import Condition

__all__ = ["SEGMENT_STATUSES", "SegmentDefinition", "SegmentStatus"]

SegmentStatus = Literal["active", "archived"]
SEGMENT_STATUSES: tuple[SegmentStatus, ...] = ("active", "archived")


@dataclass(frozen=True, slots=True)
class SegmentDefinition:
    """One version of one segment: the customers for whom ``condition`` holds."""

    id: str
    version: int
    name: str
    description: str
    condition: Condition
    """Over ``profile`` (attributes, consent, subscriptions, other segments) and ``history``
    (seen()/count() with windows); never ``event``, ``journey`` or ``now`` alone."""
    depends_on: frozenset[str] = frozenset()
    """The segments the condition reads (``"vip" in profile.segments``)."""
    status: SegmentStatus = "active"
    """``archived``: nobody is a member any more (members leave at their next event or check)."""
    max_lookback_ms: int = 0
    source_name: str = "<text>"
    content_hash: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.version)

    @property
    def time_dependent(self) -> bool:
        """Its condition counts events in windows: membership may change as time passes."""
        return self.condition.compiled.time_dependent
