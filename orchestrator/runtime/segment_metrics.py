"""The segment series of a worker: members per segment (the partitions it owns), entries and exits.

Part of :class:`~orchestrator.runtime.metrics.WorkerMetrics` (same registry). One label, the segment id:
bounded by :data:`~orchestrator.core.segment.registry.MAX_SEGMENTS` (a deployment past it is refused).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from orchestrator.core.segment import SegmentChange
    from orchestrator.runtime.app import WorkerApp

__all__ = ["SegmentGauges"]

_P = "orchestrator"


class SegmentGauges:
    def __init__(self, r: CollectorRegistry) -> None:
        self.members = Gauge(
            f"{_P}_segment_members",
            "Customers in each segment, over the customer partitions this worker owns (sum over workers for "
            "the cluster; `orchestrator segments` reads the same counts from Kafka).",
            ["segment"],
            registry=r,
        )
        self.entered = Counter(
            f"{_P}_segment_entries", "Customers entering a segment (on an event or as time passed).",
            ["segment"], registry=r,
        )  # fmt: skip
        self.left = Counter(
            f"{_P}_segment_exits",
            "Customers leaving a segment (on an event, as time passed, erased, merged away, archived).",
            ["segment"],
            registry=r,
        )
        self.loaded = Gauge(f"{_P}_segments_loaded", "Segments this worker has loaded.", registry=r)

    def changed(self, changes: Iterable[SegmentChange]) -> None:
        for change in changes:
            (self.entered if change.entered else self.left).labels(change.segment).inc()

    def refresh(self, w: WorkerApp) -> None:
        """Set when Prometheus scrapes: every deployed segment (0 when it has no member here)."""
        totals = w.segment_sizes.totals()
        deployed = w.book.segment_registry.segment_ids()
        self.members.clear()
        for segment in sorted({*deployed, *totals}):
            self.members.labels(segment).set(totals.get(segment, 0))
        self.loaded.set(len(deployed))
