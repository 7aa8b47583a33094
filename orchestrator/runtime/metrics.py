"""Prometheus metrics of one worker, on a dedicated registry, served at ``/metrics``.

Two kinds:

- **counters and histograms** moved on the hot path by the agents (:meth:`WorkerMetrics.routed`,
  :meth:`WorkerMetrics.event_consumed`, :meth:`WorkerMetrics.processed`, ...). Their label children
  are bound once and kept in dicts, so counting one event costs a few dict look-ups and ``inc()``
  calls (docs/metrics.md has the measured figure);
- **gauges of the worker's state** (consumer lag, pending timers, table sizes, deployed journeys),
  read from the worker when Prometheus scrapes (:meth:`WorkerMetrics.refresh`), never per event.

Labels stay bounded: journey ids, step ids, goal and exit names come from deployed journey files;
channels, reasons and kinds from code. Event types are free-form (custom types are allowed), so a
type is its own label only when the orchestrator knows it or a deployed journey reacts to it; any
other is counted as ``custom``. Every labelled metric keeps at most :data:`MAX_SERIES` series; past
that, new label combinations are counted under ``other``. No customer id, address or other
personal data is ever a label.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from orchestrator.contracts.events import KNOWN_EVENT_TYPES
from orchestrator.contracts.records import EVENT_DEAD_LETTER_REASONS
from orchestrator.core.engine.state import TIMING_REASONS
from orchestrator.core.journey import JourneyRegistry
from orchestrator.runtime.memory_metrics import MemoryGauges
from orchestrator.runtime.segment_metrics import CampaignSeries, SegmentGauges

if TYPE_CHECKING:
    from orchestrator.runtime.app import WorkerApp
    from orchestrator.runtime.processor import Processed

__all__ = [
    "CONTENT_TYPE",
    "CUSTOM_EVENT_TYPE",
    "DECISION_KINDS",
    "INVALID_REASONS",
    "LATENCY_BUCKETS",
    "LATENESS_BUCKETS",
    "MAX_SERIES",
    "OTHER",
    "PREFIX",
    "Decision",
    "WorkerMetrics",
    "exported_names",
]

log = logging.getLogger("orchestrator.metrics")

PREFIX: Final = "orchestrator"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text exposition format, which every Prometheus version reads."""
CUSTOM_EVENT_TYPE: Final = "custom"
OTHER: Final = "other"
INVALID_REASONS: Final = EVENT_DEAD_LETTER_REASONS
"""Why a message is dead-lettered (DeadLetter.reason)."""
MAX_SERIES: Final = 2000
"""Series per labelled metric before new label combinations are counted under ``other``."""
DECISION_KINDS: Final = frozenset({"sent", "suppressed", "held", "dropped", "redirected"})
"""What the cross-channel policy can do to an action; any other kind is counted as ``other``."""
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
LATENESS_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)


class Decision(Protocol):
    """What the metrics read of one policy decision (the policy's own record type has more)."""

    @property
    def kind(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def channel(self) -> str: ...

    @property
    def journey_id(self) -> str: ...


class _Children:
    """Label children of one metric, bound once and cached by label values, at most ``limit``."""

    __slots__ = ("_children", "_limit", "_metric", "_other")

    def __init__(self, metric: Any, limit: int = MAX_SERIES) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}
        self._limit = limit
        self._other: Any = None

    def get(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._bind(values)
        return child

    def _bind(self, values: tuple[str, ...]) -> Any:
        if len(self._children) >= self._limit:
            if self._other is None:
                self._other = self._metric.labels(*(OTHER for _ in values))
            return self._other
        child = self._metric.labels(*values)
        self._children[values] = child
        return child


class WorkerMetrics:
    """Every metric of one worker. ``journeys`` (the worker's registry) lets event types that a
    deployed journey reacts to be their own label."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        journeys: JourneyRegistry | None = None,
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._journeys = journeys
        self._journey_gen = -1
        self._series_gen = -1
        self._journey_types: frozenset[str] = frozenset()
        r = self.registry
        p = PREFIX
        # -- ingestion ------------------------------------------------------------------------------
        self.raw_messages = Counter(
            f"{p}_raw_messages", "Raw messages read by the resolve stage (valid or not).", registry=r
        )
        self.fast_path = Counter(
            f"{p}_fast_path_events",
            "Valid events ingest sent straight to their known customer's partition (the rest go through "
            "the identity writer: raw_messages less these and the dead letters).",
            registry=r,
        )
        self.claims_read = Counter(
            f"{p}_claims_read",
            "Records of the claims topic an ingest worker applied to its copy (the fast path's view).",
            registry=r,
        )
        self.stage_records = Counter(
            f"{p}_stage_records",
            "Input records a stage has taken (ingest: raw messages; identify: events and watermarks; "
            "customer: events, hand-overs, watermarks and wake-ups).",
            ["stage"],
            registry=r,
        )
        self.invalid_events = Counter(
            f"{p}_invalid_events",
            "Messages set aside in the dead-letter topic, by reason "
            "(not_json, invalid_event, over_limit: at resolution; processing_error: in a later stage).",
            ["reason"],
            registry=r,
        )
        self.state_trimmed = Counter(
            f"{p}_state_trimmed",
            "Customer records trimmed to stay under their row limit, by what was trimmed "
            "(outbox, history, seen).",
            ["part"],
            registry=r,
        )
        self.events_consumed = Counter(
            f"{p}_events_consumed",
            "Resolved events taken by the customer stage, by event type (unknown custom types: custom).",
            ["type"],
            registry=r,
        )
        self.out_of_time = Counter(
            f"{p}_events_out_of_time",
            "Events not applied at their own time, by reason: late (older than lateness_hours behind the "
            "partition's clock: the profile takes them, no journey starts), future (ahead of the worker's "
            "clock: applied at the clock).",
            ["reason"],
            registry=r,
        )
        self.duplicate_events = Counter(
            f"{p}_duplicate_events", "Events ignored because their event_id was seen before.", registry=r
        )
        self.rereads = Counter(
            f"{p}_rereads",
            "Seeks back to the next offset to process because records were skipped or read but never "
            "processed (Faust drops fetched records around rebalances; docs/runtime.md).",
            registry=r,
        )
        self.identity = Counter(
            f"{p}_identity_operations",
            "Identity stitching: merge (a customer merged into another), erase (customer.erased applied "
            "to the identity graph), dropped_erased (an event of a recently erased identifier dropped), "
            "dropped_unknown (an event naming a customer key the identity graph does not know dropped), "
            "copy_dropped (a raw record resolved again after a crash or takeover, dropped).",
            ["kind"],
            registry=r,
        )
        # -- journeys ---------------------------------------------------------------------------------
        self.entries = Counter(
            f"{p}_journey_entries", "Customers entering a journey.", ["journey"], registry=r
        )
        self.steps = Counter(
            f"{p}_step_transitions",
            "Customers reaching a step of a journey.",
            ["journey", "step"],
            registry=r,
        )
        self.splits = Counter(
            f"{p}_split_assignments",
            "Customers put into a branch of a split (incl. holdout groups).",
            ["journey", "step", "branch"],
            registry=r,
        )
        self.sends_skipped = Counter(
            f"{p}_sends_skipped",
            "Send steps reached that made no action, by reason (no_address).",
            ["journey", "step", "reason"],
            registry=r,
        )
        self.goals = Counter(
            f"{p}_goals", "Customers reaching a journey's goal.", ["journey", "goal"], registry=r
        )
        self.exits = Counter(
            f"{p}_exits",
            "Customers leaving a journey without its goal, by reason (completed, timeout, exit rule, ...).",
            ["journey", "reason"],
            registry=r,
        )
        # -- actions ----------------------------------------------------------------------------------
        self.actions = Counter(
            f"{p}_actions", "Channel actions sent to the action topics.", ["channel", "journey"], registry=r
        )
        self.actions_resent = Counter(
            f"{p}_actions_resent",
            "Actions sent again for a message read twice after a crash (same action_id).",
            ["channel"],
            registry=r,
        )
        self.decisions = Counter(
            f"{p}_policy_decisions",
            "Verdicts of the cross-channel policy on sends (sent, suppressed, held, dropped, redirected), "
            "by reason, final channel and journey.",
            ["kind", "reason", "channel", "journey"],
            registry=r,
        )
        self.latency = Histogram(
            f"{p}_event_to_action_seconds",
            "From the timestamp of the resolved record (stamped when the resolve stage read and resolved "
            "the raw message) to the moment this worker handed the event's actions to its Kafka producer.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # -- timers -----------------------------------------------------------------------------------
        self.timer_lateness = Histogram(
            f"{p}_timer_lateness_seconds",
            "How late a timer fired after its due time: clock=partition (partition clock when fired) "
            "or clock=wall (wall clock when fired).",
            ["clock"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.pending_timers = Gauge(
            f"{p}_pending_timers",
            "Customers with a pending timer, per owned partition.",
            ["partition"],
            registry=r,
        )
        self.clock_behind = Gauge(
            f"{p}_partition_clock_behind_seconds",
            "Wall clock minus the partition clock, per owned partition (large while catching up).",
            ["partition"],
            registry=r,
        )
        # -- state --------------------------------------------------------------------------------------
        self.lag = Gauge(
            f"{p}_consumer_lag",
            "Messages not yet processed, per assigned raw and resolved partition (high watermark - next).",
            ["topic", "partition"],
            registry=r,
        )
        self.memory = MemoryGauges(r)
        """The gauges of what the worker holds (:mod:`.memory_metrics`)."""
        self.segments = SegmentGauges(r)
        """Members per segment, entries and exits (:mod:`.segment_metrics`)."""
        self.campaigns = CampaignSeries(r)
        """What each campaign did, members its releases woke up (:mod:`.segment_metrics`)."""
        self.journey_info = Gauge(
            f"{p}_journey_deployment_info",
            "1 for each journey version this worker has loaded, with its status.",
            ["journey", "version", "status"],
            registry=r,
        )
        self.journey_version = Gauge(
            f"{p}_journey_current_version",
            "The version of each journey in effect now.",
            ["journey"],
            registry=r,
        )
        self.journeys_loaded = Gauge(f"{p}_journeys_loaded", "Journeys this worker has loaded.", registry=r)
        self.journeys_refused = Gauge(
            f"{p}_journey_deployments_refused",
            "Journey deployment records this worker refused to load (the last 50 are kept; see /journeys/).",
            registry=r,
        )
        self.ready = Gauge(
            f"{p}_worker_ready", "1 when the worker is ready (as /readyz answers).", registry=r
        )
        self.raw_idle = Gauge(
            f"{p}_raw_partition_idle",
            "1 when a raw partition sent no watermark for watermark_idle_s and is left out of the event-time "
            "order (its events count as late); 0 otherwise. On the worker of the identify stage.",
            ["partition"],
            registry=r,
        )
        self.stuck = Gauge(
            f"{p}_partition_stuck",
            "1 when an input partition has lag and no progress for stuck_after_s (0 otherwise).",
            ["topic", "partition"],
            registry=r,
        )
        if process_metrics:
            ProcessCollector(registry=r)
        # -- bound children -------------------------------------------------------------------------
        self._consumed: dict[str, Any] = {t: self.events_consumed.labels(t) for t in KNOWN_EVENT_TYPES}
        self._custom = self.events_consumed.labels(CUSTOM_EVENT_TYPE)
        self._invalid = _Children(self.invalid_events, limit=64)
        for reason in INVALID_REASONS:  # present at 0 from the start, so rate() sees the first one
            self._invalid.get(reason)
        self._entries = _Children(self.entries)
        self._steps = _Children(self.steps)
        self._splits = _Children(self.splits)
        self._skipped = _Children(self.sends_skipped)
        self._goals = _Children(self.goals)
        self._exits = _Children(self.exits)
        self._actions = _Children(self.actions)
        self._resent = _Children(self.actions_resent, limit=16)
        self._decisions = _Children(self.decisions)
        self._out_of_time = {reason: self.out_of_time.labels(reason) for reason in TIMING_REASONS}
        self._late_partition = self.timer_lateness.labels("partition")
        self._late_wall = self.timer_lateness.labels("wall")

    # -- the hot path -------------------------------------------------------------------------------
    def routed(self, reason: str, fast: bool = False) -> None:
        """The resolve stage routed one raw message: ``resolved`` (``fast``: by the fast path) or the
        dead-letter reason."""
        self.raw_messages.inc()
        if fast:
            self.fast_path.inc()
        elif reason != "resolved":
            self._invalid.get(reason).inc()

    def took(self, stage: str, records: int) -> None:
        """``stage`` took ``records`` input records (a fetched batch's run)."""
        self.stage_records.labels(stage).inc(records)

    def reread(self) -> None:
        self.rereads.inc()

    def identified(self, merges: int, erased: int, dropped: int, copies: int = 0, unknown: int = 0) -> None:
        """The identify stage resolved one event."""
        if merges:
            self.identity.labels("merge").inc(merges)
        if erased:
            self.identity.labels("erase").inc(erased)
        if dropped:
            self.identity.labels("dropped_erased").inc(dropped)
        if copies:
            self.identity.labels("copy_dropped").inc(copies)
        if unknown:
            self.identity.labels("dropped_unknown").inc(unknown)

    def invalid(self, reason: str) -> None:
        """A message was dead-lettered outside the resolve stage (``processing_error``)."""
        self._invalid.get(reason).inc()

    def trimmed(self, parts: list[str]) -> None:
        """A customer record was trimmed to fit its row limit."""
        for part in parts:
            self.state_trimmed.labels(part).inc()

    def event_out_of_time(self, reason: str) -> None:
        """The customer stage applied an event ``late`` or from the ``future``."""
        self._out_of_time[reason].inc()

    def event_consumed(self, event_type: str) -> None:
        """The customer stage took one resolved event."""
        child = self._consumed.get(event_type)
        if child is None:
            child = self._type_child(event_type)
        child.inc()

    def _type_child(self, event_type: str) -> Any:
        journeys = self._journeys
        if journeys is None:
            return self._custom
        if journeys.generation != self._journey_gen:
            self._journey_gen = journeys.generation
            types: set[str] = set()
            for jid in journeys.journey_ids():
                for dep in journeys.deployments(jid):
                    types |= dep.definition.event_types
            self._journey_types = frozenset(types)
        if event_type not in self._journey_types or len(self._consumed) >= MAX_SERIES:
            return self._custom
        child = self.events_consumed.labels(event_type)
        self._consumed[event_type] = child
        return child

    def label_of(self, event_type: str) -> str:
        """The ``type`` label an event of ``event_type`` is counted under."""
        child = self._consumed.get(event_type) or self._type_child(event_type)
        return CUSTOM_EVENT_TYPE if child is self._custom else event_type

    def processed(self, done: Processed, record_ts: float | None = None) -> None:
        """One customer message was applied and its actions handed to the producer.

        ``record_ts`` (seconds) is the resolved record's timestamp for events, None for timers: the
        event-to-action latency is observed for events that produced actions.
        """
        if self._journeys is not None and self._journeys.generation != self._series_gen:
            self.journey_series()
        if done.duplicate:
            self.duplicate_events.inc()
            return
        if done.replayed:
            for channel, _ in done.actions:
                self._resent.get(channel).inc()
            return
        for tr in done.transitions:
            kind = tr.kind
            if kind == "step":
                self._steps.get(tr.journey_id, tr.step_id or "").inc()
                if tr.reason:
                    self._skipped.get(tr.journey_id, tr.step_id or "", tr.reason).inc()
            elif kind == "entered":
                self._entries.get(tr.journey_id).inc()
            elif kind == "exited":
                self._exits.get(tr.journey_id, tr.reason or "").inc()
            elif kind == "goal":
                self._goals.get(tr.journey_id, tr.reason or "").inc()
            elif kind == "split":
                self._splits.get(tr.journey_id, tr.step_id or "", tr.branch or "").inc()
        if done.actions:
            for channel, body in done.actions:
                self._actions.get(channel, orjson.loads(body)["journey_id"]).inc()
            if record_ts is not None:
                self.latency.observe(max(0.0, time.time() - record_ts))

    def journey_series(self) -> None:
        """Create the series of every deployed journey at 0 (entries, each step, actions of each send
        step's channel, each goal), so that Prometheus sees each counter before its first increment
        and ``increase()``/``rate()`` count that one too. Runs when the registry changes."""
        journeys = self._journeys
        if journeys is None:
            return
        self._series_gen = journeys.generation
        for jid in journeys.journey_ids():
            self._entries.get(jid)
            for dep in journeys.deployments(jid):
                definition = dep.definition
                for step_id, step in definition.steps.items():
                    self._steps.get(jid, step_id)
                    channel = getattr(step, "channel", None)
                    if isinstance(channel, str):
                        self._actions.get(channel, jid)
                for goal in definition.goals:
                    self._goals.get(jid, goal.name)

    def timer_fired(self, due_ms: int, clock_ms: int, wall_ms: int) -> None:
        """A wake-up reached its customer: how late, by the partition clock and by the wall clock."""
        self._late_partition.observe(max(0, clock_ms - due_ms) / 1000)
        self._late_wall.observe(max(0, wall_ms - due_ms) / 1000)

    def heap_trimmed(self, released: int) -> None:
        """Free heap memory given back (:func:`~orchestrator.runtime.allocator.trim`)."""
        self.memory.heap_trimmed.inc(released)

    def record_decisions(self, decisions: Iterable[Decision]) -> None:
        """Count the cross-channel policy's decisions (kind, reason, channel, journey) for one message."""
        for d in decisions:
            kind = d.kind if d.kind in DECISION_KINDS else OTHER
            self._decisions.get(kind, d.reason, d.channel, d.journey_id).inc()

    # -- at scrape time -----------------------------------------------------------------------------
    async def refresh(self, w: WorkerApp) -> None:
        """Set the gauges of the worker's state; called by ``/metrics`` before rendering."""
        wall_ms = int(time.time() * 1000)
        self.pending_timers.clear()
        self.clock_behind.clear()
        for part in sorted(w.indexed):
            self.pending_timers.labels(str(part)).set(w.timers.pending(part))
            clock = w.clocks.get(part)
            if clock:
                self.clock_behind.labels(str(part)).set(max(0, wall_ms - clock) / 1000)
        await self._refresh_lag(w)
        self.memory.refresh(w)
        self.segments.refresh(w)
        self.campaigns.refresh(w)
        registry = w.book.registry
        if registry.generation != self._series_gen:
            self.journey_series()
        self.journey_info.clear()
        self.journey_version.clear()
        for jid in registry.journey_ids():
            for dep in registry.deployments(jid):
                d = dep.definition
                self.journey_info.labels(jid, str(d.version), d.status).set(1)
            current = registry.current(jid, wall_ms)
            if current is not None:
                self.journey_version.labels(jid).set(current.version)
        self.journeys_loaded.set(len(registry))
        self.journeys_refused.set(len(w.book.problems))
        self.ready.set(1 if _ready(w) else 0)
        self.raw_idle.clear()
        idle = set(w.idle_raw_partitions())
        for raw in w.raw_partitions_heard():
            self.raw_idle.labels(str(raw)).set(1 if raw in idle else 0)
        stuck = set(w.stuck_partitions())
        self.stuck.clear()
        for tp in w.stuck.watched():
            self.stuck.labels(tp.topic, str(tp.partition)).set(1 if tp in stuck else 0)

    async def _refresh_lag(self, w: WorkerApp) -> None:
        t = w.settings.topics
        topics = {t.raw_events, t.identify, t.resolved_events}
        lags: list[tuple[str, str, int]] = []
        try:
            consumer = w.app.consumer
            for tp in sorted(w.app.assignor.assigned_actives()):
                if tp.topic not in topics:
                    continue
                high = consumer.highwater(tp)
                if high is None or high < 0:
                    continue  # no fetch answered yet: unknown, not zero
                expected = w.offsets.next.get(tp)
                if expected is None:  # nothing delivered since the assignment
                    pos = await consumer.position(tp)
                    lag = 0 if pos is None else max(0, high - pos)
                else:
                    lag = max(0, high - expected)
                lags.append((tp.topic, str(tp.partition), lag))
        except Exception:  # the consumer is not up yet or is rebalancing: no lag series this time
            log.debug("consumer lag unavailable", exc_info=True)
        self.lag.clear()
        for topic, part, lag in lags:
            self.lag.labels(topic, part).set(lag)

    def render(self) -> bytes:
        """The text exposition of every metric (content type :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def names(self) -> set[str]:
        """Every sample name this worker can export (see :func:`exported_names`)."""
        return exported_names(self.registry)


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Sample names of every metric family in ``registry``, with the suffixes of its type
    (``_total`` of counters, ``_bucket``/``_count``/``_sum`` of histograms, ...), whether or not a
    labelled metric has a series yet."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
        "stateset": ("",),
        "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
        "unknown": ("",),
    }
    out: set[str] = set()
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            out.add(family.name + suffix)
        out.update(s.name for s in family.samples)
    return out


def _ready(w: WorkerApp) -> bool:
    app = w.app
    recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
    journeys = w.feed is not None and w.feed.caught_up.is_set()
    stuck = w.stuck_partitions()
    idle = w.idle_raw_partitions()
    return bool(
        recovered and journeys and not app.rebalancing and not app.in_recovery and not stuck and not idle
    )
