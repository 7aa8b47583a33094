"""One RocksDB memory budget for every database of a worker (:mod:`orchestrator.runtime.rocksdb_budget`),
on real rocksdict databases."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from faust.stores.rocksdb import RocksDBOptions

from orchestrator.runtime.rocksdb_budget import MB, RocksDBBudget, SharedOptions


def test_databases_share_one_cache_that_holds_their_memtables_blocks_and_indexes(tmp_path: Path) -> None:
    budget = RocksDBBudget(8)
    faust_options = RocksDBOptions(write_buffer_size=4 * MB, max_write_buffer_number=2)
    dbs = [SharedOptions(budget, faust_options).open(tmp_path / f"db{i}") for i in range(6)]
    rng = random.Random(27)
    try:
        # 6 x 2 x 4 MB of memtables and a cache per database would be 48 MB of memtables alone
        for i in range(120_000):
            dbs[i % 6][f"customer-{i}".encode()] = os.urandom(200)
        memtables = sum(int(db.property_int_value("rocksdb.cur-size-all-mem-tables")) for db in dbs)
        assert memtables <= budget.memtable_limit + 6 * MB  # flushed past half the budget (+ in flight)
        for _ in range(30_000):
            i = rng.randrange(120_000)
            assert len(dbs[i % 6][f"customer-{i}".encode()]) == 200
        used = budget.usage()
        assert used["blocks"] > 0  # the databases read through the budget's cache
        # the LRU cache is not strict: what passes the budget is what cannot be evicted at that moment
        # (the memtables' reservations, level-0 index and filter blocks, blocks being read), and that
        # stays below the budget itself (CI once measured 9.4 MB in an 8 MB budget, beside compactions)
        in_cache = used["memtables"] + used["blocks"]
        pinned = int(budget.cache.get_pinned_usage())
        assert in_cache <= budget.capacity + pinned
        assert pinned < budget.capacity
        # index and bloom filter blocks are in the cache, not beside it
        assert sum(int(db.property_int_value("rocksdb.estimate-table-readers-mem")) for db in dbs) < MB
    finally:
        for db in dbs:
            db.close()


def test_the_budget_needs_the_rocksdict_driver() -> None:
    from orchestrator.runtime.rocksdb_budget import share

    class Store:
        use_rocksdict = False

    class Table:
        name = "customers"
        data = Store()

    with pytest.raises(TypeError, match="customers"):
        share(Table(), RocksDBBudget(8))
