"""The batch consumer's parts that need no broker: the fetch wait it gives the broker, the event loop's
turns during a batch (:mod:`orchestrator.runtime.batches`), and the table writer's identity."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from orchestrator.runtime.app import build_app
from orchestrator.runtime.batches import BROKER_FETCH_WAIT_MS, YIELD_EVERY_S, BatchConsumer, Pacer
from orchestrator.runtime.outgoing import TableRows
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


def test_every_rocksdb_table_is_sized_by_the_settings(tmp_path: Path) -> None:
    """Faust's defaults (64 MB x 3 memtables, a 2 GB cache per partition's database) are not used."""

    async def stores() -> list[Any]:
        settings = unique_settings("127.0.0.1:1", tmp_path, store="rocksdb://", rocksdb_block_cache_mb=12)
        w = build_app(settings)
        return [table.data.rocksdb_options for table in (w.customers, w.wakeups, w.identities)]

    mb = 1024 * 1024
    for options in asyncio.run(stores()):
        assert (options.write_buffer_size, options.max_write_buffer_number) == (4 * mb, 2)
        assert options.block_cache_size == 12 * mb
