"""What a table's store holds, read from the store without a scan: keys and RocksDB memory (the
``/metrics`` gauges ``orchestrator_table_keys`` and ``orchestrator_rocksdb_memory_bytes``)."""

from __future__ import annotations

from typing import Any

__all__ = ["ROCKSDB_MEMORY", "rocksdb_memory", "table_size"]


def table_size(table: Any) -> int:
    """Keys of a Faust table on this worker's active partitions: RocksDB's own estimate (no scan)
    where the store is RocksDB, else the exact count."""
    store = table.data
    dbs = getattr(store, "_dbs_for_actives", None)
    if dbs is not None:
        return sum(int(db.property_int_value("rocksdb.estimate-num-keys") or 0) for db in dbs())
    return len(store)


ROCKSDB_MEMORY = {
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}
"""The RocksDB properties behind ``orchestrator_rocksdb_memory_bytes`` per table. The block cache is
shared by every database of the worker (``rocksdb_budget``): every database reports the whole of it, so
it is read once, from the budget."""


def rocksdb_memory(table: Any) -> dict[str, int]:
    """Bytes of memory of a Faust table's RocksDB databases (every partition open on this worker), by
    part; empty for another store."""
    dbs = getattr(table.data, "_dbs", None)
    if dbs is None:
        return {}
    return {
        part: sum(int(db.property_int_value(name) or 0) for db in list(dbs.values()))
        for part, name in ROCKSDB_MEMORY.items()
    }
