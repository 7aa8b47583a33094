"""The segment and campaign series of a worker: members per segment (the partitions it owns), entries and
exits; what each campaign did to its members, and the members its releases woke up.

Part of :class:`~orchestrator.runtime.metrics.WorkerMetrics` (same registry). Labels: the segment id,
bounded by :data:`~orchestrator.core.segment.registry.MAX_SEGMENTS`; the campaign id, bounded by
:data:`~orchestrator.core.campaign.registry.MAX_CAMPAIGNS` (a deployment past either is refused), and the
outcome (:mod:`orchestrator.core.campaign.delivery`: a fixed set, the policy's reasons in ``unsent_*``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from orchestrator.core.segment import SegmentChange
    from orchestrator.runtime.app import WorkerApp

__all__ = ["CampaignSeries", "SegmentGauges"]

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


class CampaignSeries:
    def __init__(self, r: CollectorRegistry) -> None:
        self.outcomes = Counter(
            f"{_P}_campaign_outcomes",
            "What a campaign did to its members, by outcome: scheduled (given a send time), sent, "
            "unsent_<reason> (refused by the policy), held (quiet hours), late (past the delivery window), "
            "left (out of the audience at the send time), entered / not_entered (a journey), cancelled.",
            ["campaign", "outcome"],
            registry=r,
        )
        self.released = Counter(
            f"{_P}_campaign_released",
            "Members woken up by this worker when a campaign's occurrence was released (its partitions).",
            ["campaign"],
            registry=r,
        )
        self.loaded = Gauge(f"{_P}_campaigns_loaded", "Campaigns this worker has loaded.", registry=r)

    def changed(self, events: Iterable[tuple[str, int, str]]) -> None:
        for campaign, _, outcome in events:
            self.outcomes.labels(campaign, outcome).inc()

    def refresh(self, w: WorkerApp) -> None:
        self.loaded.set(len(w.book.campaign_registry))
