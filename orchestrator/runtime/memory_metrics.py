"""The gauges of what a worker holds in memory and in its tables, set when Prometheus scrapes.

Part of :class:`~orchestrator.runtime.metrics.WorkerMetrics` (same registry); docs/operations.md, 4a,
says what each part costs and which setting bounds it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from orchestrator.runtime.allocator import heap
from orchestrator.runtime.store_stats import rocksdb_memory, table_size

if TYPE_CHECKING:
    from orchestrator.runtime.app import WorkerApp

__all__ = ["MemoryGauges"]

log = logging.getLogger("orchestrator.metrics")

_P = "orchestrator"


class MemoryGauges:
    def __init__(self, r: CollectorRegistry) -> None:
        self.table_keys = Gauge(
            f"{_P}_table_keys",
            "Keys in the worker's tables for its active partitions (estimate on RocksDB).",
            ["table"],
            registry=r,
        )
        self.identity_customers = Gauge(
            f"{_P}_identity_customers",
            "Customers in the identity graph of this worker (the identify stage's owner), in memory or not.",
            registry=r,
        )
        self.identity_cached = Gauge(
            f"{_P}_identity_cached_entries",
            "Entries of the identity graph held in memory (customers, identifiers, aliases; at most "
            "identity_cache of each kind).",
            registry=r,
        )
        self.identity_reads = Gauge(
            f"{_P}_identity_table_reads",
            "Look-ups of the identity graph the memory could not answer (read from the identities table) "
            "since the graph was loaded.",
            registry=r,
        )
        self.timers_in_memory = Gauge(
            f"{_P}_timers_in_memory",
            "Pending wake-ups held in memory (the earliest, at most about 2 x timer_cache per partition).",
            registry=r,
        )
        self.timer_scans = Gauge(
            f"{_P}_timer_table_scans",
            "Reads of the wake-up table since the start, after the wake-ups in memory were fired "
            "(more than timer_cache pending on a partition).",
            registry=r,
        )
        self.identify_held = Gauge(
            f"{_P}_identify_held_events",
            "Events the identify stage holds (in memory and in its table) until every raw partition's "
            "watermark passes them.",
            registry=r,
        )
        self.heap = Gauge(
            f"{_P}_heap_bytes",
            "The C heap of the worker process (glibc): in_use, and free (freed, kept by the allocator; "
            "given back every malloc_trim_s when over 16 MB).",
            ["state"],
            registry=r,
        )
        self.heap_trimmed = Counter(
            f"{_P}_heap_trimmed_bytes",
            "Free heap memory given back to the system (malloc_trim), as measured before each trim.",
            registry=r,
        )
        self.rocksdb_memory = Gauge(
            f"{_P}_rocksdb_memory_bytes",
            "Memory of the worker's RocksDB databases (every partition it has open), per table: "
            "memtables and table_readers (index and bloom filters not held in the cache); and "
            'table="all": block_cache, the blocks in the cache every database shares. Memtables and '
            "blocks together stay within rocksdb_memory_mb.",
            ["table", "part"],
            registry=r,
        )

    def refresh(self, w: WorkerApp) -> None:
        for name, table in (("customers", w.customers), ("wakeups", w.wakeups)):
            try:
                self.table_keys.labels(name).set(table_size(table))
            except Exception:  # a store being reopened during a rebalance: keep the last value
                log.debug("table %s size unavailable", name, exc_info=True)
        now = heap()
        if now is not None:
            self.heap.labels("in_use").set(now.in_use)
            self.heap.labels("free").set(now.free)
        stage = w.identify  # (0 on a worker that does not own the identities table now)
        graph = stage.graph if stage.loaded else None
        self.identity_customers.set(len(graph) if graph is not None else 0)
        self.identity_cached.set(graph.in_memory() if graph is not None else 0)
        self.identity_reads.set(graph.cache_misses() if graph is not None else 0)
        self.identify_held.set(stage.held() if stage.loaded else 0)
        self.timers_in_memory.set(w.timers.in_memory())
        self.timer_scans.set(w.timers.scans)
        for name, table in (("customers", w.customers), ("wakeups", w.wakeups), ("identities", w.identities)):
            try:
                for kind, used in rocksdb_memory(table).items():
                    self.rocksdb_memory.labels(name, kind).set(used)
            except Exception:  # as above
                log.debug("table %s memory unavailable", name, exc_info=True)
        if w.rocksdb is not None:
            self.rocksdb_memory.labels("all", "block_cache").set(w.rocksdb.usage()["blocks"])
