"""Every ingest worker's copy of the claims topic (:mod:`.claims`), read by a consumer of its own.

Not a Faust ``GlobalTable``: with several workers a global table's partitions are read by the worker
that owns them as actives and by the others as standbys, and the others stop applying records
(faust-streaming#283, robinhood/faust#716 — listed in :mod:`.faust_compat` as
``global-table-several-workers``). The topic is small and read whole, like the journeys topic
(:mod:`.journey_feed`): a plain aiokafka consumer without a group reads every partition from where the
local store left off and applies records in order, forever.

The store is a RocksDB database under the worker's data directory that shares the worker's RocksDB
budget (:mod:`.rocksdb_budget`), or a dict on the memory store. A claim names its customer, so after a
tombstone (an erasure) the database is compacted as the tables are (:mod:`.erasure`: about 10 s later,
at most every 5 minutes), and the deleted values leave the disk. It keeps its read position per partition
beside the claims (``\\x00pos:<partition>``), written with the records of the same batch, so a restart
reads on from there. A store that is missing or behind only makes events take the ordered path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from faust.stores.rocksdb import RocksDBOptions

from orchestrator.config import Settings
from orchestrator.runtime.erasure import CompactionPlan
from orchestrator.runtime.rocksdb_budget import RocksDBBudget, SharedOptions
from orchestrator.runtime.whole_topic import whole_topic_consumer

__all__ = ["ClaimsView"]

log = logging.getLogger("orchestrator.claims")

_POSITION = b"\x00pos:"


class ClaimsView:
    """The claims, by :func:`~.claims.claim_key`; :meth:`run` keeps them in step with the topic."""

    def __init__(
        self,
        settings: Settings,
        path: Path | None = None,
        budget: RocksDBBudget | None = None,
        on_applied: Callable[[int], None] | None = None,
    ) -> None:
        """``path``: a RocksDB directory (None: in memory); ``budget``: the worker's RocksDB budget;
        ``on_applied``: told how many records each batch applied (a metric)."""
        self.on_applied = on_applied
        self.settings = settings
        self.topic = settings.topics.claims
        self._path = path
        self._budget = budget
        self._db: Any = {} if path is None else None
        """The store, opened by :meth:`open` (the worker's :meth:`run`): None until then."""
        self.caught_up = asyncio.Event()
        """Set once the records present when reading began are applied."""
        self.applied = 0
        """Records applied since the start."""
        self.compactions = CompactionPlan()
        """When to compact the database after tombstones (an erasure)."""

    def open(self) -> None:
        if self._db is not None or self._path is None:
            return
        self._path.mkdir(parents=True, exist_ok=True)
        options = RocksDBOptions(**self.settings.rocksdb_options())  # type: ignore[arg-type]
        opened = SharedOptions(self._budget, options) if self._budget is not None else options
        self._db = opened.open(self._path)
        self.compactions.noted(time.monotonic(), erasure=False)  # (tombstones a crash left uncompacted)

    def get(self, key: bytes) -> bytes | None:
        db = self._db
        if db is None:  # (not open yet: nothing is claimed)
            return None
        value: bytes | None = db.get(key)
        return value

    def position(self, partition: int) -> int | None:
        """The next offset to read in ``partition`` (None: from the beginning)."""
        kept = self._db.get(_POSITION + str(partition).encode())
        return None if kept is None else int(kept)

    def apply(self, partition: int, records: Iterable[tuple[int, bytes | None, bytes | None]]) -> None:
        """Records of ``partition`` in offset order: (offset, key, value); a None value deletes."""
        db = self._db
        last = None
        for offset, key, value in records:
            last = offset
            if key is None or key.startswith(_POSITION):
                continue  # (not a claim)
            if value is None:
                if key in db:
                    del db[key]
                    self.compactions.noted(time.monotonic())
            else:
                db[key] = value
            self.applied += 1
        if last is not None:
            db[_POSITION + str(partition).encode()] = str(last + 1).encode()

    def compact(self) -> None:
        """Compact the whole database (deleted claims leave its files). Blocking: run in a thread."""
        db = self._db
        if db is None or isinstance(db, dict):
            return
        import rocksdict

        options = rocksdict.CompactOptions()
        options.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
        db.compact_range(None, None, options)
        db.flush_wal(True)

    def close(self) -> None:
        if self._db is not None and not isinstance(self._db, dict):
            self._db.close()
            self._db = None

    async def run(self) -> None:
        self.open()
        consumer, tps = await whole_topic_consumer(self.settings, self.topic, log)
        try:
            for tp in tps:
                kept = self.position(tp.partition)
                if kept is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, kept)
            end = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if end[tp] > (self.position(tp.partition) or 0)}
            if not pending:
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5_000)
                for tp, records in batches.items():
                    self.apply(tp.partition, ((r.offset, r.key, r.value) for r in records))
                    if self.on_applied is not None:
                        self.on_applied(len(records))
                for tp in list(pending):
                    if (self.position(tp.partition) or 0) >= end[tp]:
                        pending.discard(tp)
                if not pending and not self.caught_up.is_set():
                    log.info("claims read: %d", self.applied)
                    self.caught_up.set()
                if self._path is not None and self.compactions.take(time.monotonic()):
                    await asyncio.to_thread(self.compact)
        finally:
            await consumer.stop()
