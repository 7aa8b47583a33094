"""One memory budget for all of a worker's RocksDB databases (docs/operations.md, "Size a worker's memory").

Faust opens one RocksDB database per table partition and gives each its own block cache and memtables
(``RocksDBOptions.as_options``): a worker's RocksDB memory was a per-database bound times the databases
it opened (13 with 6 partitions: 2 per customer partition and the identity table), so it rose with every
partition it was given. Here every database of the worker shares

- one LRU block cache of ``rocksdb_memory_mb``, which also holds the files' index and bloom filter
  blocks (not kept beside the cache, where they grew with the data on disk), and
- one write buffer manager that charges the memtables to that cache and flushes the largest once they
  pass half of it,

so the whole is bounded by one setting, whatever the number of partitions or customers. The store keeps
Faust's; only its ``rocksdb_options`` (``faust_compat``: ``rocksdb-memory-per-database``) is replaced.
"""

from __future__ import annotations

from typing import Any

import rocksdict
from faust.stores.rocksdb import RocksDBOptions

__all__ = ["RocksDBBudget", "SharedOptions", "share"]

MB = 1024 * 1024


class RocksDBBudget:
    """The cache and the write buffer manager every database of one worker shares."""

    def __init__(self, memory_mb: int) -> None:
        self.capacity = memory_mb * MB
        self.cache = rocksdict.Cache(self.capacity)
        self.memtable_limit = self.capacity // 2
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            self.memtable_limit, False, self.cache
        )

    def usage(self) -> dict[str, int]:
        """Bytes in the shared cache: ``memtables`` (charged to it) and ``blocks`` (data, index and
        filter blocks read from the files)."""
        used = int(self.cache.get_usage())
        memtables = int(self.write_buffers.get_usage())
        return {"memtables": memtables, "blocks": max(0, used - memtables)}


class SharedOptions(RocksDBOptions):
    """Faust's RocksDB options (rocksdict driver) with the worker's :class:`RocksDBBudget`."""

    def __init__(self, budget: RocksDBBudget, options: RocksDBOptions) -> None:
        super().__init__(
            max_open_files=options.max_open_files,
            write_buffer_size=options.write_buffer_size,
            max_write_buffer_number=options.max_write_buffer_number,
            target_file_size_base=options.target_file_size_base,
            block_cache_size=budget.capacity,
            bloom_filter_size=options.bloom_filter_size,
            use_rocksdict=True,
            ttl=options.ttl,
        )
        self.budget = budget

    def as_options(self) -> Any:
        db_options = rocksdict.Options(raw_mode=True)
        db_options.create_if_missing(True)
        if self.max_open_files is not None:
            db_options.set_max_open_files(self.max_open_files)
        db_options.set_write_buffer_size(self.write_buffer_size)
        db_options.set_target_file_size_base(self.target_file_size_base)
        db_options.set_max_write_buffer_number(self.max_write_buffer_number)
        db_options.set_write_buffer_manager(self.budget.write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(self.budget.cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        db_options.set_block_based_table_factory(table)
        return db_options


def share(table: Any, budget: RocksDBBudget) -> None:
    """Give a Faust table's RocksDB store the worker's budget (before any partition is opened)."""
    store = table.data
    if not getattr(store, "use_rocksdict", False):
        raise TypeError(f"table {table.name}: the RocksDB store must use the rocksdict driver")
    store.rocksdb_options = SharedOptions(budget, store.rocksdb_options)
