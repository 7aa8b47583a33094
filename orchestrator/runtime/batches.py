"""Faust agents whose stream events are fetched partition batches (docs/runtime.md, "Batches").

Faust pays 150-700 µs per record between its consumer and an agent (message objects, the conductor,
queues, stream iteration, acknowledgements: ../shared/notes/faust-batch-hot-path.md). For the topics in
:attr:`BatchApp.batch_topics` the consumer's fetch loop (:class:`BatchConsumer`) hands the conductor
**one message per partition per fetch** instead: its ``value`` is the list of the fetched aiokafka
records (key, value, offset, timestamp), its ``offset`` the last one's. Everything else stays Faust's:
group membership and its assignor, tables, recovery, standbys, other topics (read record by record).

The batch topics are read with Faust's acknowledgements off: the worker admits records in order and
commits offsets itself (:mod:`.offsets`, :mod:`.reading`). The loop follows ``Consumer.getmany`` and
``Consumer._drain_messages`` of faust-streaming 0.15.3 (``faust_compat``): no records while the flow is
suspended (a rebalance: seek back to the committed offsets), nothing of an older consumer generation,
records of paused partitions (in recovery) dropped, Faust's read offset kept per partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from orchestrator.runtime.producer import DurableApp

log = logging.getLogger("orchestrator.worker")

__all__ = [
    "BROKER_FETCH_WAIT_MS",
    "FETCH_WAIT_S",
    "YIELD_EVERY_S",
    "BatchApp",
    "BatchConsumer",
    "Pacer",
    "batch_of",
]


YIELD_EVERY_S = 0.01
"""While a batch is applied, the event loop gets a turn at least this often: a batch of thousands of
records must not hold up the HTTP API, the timers and the group's heartbeats for seconds."""


FETCH_WAIT_S = 0.1
"""How long one fetch waits for records (Faust's loop: 1 s). Every other call to the consumer (commits,
seeks, positions, offsets) waits in its thread behind the current fetch: an idle worker's commits and
timer ticks took seconds."""


class Pacer:
    """``await pacer()`` between records: lets the event loop run once :data:`YIELD_EVERY_S` has passed
    (Faust's per-record loop yielded every 100 records; a send handed to the producer does not)."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = time.monotonic() + YIELD_EVERY_S

    async def __call__(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            await asyncio.sleep(0)
            self._next = time.monotonic() + YIELD_EVERY_S


def batch_of(event: Any) -> tuple[TP, list[Any]]:
    """The partition of a batch topic's stream event and its fetched records (aiokafka
    ``ConsumerRecord``: ``offset``, ``key``, ``value``, ``timestamp`` in ms, ``topic``, ``partition``)."""
    message = event.message
    return message.tp, message.value


BROKER_FETCH_WAIT_MS = 100
"""How long the broker may hold a fetch request when no new records are there (Faust: 1,500 ms). A
broker answers one request per connection at a time, so the consumer's other requests (its offset
queries, commits, seeks) waited behind an idle fetch for up to 1.5 s each: the first batch of every
partition (where reading starts) took 1.5-3 s, and an idle worker's ticks and commits overlapped."""


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # both read when the consumer starts its fetcher
        app = self.consumer.app
        consumer._fetch_max_wait_ms = getattr(app, "fetch_max_wait_ms", BROKER_FETCH_WAIT_MS)
        consumer._fetch_min_bytes = getattr(app, "fetch_min_bytes", 1)
        return consumer


class BatchConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer with a fetch loop that hands batch topics over one fetch at a time, and
    fetch requests the broker holds for at most :data:`BROKER_FETCH_WAIT_MS`."""

    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _seek(self, partition: TP, offset: int) -> None:
        """Seek in the consumer's thread, between two fetches (``seek-across-threads``).

        Faust calls aiokafka's ``seek`` from the main thread while the consumer thread may be inside
        ``Fetcher.fetched_records``, which lists the fetched partitions and then reads each: the seek
        deletes one in between and the fetch raised ``KeyError`` (seen once in the two-worker kill
        test, right after a "records skipped: reading again" seek), which stopped the worker."""
        thread = self._thread
        await thread.call_thread(_seek_in_thread, thread._ensure_consumer(), partition, offset)

    async def commit_with_metadata(self, offsets: dict[TP, tuple[int, str]]) -> bool:
        """Commit offsets with a metadata string each (Faust's ``_commit`` always sends ``""``), in the
        consumer's thread, as ``_commit`` does; False when the group has rebalanced meanwhile (the new
        owner reads those records again), as ``_commit``. Ingest keeps its order times there."""
        thread = self._thread
        consumer = thread._ensure_consumer()
        assigned = self.assignment()
        wanted = {
            TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, metadata)
            for tp, (offset, metadata) in offsets.items()
            if tp in assigned
        }
        if not wanted:
            return True
        # as ``_commit``: Faust's watch of partitions that commit nothing reads these times
        thread.tp_last_committed_at.update({tp: time.monotonic() for tp in offsets if tp in assigned})
        try:
            await thread.call_thread(consumer.commit, wanted)
        except CommitFailedError as exc:
            if "already rebalanced" in str(exc):
                return False
            raise
        return True

    async def committed_metadata(self, tp: TP) -> str | None:
        """The metadata string of the group's committed offset of ``tp`` (None: nothing committed)."""
        thread = self._thread
        coordinator = thread._ensure_consumer()._coordinator
        partition = TopicPartition(tp.topic, tp.partition)
        found = await thread.call_thread(coordinator.fetch_committed_offsets, [partition])
        committed = found.get(partition)
        return None if committed is None else committed.metadata

    async def seek_after_rebalance(self) -> bool:
        """Faust's ``perform_seek`` (every assigned partition back to its committed offset), which
        raises when a partition is revoked while it runs (``seek-after-revoke`` in faust_compat): the
        rebalance that revoked it brings a new assignment and its own seek, and the next fetch comes
        here again while the flow is stopped. False when the seek was cut short so."""
        try:
            await self.perform_seek()
        except IllegalStateError as exc:
            log.info("seek after a rebalance cut short by the next one (%s): seeking again", exc)
            await asyncio.sleep(0.05)
            return False
        return True

    async def _drain_messages(self, fetcher: Any) -> None:
        callback = self.callback
        batch_topics: set[str] = self.app.batch_topics  # type: ignore[attr-defined]
        handed: dict[Any, int] = self.app.handed  # type: ignore[attr-defined]
        read_offset = self._read_offset
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                if self.flow_active and self._buffered_partitions and not self._get_active_partitions():
                    # Every partition is paused because its stream's queue is full: Faust's fetch
                    # would now sleep a whole second (_wait_next_records). Look again shortly.
                    await asyncio.sleep(0.005)
                    continue
                records, active = await self._wait_next_records(FETCH_WAIT_S)
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    await self.seek_after_rebalance()  # as getmany: read again from the commits
                    continue
                generation = self.app.consumer_generation_id
                for tp, fetched in records.items():
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        break
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue  # paused (recovering): getmany drops them too; the reading check reads again
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    if tp.topic in batch_topics:
                        message = self._to_message(tp, fetched[-1])
                        message.value = fetched  # type: ignore[assignment]
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                        read_offset[tp] = fetched[-1].offset
                        handed[tp] = fetched[-1].offset + 1
                    else:
                        await self._one_by_one(tp, fetched)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise

    async def _one_by_one(self, tp: Any, fetched: list[Any]) -> None:
        """Other topics (table changelogs, per-record agents): exactly Faust's per-record rules."""
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        for n, record in enumerate(fetched, 1):
            if n % 100 == 0:
                await asyncio.sleep(0)  # as Faust's loop: a turn for the event loop every 100 records
            offset = record.offset
            r_offset = read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue  # dropped, as Faust drops it
            if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            await self.wait_first(self.callback(self._to_message(tp, record)), self.suspend_flow.wait())
            read_offset[tp] = offset


async def _seek_in_thread(consumer: Any, partition: TP, offset: int) -> None:
    consumer.seek(partition, offset)


class BatchApp(DurableApp):
    """A :class:`DurableApp` whose consumer is a :class:`BatchConsumer`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_topics: set[str] = set()
        self.fetch_min_bytes = 1
        """What the broker gathers before it answers a fetch (at most ``fetch_max_wait_ms`` later):
        live traffic then comes in batches, not a record at a time (``fetch_min_kb``)."""
        self.fetch_max_wait_ms = BROKER_FETCH_WAIT_MS
        """How long the broker may hold a fetch (``fetch_max_wait_ms``)."""
        self.handed: dict[Any, int] = {}
        """Per partition of a batch topic, the offset after the last record handed to its agent's
        stream (forgotten when the partition is revoked): records below it are queued for the agent
        or being processed, not dropped (:func:`~.reading.reread_dropped`)."""

    def _new_transport(self) -> Any:
        transport = super()._new_transport()
        transport.Consumer = BatchConsumer  # type: ignore[misc]
        return transport
