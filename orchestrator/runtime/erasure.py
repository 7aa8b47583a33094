"""Local state after an erasure: compact the worker's RocksDB files so deleted values leave its disk.

Deleting a key from a Faust table (an erased customer's record, its identity rows) writes a RocksDB
*delete*; the old value stays in the write-ahead log and the SST files until RocksDB happens to compact
them, which on a quiet table can be never. So a worker with the RocksDB store compacts, after an
erasure, every RocksDB of its tables it holds, over the whole key range with the bottommost level
forced (``compact_range``: the memtable is flushed, the WAL it covered is deleted, deleted and
overwritten values are dropped from the SST files, the old SST files are deleted):

- an erasure is noticed through a Faust sensor: a key deleted from the ``customers`` table (an erased
  customer, a moved record dropped) or an erased-identifier marker written to the ``identities`` table;
- the compaction runs :data:`COMPACT_DELAY_S` after it — time for the identify stage's ``o:`` rows
  of the erasure (deleted once their offset is committed) to go as well — and at most once per
  :data:`COMPACT_EVERY_S` (erasures meanwhile join the next one); it also runs once after each start,
  for an erasure whose compaction a crash prevented;
- never while partitions move or tables are restored; in a thread (rocksdict releases the GIL).

So an erased customer's values leave the worker's disk at most ``COMPACT_EVERY_S + COMPACT_DELAY_S``
(about 5 minutes) plus the compaction's own time after the erasure was applied (docs/identity.md).
With the ``memory://`` store nothing is written to disk and nothing is installed.

Faust's RocksDB store (``faust.stores.rocksdb.Store``) keeps one ``rocksdict.Rdict`` per partition in
``_dbs``; that attribute is private, so a store without it is skipped (and logged once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from faust import Sensor

__all__ = ["COMPACT_DELAY_S", "COMPACT_EVERY_S", "CompactionPlan", "compact_stores", "install_local_erasure"]

log = logging.getLogger("orchestrator.erasure")

COMPACT_DELAY_S = 10.0
"""Seconds between an erasure and the compaction of the local stores."""
COMPACT_EVERY_S = 300.0
"""At most one compaction per this many seconds (a whole-store compaction rewrites the live data)."""
_MARKER_ROW = "h:"


class CompactionPlan:
    """When to compact: :data:`COMPACT_DELAY_S` after the first erasure not compacted yet, at most once
    per :data:`COMPACT_EVERY_S`. Times are monotonic seconds, passed in."""

    def __init__(self, delay_s: float = COMPACT_DELAY_S, every_s: float = COMPACT_EVERY_S) -> None:
        self.delay_s = delay_s
        self.every_s = every_s
        self.due: float | None = None
        self.last: float | None = None
        """When the last compaction for an erasure ran (the one after a start does not count)."""
        self.runs = 0
        self._erasure = False

    def noted(self, now: float, *, erasure: bool = True) -> None:
        """Something was deleted that must leave the disk (``erasure=False``: the start-up run)."""
        if erasure and not self._erasure:
            self._erasure = True
            earliest = now + self.delay_s
            due = earliest if self.last is None else max(earliest, self.last + self.every_s)
            self.due = due if self.due is None else min(self.due, due)
        elif self.due is None:
            self.due = now + self.delay_s

    def take(self, now: float) -> bool:
        """Whether to compact now (then the plan counts it done)."""
        if self.due is None or now < self.due:
            return False
        if self._erasure:
            self.last = now
        self.due = None
        self._erasure = False
        self.runs += 1
        return True


class _ErasureSensor(Sensor):
    """Notices the deletions an erasure makes in the tables (Faust calls it on every table write)."""

    def __init__(
        self, plan: CompactionPlan, customers: str, identities: str, clock: Callable[[], float]
    ) -> None:
        super().__init__()
        self._plan = plan
        self._customers = customers
        self._identities = identities
        self._clock = clock

    def on_table_del(self, table: Any, key: Any) -> None:
        if table.name == self._customers:
            self._plan.noted(self._clock())

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        if table.name == self._identities and isinstance(key, str) and key.startswith(_MARKER_ROW):
            self._plan.noted(self._clock())


def compact_stores(tables: Iterable[Any]) -> int:
    """Compact every open RocksDB of ``tables`` over its whole key range, bottommost level forced;
    returns how many databases were compacted. Blocking: run it in a thread."""
    import rocksdict

    options = rocksdict.CompactOptions()
    options.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
    done = 0
    for table in tables:
        dbs = getattr(table.data, "_dbs", None)
        if not isinstance(dbs, dict):
            log.warning("table %s: its store keeps no RocksDB handles (_dbs); not compacted", table.name)
            continue
        for db in list(dbs.values()):
            db.compact_range(None, None, options)
            db.flush_wal(True)
            done += 1
    return done


def install_local_erasure(
    app: Any,
    tables: Iterable[Any],
    *,
    customers: str = "customers",
    identities: str = "identities",
    plan: CompactionPlan | None = None,
    every_s: float | None = None,
) -> CompactionPlan | None:
    """Compact the worker's RocksDB stores after erasures (see the module docstring), and every
    ``every_s`` seconds whatever happened: a standby replica applies an erasure's tombstones from the
    changelog without Faust telling any sensor, so only a periodic compaction removes them from its
    disk. None (nothing installed) with a store that is not RocksDB."""
    if not str(app.conf.store).startswith("rocksdb"):
        return None
    tables = list(tables)
    plan = plan or CompactionPlan()
    clock = time.monotonic
    app.sensors.add(_ErasureSensor(plan, customers, identities, clock))
    plan.noted(clock(), erasure=False)  # after each start: an erasure whose compaction a crash prevented
    periodic = {"next": clock() + every_s} if every_s else {}

    @app.timer(interval=1.0)
    async def compact_after_erasure() -> None:
        recovery = app.tables.recovery
        if app.rebalancing or app.in_recovery or recovery.in_recovery or not recovery.completed.is_set():
            return
        if every_s and clock() >= periodic["next"]:
            periodic["next"] = clock() + every_s
            plan.noted(clock(), erasure=False)  # standby replicas' copies of erased customers too
        if not plan.take(clock()):
            return
        started = clock()
        try:
            count = await asyncio.to_thread(compact_stores, tables)
        except Exception:
            log.exception("compacting the local stores after an erasure failed; retried later")
            plan.noted(clock())
            return
        log.info("local stores compacted after an erasure: %d databases in %.2fs", count, clock() - started)

    return plan
