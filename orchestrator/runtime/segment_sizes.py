"""Segment sizes: how many customers each segment has, per customer partition, kept with the customers.

Each customer partition's counts are one row (key ``sizes:<partition>``, :func:`sizes_key`) of the
``segment_sizes`` table, in the same partition as the customers it counts (a key per partition: Faust's
memory store is one dict for every partition). A batch of the customer stage compares each customer's
memberships before and after (:func:`members_of` on the stored record: an erased customer, one merged
away, leaves its segments) and writes the partition's new counts with the customers' records, in the same
delivery: a partition's counts move with it on a rebalance (the table's changelog) and are the sum of its
stored records. (A worker killed between the records and the counts of one delivery leaves the counts off
by that batch's changes: the messages read again are duplicates by then.)

The counts of every partition are the changelog's latest row per partition: ``orchestrator segments``
reads them from Kafka, cluster-wide, without asking a worker. Each worker's gauge
``orchestrator_segment_members{segment}`` counts the partitions it owns (sum over workers in Grafana).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from orchestrator.core.engine.state import CustomerState
from orchestrator.core.segment import SegmentRegistry

__all__ = [
    "SIZES_KEY",
    "SIZES_TABLE",
    "SegmentSizes",
    "changed_members",
    "members_of",
    "sizes_from_changelog",
    "sizes_key",
]

SIZES_TABLE = "segment_sizes"
SIZES_KEY = "sizes"
_NONE: frozenset[str] = frozenset()


def sizes_key(partition: int) -> str:
    """The key of a customer partition's row of counts."""
    return f"{SIZES_KEY}:{partition}"


def members_of(record: Mapping[str, Any] | None) -> frozenset[str]:
    """The segments a stored customer record (decoded; its state decoded or not) is a member of."""
    if record is None:
        return _NONE
    state = record.get("s")
    if state is None:
        return _NONE
    if type(state) is CustomerState:
        seg: Any = state.profile.segments
    else:
        seg = (state.get("p") or {}).get("seg")
    return frozenset(seg) if seg else _NONE


def changed_members(before: frozenset[str], after: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(entered, left) between two membership sets."""
    if before == after:
        return (), ()
    return tuple(sorted(after - before)), tuple(sorted(before - after))


@dataclass
class SegmentSizes:
    """The counts of the partitions this worker owns, as last read or written."""

    partitions: dict[int, dict[str, int]] = field(default_factory=dict)

    def known(self, partition: int) -> bool:
        return partition in self.partitions

    def load(self, partition: int, row: Any) -> None:
        """The partition's row as stored (None: no row yet, every count 0)."""
        counts = row if isinstance(row, dict) else {}
        self.partitions[partition] = {str(k): int(v) for k, v in counts.items() if int(v) > 0}

    def apply(self, partition: int, delta: Mapping[str, int]) -> dict[str, int]:
        """Add ``delta`` to the partition's counts; the new counts (the row to store)."""
        counts = self.partitions.setdefault(partition, {})
        for segment, n in delta.items():
            value = counts.get(segment, 0) + n
            if value > 0:
                counts[segment] = value
            else:
                counts.pop(segment, None)  # (never below zero: a count off by a crash heals at 0)
        return counts

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for counts in self.partitions.values():
            for segment, n in counts.items():
                out[segment] = out.get(segment, 0) + n
        return out


def sizes_from_changelog(records: Iterable[tuple[int, int, bytes | None, bytes | None]]) -> dict[str, int]:
    """Cluster-wide sizes from the ``segment_sizes`` changelog's records (partition, offset, key, value):
    the latest row of each customer partition, summed."""
    latest: dict[int, bytes | None] = {}
    prefix = f"{SIZES_KEY}:".encode()
    for _, _, key, value in records:
        name = b"" if key is None else key.strip(b'"')
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            latest[int(name[len(prefix) :])] = value
    sizes = SegmentSizes()
    for partition, value in latest.items():
        sizes.load(partition, None if value is None else orjson.loads(value))
    return sizes.totals()


def segment_report(registry: SegmentRegistry, sizes: Mapping[str, int], at_ms: int) -> list[dict[str, Any]]:
    """One row per segment deployed (and per segment counted but no longer deployed): its version in
    effect at ``at_ms``, status, name, whether time alone changes it, the segments it reads, members."""
    rows: list[dict[str, Any]] = []
    for sid in sorted({*registry.segment_ids(), *sizes}):
        d = registry.current(sid, at_ms)
        rows.append(
            {
                "segment": sid,
                "version": d.version if d else None,
                "status": d.status if d else "not deployed",
                "name": d.name if d else "",
                "time_dependent": d.time_dependent if d else False,
                "reads": sorted(d.depends_on) if d else [],
                "members": int(sizes.get(sid, 0)),
            }
        )
    return rows
