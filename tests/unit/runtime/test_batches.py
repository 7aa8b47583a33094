"""The batch consumer's parts that need no broker: the fetch wait it gives the broker, the event loop's
turns during a batch (:mod:`orchestrator.runtime.batches`), and the table writer's identity."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from faust.types import TP

from orchestrator.runtime.app import build_app
from orchestrator.runtime.batches import BROKER_FETCH_WAIT_MS, YIELD_EVERY_S, BatchConsumer, Pacer
from orchestrator.runtime.outgoing import TableRows
from orchestrator.runtime.rocksdb_budget import SharedOptions
from orchestrator.testing import unique_settings


def test_the_worker_consumer_lets_the_broker_hold_a_fetch_briefly(tmp_path: Path) -> None:
    async def consumer() -> Any:
        w = build_app(unique_settings("127.0.0.1:1", tmp_path))
        assert isinstance(w.app.consumer, BatchConsumer)
        thread = w.app.consumer._new_consumer_thread()
        made = thread._create_worker_consumer(w.app.transport)
        try:
            return made._fetch_max_wait_ms, made._fetch_min_bytes
        finally:
            await made.stop()

    wait_ms, min_bytes = asyncio.run(consumer())
    assert wait_ms == BROKER_FETCH_WAIT_MS < 1500
    assert min_bytes == 32 * 1024  # fetch_min_kb: live traffic read in batches


def test_the_pacer_gives_the_loop_a_turn_while_a_batch_runs() -> None:
    async def run() -> int:
        turns = 0

        async def other() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        await asyncio.sleep(0)
        before = turns
        pace = Pacer()
        end = time.monotonic() + 5 * YIELD_EVERY_S
        while time.monotonic() < end:  # a busy batch, awaiting nothing but the pacer
            await pace()
        task.cancel()
        return turns - before

    assert asyncio.run(run()) >= 3


def test_table_rows_compare_by_identity_not_by_the_tables_rows() -> None:
    class Table(dict[str, bytes]):
        """A mapping that fails when compared: a Faust table compares by iterating all its rows."""

        def __init__(self) -> None:
            super().__init__()
            self.data = self
            self.changelog_topic = type("T", (), {"get_topic_name": lambda _: "changelog"})()

        def __eq__(self, other: object) -> bool:
            raise AssertionError("the table's rows were compared")

        __hash__ = None

        def _encode_key(self, key: str) -> bytes:
            return key.encode()

    one, two = TableRows(Table()), TableRows(Table())
    assert one != two
    assert one == one


def test_every_rocksdb_table_shares_the_workers_budget(tmp_path: Path) -> None:
    """Faust's defaults (64 MB x 3 memtables, a 2 GB cache per partition's database) are not used: every
    database of the worker shares one cache and one write buffer manager (``rocksdb_budget``)."""

    async def stores() -> tuple[Any, list[Any]]:
        settings = unique_settings("127.0.0.1:1", tmp_path, store="rocksdb://", rocksdb_memory_mb=12)
        w = build_app(settings)
        return w.rocksdb, [table.data.rocksdb_options for table in (w.customers, w.wakeups, w.identities)]

    mb = 1024 * 1024
    budget, options = asyncio.run(stores())
    assert budget.capacity == 12 * mb
    for each in options:
        assert isinstance(each, SharedOptions)
        assert each.budget is budget
        assert (each.write_buffer_size, each.max_write_buffer_number) == (4 * mb, 2)


def test_a_seek_runs_in_the_consumer_thread_between_two_fetches(tmp_path: Path) -> None:
    """``seek-across-threads`` (faust_compat): Faust seeks from the main thread while the consumer
    thread may be reading its fetched partitions; the batch consumer hands the seek to that thread."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    seeks: list[tuple[Any, int, int]] = []

    class AIOKafkaConsumer:
        def seek(self, partition: Any, offset: int) -> None:
            seeks.append((partition, offset, threading.get_ident()))

    class ConsumerThread:
        """Runs each call on its own thread's event loop, one at a time (mode's QueueServiceThread)."""

        def __init__(self) -> None:
            self.pool = ThreadPoolExecutor(1)
            self.ident = self.pool.submit(threading.get_ident).result()
            self.consumer = AIOKafkaConsumer()

        def _ensure_consumer(self) -> AIOKafkaConsumer:
            return self.consumer

        async def call_thread(self, fun: Any, *args: Any) -> Any:
            return await asyncio.wrap_future(self.pool.submit(asyncio.run, fun(*args)))

    async def seek() -> int:
        w = build_app(unique_settings("127.0.0.1:1", tmp_path))
        consumer = w.app.consumer
        thread = ConsumerThread()
        consumer._thread = thread  # type: ignore[attr-defined]
        tp = TP("orch.raw", 3)
        await consumer.seek(tp, 42)  # Faust's public seek: read offset kept, _seek delegated
        assert consumer._read_offset[tp] == 42
        thread.pool.shutdown()
        return thread.ident

    ident = asyncio.run(seek())
    assert [(offset, where) for _, offset, where in seeks] == [(42, ident)]
    assert ident != threading.get_ident()


def test_a_seek_cut_short_by_the_next_rebalance_does_not_stop_the_worker(tmp_path: Path) -> None:
    """``seek-after-revoke`` (faust_compat): a partition revoked while Faust seeks every assigned one
    back to its commit raised IllegalStateError in the fetcher, which stopped the worker."""
    from aiokafka.errors import IllegalStateError

    async def seek() -> list[bool]:
        w = build_app(unique_settings("127.0.0.1:1", tmp_path))
        consumer = w.app.consumer
        assert isinstance(consumer, BatchConsumer)
        calls: list[int] = []

        async def perform_seek() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise IllegalStateError("No current assignment for partition TopicPartition('t', 0)")

        consumer.perform_seek = perform_seek  # type: ignore[method-assign]
        return [await consumer.seek_after_rebalance(), await consumer.seek_after_rebalance()]

    assert asyncio.run(seek()) == [False, True]
