"""What a batch writes — table rows and their changelog records, actions, decisions, hand-overs — sent as
record batches and awaited before the batch counts as done.

Faust's own paths cost 50-100 µs per record (``topic.send``: a ``FutureMessage`` and a coroutine per
record; ``table[key] = value``: the same through ``ProducerBuffer``), more than the customer logic
itself (../shared/notes/faust-batch-hot-path.md). :class:`Outgoing` appends each record to an aiokafka
``BatchBuilder`` per topic partition (~1-2 µs) and :meth:`Outgoing.deliver` hands every builder to the
producer (``send_batch``) and waits until the broker has acknowledged all of them. Only then are the
batch's input offsets done (:meth:`~orchestrator.runtime.offsets.InputOffsets.done`): no commit can pass
state or actions that are not on the broker, without relying on the producer's flush.

A table row (:class:`TableRows`) is written to the table's store (Faust's memory or RocksDB store, as
``table[key] = value`` would) and its changelog record goes into the same delivery; once delivered, a
RocksDB store records the changelog offset it holds (what Faust's ``_on_changelog_sent`` does per
record), so a restart reads only the changelog's tail. Keys and values are encoded by the store's own
serializers: recovery writes changelog bytes back into the store.

Records sent without a partition go where Faust's ``topic.send`` would put them: the producer's
partitioner (murmur2 of the key), so a customer's hand-overs reach the partition its other messages do.

Crash tests only: with a :class:`~orchestrator.config.DeliveryFailpoint` (``settings.failpoint``), the
chosen delivery sends part of its record batches, waits for them, and the process kills itself
(:class:`CrashAt`): the kill -9 in the middle of a batch that a timed kill rarely hits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.stores.memory import Store as MemoryStore
from faust.types import TP

from orchestrator.config import DeliveryFailpoint

__all__ = ["CrashAt", "Outgoing", "TableRows", "trimmed"]

log = logging.getLogger(__name__)


def trimmed(value: bytes) -> bytes:
    """``value`` in an allocation of its own size. orjson (3.12 and later) returns its output in the
    buffer it wrote it to, never shrunk: at least 4 kB, 16 kB for a 1.5 kB record, whatever the length
    (issue 27; ``tests/unit/runtime/test_outgoing.py`` measures it). Bytes kept for long — a memory
    store's rows — are copied first (~0.2 µs); bytes sent and dropped need not be."""
    return bytes(memoryview(value))


@dataclass
class CrashAt:
    """Counts the deliveries a :class:`DeliveryFailpoint` names (one per worker process)."""

    point: DeliveryFailpoint
    seen: int = 0

    def due(self, topics: Iterable[str], batches: int) -> bool:
        """Whether this delivery (to ``topics``, ``batches`` record batches) is the one to crash in."""
        point = self.point
        if batches <= point.keep or not any(point.topic_part in t for t in topics):
            return False
        self.seen += 1
        return self.seen == point.nth


@dataclass
class _Open:
    builder: Any
    """aiokafka ``BatchBuilder``."""
    records: int = 0


class Outgoing:
    """Records for one batch, per topic partition; :meth:`deliver` sends them and awaits the broker."""

    __slots__ = ("_client", "_crash", "_open", "_sent", "_tables", "_topics")

    def __init__(self, client: Any, known_topics: set[str], crash: CrashAt | None = None) -> None:
        self._client = client
        self._crash = crash
        """The aiokafka producer under Faust's (``app.producer._ensure_producer()``)."""
        self._topics = known_topics
        """Topics whose metadata the client has (shared across batches by the caller)."""
        self._open: dict[tuple[str, int], _Open] = {}
        self._sent: list[tuple[str, int, int, asyncio.Future[Any]]] = []
        self._tables: list[TableRows] = []

    async def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        """Append one record for ``topic[partition]``; a full batch is handed to the producer now."""
        slot = self._open.get((topic, partition))
        if slot is None:
            await self._know(topic)
            slot = self._open[(topic, partition)] = _Open(self._client.create_batch())
        if slot.builder.append(key=key, value=value, timestamp=None) is None:
            await self._send(topic, partition, slot)
            slot = self._open[(topic, partition)] = _Open(self._client.create_batch())
            if slot.builder.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit a batch of {topic!r}")
        slot.records += 1

    async def add_keyed(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Append one record to the partition the producer's partitioner gives ``key`` (no key: any)."""
        await self._know(topic)
        partition = self._client._partition(topic, None, key, value, key, value)
        await self.add(topic, partition, key, value)

    def written(self, rows: TableRows) -> None:
        """``rows`` wrote to its store in this batch: record its changelog offsets once delivered."""
        if all(rows is not known for known in self._tables):
            self._tables.append(rows)

    async def deliver(self) -> None:
        """Send every open batch and wait until the broker acknowledged all of them (raises if one
        failed)."""
        if self._crash is not None:
            await self._maybe_crash(self._crash)
        for (topic, partition), slot in self._open.items():
            if slot.records:
                await self._send(topic, partition, slot)
        self._open = {}
        sent, self._sent = self._sent, []
        if not sent:
            return
        metas = await asyncio.gather(*(fut for _, _, _, fut in sent))
        last: dict[tuple[str, int], int] = {}
        for (topic, partition, count, _), meta in zip(sent, metas, strict=True):
            last[(topic, partition)] = max(last.get((topic, partition), -1), meta.offset + count - 1)
        for rows in self._tables:
            rows.delivered(last)
        self._tables = []

    async def _maybe_crash(self, crash: CrashAt) -> None:
        """The failpoint: the first ``keep`` open record batches sent and acknowledged, then SIGKILL."""
        open_slots = [(key, slot) for key, slot in self._open.items() if slot.records]
        if not crash.due((topic for (topic, _), _ in open_slots), len(open_slots)):
            return
        # the named topic's batches first (a stable sort keeps the others in the order written);
        # batches handed to the producer earlier, full before the delivery, are not held back
        open_slots.sort(key=lambda item: crash.point.topic_part not in item[0][0])
        keep = crash.point.keep
        for (topic, partition), slot in open_slots[:keep]:
            fut = await self._client.send_batch(slot.builder, topic, partition=partition)
            await fut
        log.critical(
            "failpoint %s: killing the worker after %d of %d record batches of delivery %d (%s)",
            crash.point.topic_part,
            keep,
            len(open_slots),
            crash.point.nth,
            ", ".join(f"{t}[{p}]" for (t, p), _ in open_slots),
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    async def _send(self, topic: str, partition: int, slot: _Open) -> None:
        fut = await self._client.send_batch(slot.builder, topic, partition=partition)
        self._sent.append((topic, partition, slot.records, fut))

    async def _know(self, topic: str) -> None:
        if topic not in self._topics:
            await self._client.client._wait_on_metadata(topic)
            self._topics.add(topic)


@dataclass(eq=False)  # identity: a Faust table compares equal by iterating all its rows
class TableRows:
    """Writes to one Faust table: the row to its store, the changelog record to an :class:`Outgoing`.

    The store is the table's (``table.data``); the caller iterates the table's source stream, so
    Faust's current event names the partition, as for ``table[key] = value``."""

    table: Any
    changelog: str = field(init=False)
    _store: Any = field(init=False)
    _encode_key: Callable[[Any], bytes] = field(init=False)

    _keeps: bool = field(init=False)
    """The store keeps the value objects themselves (Faust's memory store): they are trimmed first."""

    def __post_init__(self) -> None:
        self.changelog = self.table.changelog_topic.get_topic_name()
        self._store = self.table.data
        self._encode_key = self._store._encode_key
        self._keeps = isinstance(self._store, MemoryStore)

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._store.get(key)
        return value

    def read(self, key: str) -> Any:
        """The row's value decoded from JSON, or None when there is none."""
        value = self._store.get(key)
        return None if value is None else orjson.loads(value)

    async def put(self, out: Outgoing, partition: int, key: str, value: bytes | None) -> None:
        """Set (or, with None, delete) ``key`` in the store and append its changelog record."""
        if value is None:
            self._store.pop(key, None)
        else:
            self._store[key] = trimmed(value) if self._keeps else value
        await out.add(self.changelog, partition, self._encode_key(key), value)
        out.written(self)

    def delivered(self, last: dict[tuple[str, int], int]) -> None:
        for (topic, partition), offset in last.items():
            if topic == self.changelog:
                self._store.set_persisted_offset(TP(topic, partition), offset)
