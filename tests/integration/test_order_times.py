"""Ingest's order times on the real broker (issue 17, docs/runtime.md: design note, step (a)): every
event on the identify topic carries the running maximum of its raw partition's event times, the
worker commits that value with the raw partition's offset, and a worker that reads the partition after
a restart goes on from it (a late event read then keeps its place behind the events read before)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, Producer

from orchestrator.config import Settings
from orchestrator.runtime.identify import WATERMARK_KEY
from orchestrator.runtime.raw_order import order_of
from orchestrator.testing import WorkerProcess, wait_until

pytestmark = pytest.mark.integration


def _event(event_id: str, customer: str, minute: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "page.viewed",
            "identifiers": {"customer_id": customer},
            "occurred_at": f"2026-11-20T10:{minute:02d}:00Z",
            "source": "test",
        }
    )


def _ms(minute: int) -> int:
    return 1_795_168_800_000 + minute * 60_000  # 2026-11-20T10:00Z


def _send(settings: Settings, events: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for value in events:
        producer.produce(settings.topics.raw_events, value=value, partition=0)
    assert producer.flush(30) == 0


def _order_times(settings: Settings, wanted: set[str], timeout: float = 60.0) -> dict[str, int]:
    """Event id → order time of the ``wanted`` events on the identify topic (watermarks come every
    second there: read until the events are found, not until the topic is quiet)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([settings.topics.identify])
    found: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while not wanted <= found.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"identify topic: {sorted(wanted - found.keys())} not found in {timeout:.0f}s"
                )
            for msg in consumer.consume(num_messages=500, timeout=0.2):
                if msg.error() is None and msg.key() != WATERMARK_KEY:
                    body = orjson.loads(msg.value() or b"")
                    found[body["event"]["event_id"]] = body["order_ms"]
    finally:
        consumer.close()
    return found


def _committed_order(settings: Settings) -> int | None:
    """The order time kept with the group's committed offset of raw partition 0, read with aiokafka's
    admin client. Not with confluent-kafka: librdkafka hands the committed metadata over without a
    terminating NUL and confluent-kafka (2.16) reads it as a C string, so bytes after the metadata came
    along now and then (CI 2026-12-07: ``'{"order_ms":...}w\\xa1'``; librdkafka issue #4649). The worker
    reads its metadata with aiokafka too (``runtime/batches.py``)."""

    async def read() -> OffsetAndMetadata | None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        try:
            partition = AioTopicPartition(settings.topics.raw_events, 0)
            found = await admin.list_consumer_group_offsets(settings.app_id, partitions=[partition])
            return found.get(partition)
        finally:
            await admin.close()

    committed = asyncio.run(read())
    return order_of(committed.metadata) if committed is not None and committed.offset >= 0 else None


def test_order_times_go_with_the_commits_and_a_restarted_worker_goes_on_from_them(
    settings: Settings, tmp_path: Path
) -> None:
    assert _ms(0) == 1_795_168_800_000
    first = WorkerProcess(settings, tmp_path / "first.log").start()
    try:
        first.wait_ready()
        _send(settings, [_event("e1", "c-1", 5), _event("e2", "c-2", 1), _event("e3", "c-1", 7)])
        times = _order_times(settings, {"e1", "e2", "e3"})
        # e2 is late in its raw partition (10:01 after 10:05): it takes e1's order time
        assert times == {"e1": _ms(5), "e2": _ms(5), "e3": _ms(7)}
        wait_until(lambda: _committed_order(settings) == _ms(7), timeout=30, what="the order time committed")
    finally:
        first.stop()

    # read after the restart: late against e3, which the first worker read and committed
    _send(settings, [_event("e4", "c-3", 6), _event("e5", "c-3", 9)])
    second = WorkerProcess(settings, tmp_path / "second.log").start()
    try:
        second.wait_ready()
        times = _order_times(settings, {"e1", "e2", "e3", "e4", "e5"})
        assert (times["e4"], times["e5"]) == (_ms(7), _ms(9))
        wait_until(
            lambda: _committed_order(settings) == _ms(9), timeout=30, what="the new order time committed"
        )
    finally:
        second.stop()
