"""Keys and RocksDB memory read from a table's store (the /metrics gauges)."""

from __future__ import annotations

from pathlib import Path

import rocksdict

from orchestrator.runtime.store_stats import ROCKSDB_MEMORY, rocksdb_memory, table_size


class _MemoryStore(dict[bytes, bytes]):
    pass


class _FakeTable:
    def __init__(self, data: object) -> None:
        self.data = data


class _RocksStore:
    """As Faust's RocksDB store: one database per partition (``_dbs``), the active ones by a method."""

    def __init__(self, dbs: dict[int, rocksdict.Rdict]) -> None:
        self._dbs = dbs

    def _dbs_for_actives(self) -> list[rocksdict.Rdict]:
        return list(self._dbs.values())


def _dbs(tmp_path: Path) -> dict[int, rocksdict.Rdict]:
    out = {}
    for part in range(2):
        db = rocksdict.Rdict(str(tmp_path / f"p{part}"))
        for i in range(10 * (part + 1)):
            db[f"k{i}".encode()] = b"v" * 100
        out[part] = db
    return out


def test_table_size_counts_memory_stores_and_reads_rocksdb_estimates(tmp_path: Path) -> None:
    assert table_size(_FakeTable(_MemoryStore({b"a": b"1", b"b": b"2"}))) == 2
    dbs = _dbs(tmp_path)
    try:
        assert table_size(_FakeTable(_RocksStore(dbs))) == 30
    finally:
        for db in dbs.values():
            db.close()


def test_rocksdb_memory_sums_each_part_over_the_open_databases(tmp_path: Path) -> None:
    assert rocksdb_memory(_FakeTable(_MemoryStore())) == {}
    dbs = _dbs(tmp_path)
    try:
        used = rocksdb_memory(_FakeTable(_RocksStore(dbs)))
        assert set(used) == set(ROCKSDB_MEMORY)
        each = [db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in dbs.values()]
        assert used["memtables"] == sum(each) > 0  # the writes are in the memtables
        for db in dbs.values():
            db.flush()
            db.get(b"k1")  # read from a file: its blocks in the cache, its index in memory
        after = rocksdb_memory(_FakeTable(_RocksStore(dbs)))
        assert after["table_readers"] > 0  # Rdict's defaults: the index beside the cache
        assert after["memtables"] < used["memtables"]
    finally:
        for db in dbs.values():
            db.close()
