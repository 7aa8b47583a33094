"""The Faust application: topics, tables and agents of one worker.

Thin by design: every decision is made by plain code (:mod:`.ingest`, :mod:`.processor`, the pure
core); the agents only move bytes between Kafka, the tables and that code.

- ``resolve``: raw events -> valid events on the single-partition identify topic, or dead letters;
- ``identify``: the one writer of the identity graph (table ``identities``): valid events -> resolved
  events keyed by canonical customer, and the merge and erasure hand-overs (:mod:`.identify`);
- ``customers``: resolved events, hand-overs and timer wake-ups -> the customer's state (table
  ``customers``), its next wake-up (table ``wakeups``) and actions on the channel topics;
- the ticker: per owned partition, advances the partition clock and sends a wake-up message for
  each customer whose timer is due, to the timers topic, on the customer's own partition, so the
  customer's agent (the only writer of its state) fires it;
- the journey feed: every worker loads every deployment, live.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.types import TP, EventT

from orchestrator.config import Settings, secret_list
from orchestrator.contracts import DeadLetter
from orchestrator.contracts.records import DeadLetterReason
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.deployments import DeploymentBook
from orchestrator.core.journey import JourneyRegistry
from orchestrator.exceptions import ConfigError, StateLimitError
from orchestrator.kafka.security import faust_credentials
from orchestrator.runtime.allocator import heap, trim
from orchestrator.runtime.batches import BatchApp, batch_of
from orchestrator.runtime.claims import fast_route
from orchestrator.runtime.claims_view import ClaimsView
from orchestrator.runtime.clock import PartitionClocks, SourceWatermarks, event_time
from orchestrator.runtime.customer_stage import CustomerStage
from orchestrator.runtime.erasure import install_local_erasure
from orchestrator.runtime.faust_compat import producer_client
from orchestrator.runtime.funnels import FunnelRows
from orchestrator.runtime.identify import WATERMARK_KEY, HeldEvent, IdentifyStage
from orchestrator.runtime.ingest import route_raw
from orchestrator.runtime.journey_feed import JourneyFeed
from orchestrator.runtime.metrics import WorkerMetrics
from orchestrator.runtime.offsets import InputOffsets
from orchestrator.runtime.ordering import OrderedInputs
from orchestrator.runtime.outgoing import CrashAt, Outgoing, TableRows
from orchestrator.runtime.processor import Processor
from orchestrator.runtime.raw_order import RawOrder
from orchestrator.runtime.reading import (
    commit,
    committed_metadata,
    each_record,
    expected_offset,
    highwater_of,
    lag_of,
    reread_dropped,
)
from orchestrator.runtime.releases import CampaignCounts, ReleaseProgress, release_due
from orchestrator.runtime.reread import DropWatch
from orchestrator.runtime.rocksdb_budget import RocksDBBudget, share
from orchestrator.runtime.segment_sizes import SIZES_TABLE, SegmentSizes
from orchestrator.runtime.stuck import StuckWatch
from orchestrator.runtime.timers import TimerIndex
from orchestrator.runtime.web import register_pages, web_options

__all__ = ["WorkerApp", "build_app", "prepare_data_dir"]

log = logging.getLogger("orchestrator.worker")

CUSTOMERS_TABLE = "customers"
IDENTITIES_TABLE = "identities"
WAKEUPS_TABLE = "wakeups"
PRODUCER_BATCH_BYTES = 512 * 1024
"""Per-partition batch size of the worker's producer (Faust's default is 16 kB). A customer's record
with its outbox is kilobytes, so 16 kB batches held a handful of changelog records, one batch per
partition in flight: the changelog became the bottleneck and Faust's buffer filled up."""


@dataclass
class WorkerApp:
    app: faust.App
    settings: Settings
    customers: Any
    wakeups: Any
    book: DeploymentBook
    processor: Processor
    timers: TimerIndex = field(default_factory=TimerIndex)
    clocks: PartitionClocks = field(default_factory=lambda: PartitionClocks(1))
    sources: SourceWatermarks = field(default_factory=SourceWatermarks)
    last_heartbeat: int = 0
    offsets: InputOffsets = field(default_factory=InputOffsets)
    """The agents' input partitions: next offset to process, what was committed (:mod:`.offsets`)."""
    ordered: dict[int, OrderedInputs[Any]] = field(default_factory=dict)
    """Per resolved partition read: its ordered messages held until their turn (:mod:`.ordering`)."""
    indexed: frozenset[int] = frozenset()
    """Partitions the timer index was built for."""
    feed: JourneyFeed | None = None
    lags: dict[Any, int] = field(default_factory=dict)
    """Lag seen by the last timer tick, per resolved partition (and "raw": this worker's raw backlog)."""
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    identify: IdentifyStage = field(default_factory=lambda: IdentifyStage(1, 1))
    drops: DropWatch = field(default_factory=DropWatch)
    identities: Any = None
    stuck: StuckWatch = field(default_factory=lambda: StuckWatch(30_000))
    """Input partitions with lag and no progress (:mod:`.stuck`), as of ``stuck_seen_ms``."""
    stuck_seen_ms: int = 0
    start_offsets: dict[Any, int] = field(default_factory=dict)
    """Where reading starts, per input partition nothing was delivered from yet: asked once per
    assignment (every consumer call waits for the consumer thread's current fetch)."""

    known_topics: set[str] = field(default_factory=set)
    """Topics the producer has metadata for (:class:`~.outgoing.Outgoing`)."""
    raw_order: RawOrder = field(default_factory=RawOrder)
    """Ingest's order times per raw partition, kept with its commits (:mod:`.raw_order`)."""
    rocksdb: RocksDBBudget | None = None
    """The memory every RocksDB database of the worker shares (None on the memory store)."""
    claims: ClaimsView | None = None
    """Ingest's copy of the identity writer's claims (:mod:`.claims_view`); None: no fast path here."""
    crash: CrashAt | None = None
    """The crash tests' failpoint (``settings.failpoint``), counting deliveries; None: off."""
    segment_sizes_table: Any = None
    """The ``segment_sizes`` table: one row of counts per customer partition (:mod:`.segment_sizes`)."""
    segment_sizes: SegmentSizes = field(default_factory=SegmentSizes)
    """The counts of the customer partitions this worker owns, as last read or written."""
    campaign_counts: CampaignCounts = field(default_factory=CampaignCounts)
    funnels: FunnelRows = field(default_factory=FunnelRows)
    """Each journey's funnel on the partitions this worker owns (:mod:`orchestrator.runtime.funnels`)."""
    """What each campaign did on the customer partitions this worker owns (:mod:`.releases`)."""
    releases: ReleaseProgress = field(default_factory=ReleaseProgress)
    """The campaign releases done on the customer partitions this worker owns (:mod:`.releases`)."""

    def outgoing(self) -> Outgoing:
        """A new batch of records to write (:mod:`.outgoing`)."""
        return Outgoing(producer_client(self.app), self.known_topics, self.crash)

    def idle_raw_partitions(self) -> list[int]:
        """Raw partitions left out of the event-time order now (not heard from for ``watermark_idle_s``):
        by the identify stage, or by a customer partition's fast-path sources."""
        idle = set(self.identify.idle()) if self.identify.loaded else set()
        for inputs in self.ordered.values():
            idle.update(int(source[1:]) for source in inputs.idle() if source.startswith("r"))
        return sorted(idle)

    def raw_partitions_heard(self) -> list[int]:
        """Raw partitions whose watermarks this worker has read (the identify stage's or the fast path's)."""
        heard = set(self.identify.marks) if self.identify.loaded else set()
        for inputs in self.ordered.values():
            heard.update(int(source[1:]) for source in inputs.heard if source.startswith("r"))
        return sorted(heard)

    def stuck_partitions(self) -> list[Any]:
        """Input partitions stuck at the last look (the ticker looks every second)."""
        return self.stuck.stuck(self.stuck_seen_ms) if self.stuck_seen_ms else []


FAST_ROOM_MS = 10_000
"""How far past the watermark of the moment a commit raises the fast path's allowance: live, the
watermark follows the wall clock and never waits for a commit; on a backlog, the fast path's watermark
follows the commits (a second apart), and a worker that takes the partition over sends the events of
that much event time after the last commit through the writer."""


def _wall_ms() -> int:
    return int(time.time() * 1000)


def prepare_data_dir(path: Path) -> None:
    """Create the worker's data directory with its parents (the default, ``var/worker``, is relative to
    the folder the worker starts in); a clear error naming the setting when it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        raise ConfigError(
            f"data_dir {str(path)!r} cannot be used: {exc.strerror or exc}; set data_dir in the config "
            f"file or ORCH_DATA_DIR to a folder the worker may write to"
        ) from None


def build_app(settings: Settings) -> WorkerApp:
    """A Faust app wired to ``settings``; nothing connects until it runs."""
    prepare_data_dir(settings.data_dir)
    app = BatchApp(
        settings.app_id,
        broker=[f"kafka://{s.strip()}" for s in settings.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        **web_options(settings),
        producer_acks=-1,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        key_serializer="raw",
        value_serializer="raw",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 5),
        broker_rebalance_timeout=settings.session_timeout_s * 2,
    )
    app.fetch_min_bytes = max(1, settings.fetch_min_kb * 1024)
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    t = settings.topics
    # The agents' inputs are read without Faust's acknowledgements: the worker checks the order of
    # every record and commits their offsets itself (:mod:`.offsets`).
    raw_topic = app.topic(t.raw_events, key_type=bytes, value_type=bytes, acks=False)
    identify_topic = app.topic(t.identify, key_type=bytes, value_type=bytes, acks=False)
    customer_input = app.topic(t.resolved_events, t.timers, key_type=bytes, value_type=bytes, acks=False)
    dead_letter_topic = app.topic(t.dead_letter, key_type=bytes, value_type=bytes)
    action_topics = {
        "email": app.topic(t.action_email, key_type=bytes, value_type=bytes),
        "sms": app.topic(t.action_sms, key_type=bytes, value_type=bytes),
        "push": app.topic(t.action_push, key_type=bytes, value_type=bytes),
        "decisions": app.topic(t.decisions, key_type=bytes, value_type=bytes),
    }

    rocks = settings.store.startswith("rocksdb")
    budget = RocksDBBudget(settings.rocksdb_memory_mb) if rocks else None

    def table(name: str, partitions: int) -> Any:
        # Faust's RocksDB defaults (64 MB x 3 memtables and a 2 GB cache per partition's database) let
        # a worker's memory grow with its data and its partitions (issue 27): every database shares one
        # budget. Faust's store pops keys from the options it is given: a fresh dict per table.
        options = settings.rocksdb_options() if rocks else None
        made = app.Table(name, key_type=str, value_type=bytes, partitions=partitions, options=options)
        if budget is not None:
            share(made, budget)
        return made

    customers = table(CUSTOMERS_TABLE, settings.partitions)
    wakeups = table(WAKEUPS_TABLE, settings.partitions)
    identities = table(IDENTITIES_TABLE, 1)
    sizes = table(SIZES_TABLE, settings.partitions)
    registry = JourneyRegistry(history_window_ms=settings.history_window_days * 86_400_000)
    book = DeploymentBook(registry)
    logic = CustomerLogic(
        registry,
        policy=book.policies,
        segments=book.segment_registry,
        campaigns=book.campaign_registry,
        models=book.models,
        history_window_ms=settings.history_window_days * 86_400_000,
        lateness_ms=settings.lateness_hours * 3_600_000 or None,
        dedupe_window_ms=settings.dedupe_window_hours * 3_600_000,
    )
    w = WorkerApp(
        app, settings, customers, wakeups, book, Processor(logic), metrics=WorkerMetrics(journeys=registry)
    )
    w.rocksdb = budget
    w.segment_sizes_table = sizes
    w.clocks = PartitionClocks(1)  # one watermark per customer partition: the identify stage's
    w.timers = TimerIndex(
        settings.timer_cache, lambda p: ((c, d) for q, c, d in _wakeups_of(wakeups) if q == p)
    )
    failpoint = settings.delivery_failpoint()
    if failpoint is not None:
        log.warning("failpoint set (crash tests only): %s", settings.failpoint)
        w.crash = CrashAt(failpoint)
    erasure_keys = secret_list(settings.erasure_key)
    w.identify = IdentifyStage(
        sources=settings.partitions,
        partitions=settings.partitions,
        erasure_key=erasure_keys[0] if erasure_keys else None,
        previous_keys=erasure_keys[1:],
        idle_ms=None if settings.watermark_idle_s <= 0 else int(settings.watermark_idle_s * 1000),
        claims=settings.fast_path,
    )
    w.identities = identities
    install_local_erasure(
        app,
        [customers, wakeups, identities],
        customers=CUSTOMERS_TABLE,
        identities=IDENTITIES_TABLE,
        every_s=settings.erasure_compaction_hours * 3600 / 4,  # standbys: within a quarter of the bound
    )
    w.stuck = StuckWatch(int(settings.stuck_after_s * 1000))
    feed = w.feed = JourneyFeed(settings, book)
    limits = settings.event_limits()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        if any(tp.topic == t.identify for tp in revoked):
            w.identify.unload()  # another worker may write the graph now: read it again when back
        try:  # what was processed counts before the partitions move (less to read again)
            await commit(w)
        except Exception:
            log.warning("commit before the rebalance failed; the new owner reads those records again")
        w.offsets.forget(revoked)  # reading starts over at the group's offset where it comes back
        for tp in revoked:
            if tp.topic == t.resolved_events:
                w.ordered.pop(tp.partition, None)  # (its held messages are read again from there)
                # (read again from the table when back)
                for rows in (w.segment_sizes, w.campaign_counts, w.releases, w.funnels):
                    rows.forget([tp.partition])
        w.raw_order.forget(tp for tp in revoked if tp.topic == t.raw_events)
        handed: dict[Any, int] = app.handed
        for tp in revoked:
            w.start_offsets.pop(tp, None)
            handed.pop(tp, None)
        w.drops.forget()

    async def dead_letter(msg: Any, exc: Exception) -> None:
        """One message (a Faust message or a record of a batch) failed in a stage's logic: dead-letter
        it (``processing_error``, ``over_limit``) and go on."""
        log.error(
            "processing %s[%s]@%s failed; dead-lettered", msg.topic, msg.partition, msg.offset, exc_info=exc
        )
        reason: DeadLetterReason = "over_limit" if isinstance(exc, StateLimitError) else "processing_error"
        w.metrics.invalid(reason)
        letter = DeadLetter.of(
            reason=reason, error=f"{msg.topic}[{msg.partition}]@{msg.offset}: {type(exc).__name__}: {exc}",
            topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
            value=msg.value or b"", at=datetime.now(UTC),
        )  # fmt: skip
        await dead_letter_topic.send(key=DeadLetter.key_of(msg.key), value=letter.to_json(), force=True)

    @app.task
    async def journey_feed() -> None:
        await feed.run()

    async def resolve(stream: Any) -> None:
        # one stream event per fetched batch of one partition (:mod:`.batches`); each record in order
        event: EventT[Any]
        async for event in stream.events():
            tp = batch_of(event)[0]
            if w.raw_order.needs_restore(tp):
                w.raw_order.restore(tp, await committed_metadata(app, tp))
            await each_record(w, "ingest", event, _resolve_one, _observed, _to_writer if claims else None)

    claims = w.claims = ClaimsView(
        settings, settings.data_dir / f"{settings.app_id}-claims" if rocks else None, budget,
        w.metrics.claims_read.inc,
    ) if settings.fast_path and settings.runs("ingest") else None  # fmt: skip

    def fast(identifiers: Any, event_type: str, order: tuple[int, int, int, int]) -> str | None:
        if claims is None or order[0] < w.raw_order.fast_floor(order[1]):
            # (below the floor: a worker before this one may have sent a fast-path watermark past it)
            return None
        return fast_route(identifiers, event_type, order, claims.get)

    writer_later: dict[TP, list[tuple[bytes | None, bytes]]] = {}
    """With the fast path: per raw partition, the run's events for the identity writer. They go once
    the run's fast-path events are on the broker, so that the writer never reads a raw offset whose
    fast-path predecessors of the same run could still be lost in a crash (it takes a raw offset at
    or below one it read for a copy)."""

    async def _to_writer(tp: TP, out: Outgoing) -> None:
        for key, value in writer_later.pop(tp, ()):
            await out.add(t.identify, 0, key, value)

    if claims is not None:

        @app.task
        async def read_claims() -> None:
            await claims.run()

    read_ms: dict[int, int] = {}
    """Per raw partition, the latest event time of the run being written: it counts for the watermarks
    only once the run's events are on the broker (a watermark sent before them would overtake them)."""

    def _observed(tp: TP) -> None:
        w.raw_order.done(tp)
        at = read_ms.pop(tp.partition, None)
        if at is not None:
            w.sources.observe(tp.partition, at)

    async def _resolve_one(tp: TP, rec: Any, out: Outgoing) -> None:
        def order(occurred_ms: int) -> int:
            return w.raw_order.next(tp, event_time(occurred_ms, _wall_ms()))

        try:  # never raises for any bytes (hypothesis-tested); a bug would still fail this one alone
            routed = route_raw(
                rec.value, rec.key, topic=tp.topic, partition=tp.partition, offset=rec.offset,
                topics=t, at=datetime.now(UTC), limits=limits, order=order, fast=fast,
            )  # fmt: skip
        except Exception as exc:
            await dead_letter(rec, exc)
            return
        w.metrics.routed(routed.reason, routed.fast)
        if routed.reason != "resolved":
            log.warning("dead-lettered %s[%s]@%s: %s", tp.topic, tp.partition, rec.offset, routed.reason)
            await out.add_keyed(routed.topic, routed.key, routed.value)
            return
        at = routed.order_ms if routed.order_ms is not None else event_time(routed.event_ms, _wall_ms())
        if at > read_ms.get(tp.partition, 0):
            read_ms[tp.partition] = at
        if routed.fast:
            await out.add_keyed(routed.topic, routed.key, routed.value)  # its customer's partition
        elif claims is not None:
            writer_later.setdefault(tp, []).append((routed.key, routed.value))  # after the fast ones
        else:
            await out.add(routed.topic, 0, routed.key, routed.value)  # the one identify partition

    rows: dict[str, TableRows] = {}

    def identity_rows() -> TableRows:
        if "i" not in rows:  # the table's store exists once the app runs
            rows["i"] = TableRows(identities)
        return rows["i"]

    async def identify(stream: Any) -> None:
        event: EventT[Any]
        async for event in stream.events():
            await each_record(w, "identify", event, _identify_one)

    async def _identify_one(tp: TP, rec: Any, out: Outgoing) -> None:
        stage = w.identify
        if rec.value is None:
            log.error("identify message without a value at %s@%s", tp.topic, rec.offset)
            return
        table = identity_rows()
        if not stage.loaded:
            stage.load(
                ((k, orjson.loads(v)) for k, v in identities.items()),
                read=table.read,
                cache=settings.identity_cache,
            )
            log.info(
                "identity graph loaded: %d customers, %d events held, at offset %d",
                len(stage.graph or ()), stage.held(), stage.last,
            )  # fmt: skip
        try:
            committed = w.offsets.committed.get(tp)
            for name in stage.prune(committed):
                await table.put(out, tp.partition, name, None)
            stored = None
            if stage.needs_stored(rec.offset):
                row = table.get(stage.outbox_row(rec.offset))
                stored = None if row is None else orjson.loads(row)
        except BaseException:
            log.critical("identity table failed at %s@%s; exiting", tp.topic, rec.offset, exc_info=True)
            os._exit(70)
        try:
            if rec.key == WATERMARK_KEY:
                mark = orjson.loads(rec.value)
                sent, covered = mark.get("s"), mark.get("o")
                done = stage.on_watermark(
                    rec.offset, int(mark["r"]), int(mark["t"]), stored, None if sent is None else int(sent),
                    None if covered is None else int(covered),
                )  # fmt: skip
            else:
                held = HeldEvent.read(rec.value)
                at = event_time(held.occurred_ms, _wall_ms())
                done = stage.on_event(rec.offset, held, at, stored)
        except Exception as exc:  # this message alone: set aside, the stage goes on
            stage.unload()  # it may have half-applied the message: reload from the table
            await dead_letter(rec, exc)
            return
        try:
            for name, value in done.rows.items():
                await table.put(out, tp.partition, name, None if value is None else orjson.dumps(value))
            for key, value, partition in done.messages:
                if partition is None:
                    await out.add_keyed(t.resolved_events, key, value)
                else:
                    await out.add(t.resolved_events, partition, key, value)
            for key, claim in done.claims:
                await out.add(t.claims, 0, key, claim)
        except BaseException:
            # the table or Kafka failed; stop before this offset can be committed, so it is read
            # again after the restart
            log.critical("identify stage failed at %s@%s; exiting", tp.topic, rec.offset, exc_info=True)
            os._exit(70)
        w.metrics.identified(done.merges, done.erased, done.dropped, done.copies, done.unknown)

    action_names = {channel: topic.get_topic_name() for channel, topic in action_topics.items()}
    stage = CustomerStage(w, action_names, t.resolved_events, dead_letter)

    async def customer_agent(stream: Any) -> None:
        # one stream event per fetched batch of one partition (:mod:`.batches`)
        await feed.caught_up.wait()
        event: EventT[Any]
        async for event in stream.events():
            await stage.on_batch(*batch_of(event))

    # Only the stages this worker runs read their topics (settings.stages); the group's assignor gives
    # each stage's partitions to the workers that run it.
    for name, agent, source, topics in (
        ("ingest", resolve, raw_topic, (t.raw_events,)),
        ("identify", identify, identify_topic, (t.identify,)),
        ("customer", customer_agent, customer_input, (t.resolved_events, t.timers)),
    ):
        if settings.runs(name):
            app.agent(source, name=f"orchestrator.{name}")(agent)
            app.batch_topics.update(topics)

    @app.timer(interval=settings.timer_tick_s)
    async def fire_due_timers() -> None:
        # Not while partitions move or tables are restored from their changelogs: the timer index of
        # a newly assigned partition is rebuilt from the wake-up table, which must be complete.
        if not _settled(app):
            return
        actives = app.assignor.assigned_actives()
        owned = frozenset(tp.partition for tp in actives if tp.topic == t.resolved_events)
        if owned != w.indexed:
            _rebuild_index(w, owned)
        wall = _wall_ms()
        # Resolution side: a watermark per owned raw partition, to every resolved partition.
        marks = w.outgoing()
        for tp in actives:
            if tp.topic != t.raw_events:
                continue
            if claims is not None and w.raw_order.needs_restore(tp):
                # (the fast path's allowance, also of a partition with nothing to read)
                w.raw_order.restore(tp, await committed_metadata(app, tp))
                if not w.offsets.knows(tp):
                    w.offsets.begin(tp, await expected_offset(w, tp))
            lag = await lag_of(w, tp)
            w.lags[f"raw-{tp.partition}"] = lag
            mark = w.sources.watermark(tp.partition, lag, wall)
            # every raw offset below ``covered`` is on the broker, by whichever path it went
            covered = w.offsets.next.get(tp)
            if mark > w.sources.sent.get(tp.partition, 0) or wall - w.last_heartbeat >= 1000:
                # s: heard at (bounded wait); o: the writer takes a raw offset below it for a copy
                body = orjson.dumps({"r": tp.partition, "t": mark, "s": wall, "o": covered})
                # through the identify stage, after the events it resolved before (one order)
                await identify_topic.send(key=WATERMARK_KEY, value=body, partition=0, force=True)
                if claims is not None:
                    # and straight to every customer partition, after the fast path's events it covers
                    # (on the broker before ``w.sources`` counted them): the partitions' source r<p>;
                    # never past the allowance committed (:mod:`.raw_order`)
                    fast_mark = min(mark, w.raw_order.fast_cap(tp))
                    body = orjson.dumps(
                        {"r": tp.partition, "t": fast_mark, "s": wall, "src": f"r{tp.partition}"}
                    )
                    for p in range(settings.partitions):
                        await marks.add(t.resolved_events, p, WATERMARK_KEY, body)
                w.sources.sent[tp.partition] = mark
            if claims is not None:
                # the next commit (a commit a second) asks for a little more than the watermark needs now
                w.raw_order.want(tp, mark + FAST_ROOM_MS)
        try:
            await marks.deliver()
        except BaseException:
            log.critical("sending the fast path's watermarks failed; exiting", exc_info=True)
            os._exit(70)
        if wall - w.last_heartbeat >= 1000:
            w.last_heartbeat = wall
        # Customer side: fire what is due on the partitions this worker owns, as one batch.
        out = w.outgoing()
        try:
            for p in owned:
                now = w.clocks.get(p)
                if now <= 0:
                    continue
                # Timers due strictly before the clock: a customer's event at exactly the clock's
                # instant may still be on its way, and it goes first ("an open at exactly the timeout
                # counts").
                fire_until = now - 1
                scans = w.timers.scans
                for customer, due in w.timers.pop_due(p, fire_until):
                    body = orjson.dumps({"due": due, "now": fire_until})
                    await out.add(t.timers, p, customer.encode(), body)
                if w.timers.scans != scans:
                    log.info(
                        "wake-ups of partition %d read again from the table (more than timer_cache pending): "
                        "%d pending, %d in memory", p, w.timers.pending(p), w.timers.in_memory(),
                    )  # fmt: skip
            await out.deliver()
        except BaseException:
            # taken out of the index but not sent: stop, the index is rebuilt from the wake-up table
            log.critical("sending due wake-ups failed; exiting", exc_info=True)
            os._exit(70)

    @app.timer(interval=1.0)
    async def release_campaigns() -> None:
        # Its own timer: a release at a slow pace takes a while, and must not delay the due timers.
        if not _settled(app) or not settings.runs("customer"):
            return

        def owned() -> frozenset[int]:
            return frozenset(
                tp.partition for tp in app.assignor.assigned_actives() if tp.topic == t.resolved_events
            )

        mine = owned()
        try:
            await release_due(w, mine, lambda p: _settled(app) and p in owned())
        except BaseException:
            log.critical("sending a campaign's wake-ups failed; exiting", exc_info=True)
            os._exit(70)

    @app.timer(interval=1.0)
    async def watch_dropped() -> None:
        # Its own timer: asking the consumer's positions may wait for its fetch, which must not
        # delay the firing of due timers.
        if not _settled(app):
            return
        await reread_dropped(w, app.assignor.assigned_actives(), _wall_ms())

    @app.timer(interval=1.0)
    async def watch_stuck() -> None:
        # Its own timer: asking offsets of partitions nothing was read from yet may take a broker
        # round trip, which must not delay the firing of due timers.
        if not _settled(app):
            return
        await _watch_stuck(w, app.assignor.assigned_actives(), _wall_ms())

    if settings.malloc_trim_s > 0 and heap() is None:
        log.info("malloc_trim_s: not a glibc system, freed memory is left to the C library")
    elif settings.malloc_trim_s > 0:

        @app.timer(interval=settings.malloc_trim_s)
        async def give_back_memory() -> None:
            # in a thread: the heap scan takes tens of ms and releases the GIL (runtime/allocator.py)
            released = await asyncio.get_running_loop().run_in_executor(None, trim)
            if released:
                w.metrics.heap_trimmed(released)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def commit_at_shutdown(sender: Any, **_: Any) -> None:
        # the streams are drained by now: what was processed is committed, nothing is read twice
        try:
            await commit(w)
        except Exception:
            log.warning("commit at shutdown failed; those records are read again at the next start")

    @app.timer(interval=settings.commit_interval_s)
    async def commit_offsets() -> None:
        if app.rebalancing:
            return
        try:
            await commit(w)
        except BaseException:
            # the producer could not deliver (DeliveryError) or Kafka failed: stop before anything
            # is committed past it; the records are read again after the restart
            log.critical("committing offsets failed; exiting", exc_info=True)
            os._exit(70)

    register_pages(app, w)
    return w


async def _watch_stuck(w: WorkerApp, actives: Any, wall: int) -> None:
    """Feed the stuck watch with each input partition's progress and lag; log what became stuck.

    Only what the worker knows locally, except once per partition and assignment where reading starts
    when nothing was delivered yet: Faust's consumer calls run one at a time in its consumer thread, so
    asking the broker every second for every partition slows the fetching of every partition."""
    t = w.settings.topics
    inputs = [tp for tp in actives if tp.topic in (t.raw_events, t.identify, t.resolved_events, t.timers)]
    before = set(w.stuck_partitions())
    for tp in inputs:
        high = highwater_of(w.app, tp)
        if high is None or high < 0:
            continue  # nothing fetched yet: unknown, not judged
        expected = await expected_offset(w, tp)
        w.stuck.observe(tp, expected, max(0, high - expected), wall)
    w.stuck.keep_only(inputs)
    w.stuck_seen_ms = wall
    for tp in set(w.stuck_partitions()) - before:
        log.error(
            "%s[%s] is stuck: %s records waiting and no progress for %.0f s (next offset %s)",
            tp.topic, tp.partition, w.stuck.lag(tp), w.stuck.stalled_ms(tp, wall) / 1000,
            w.offsets.next.get(tp),
        )  # fmt: skip


def _settled(app: faust.App) -> bool:
    """No rebalance going on and the tables restored: what the timers may rely on (the timer index is
    rebuilt from the wake-up table, the consumer's positions are those of the assignment)."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    return not (app.rebalancing or app.in_recovery or recovery.in_recovery or not recovery.completed.is_set())


def _rebuild_index(w: WorkerApp, owned: frozenset[int]) -> None:
    """Rebuild the in-memory timer index from the durable wake-up table (after assignment)."""
    for p in w.timers.partitions():
        if p not in owned:
            w.timers.drop_partition(p)
            w.clocks.forget(p)
    fresh = owned - w.indexed
    if fresh:
        w.timers.load_all(fresh, _wakeups_of(w.wakeups))
        log.info("timer index rebuilt for partitions %s: %d pending, %d in memory",
                 sorted(fresh), w.timers.pending(), w.timers.in_memory())  # fmt: skip
    w.indexed = owned


def _wakeups_of(wakeups: Any) -> Iterator[tuple[int, str, int]]:
    """The wake-up table's (partition, customer, due), read as it goes (a row: ``"<partition>:<due>"``)."""
    for key, value in wakeups.items():
        p_text, _, due_text = value.decode().partition(":")
        yield int(p_text), key, int(due_text)
