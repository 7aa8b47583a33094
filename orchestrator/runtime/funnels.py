"""Each journey's funnel, counted per customer partition and kept in the counts table, so that the
cluster's can be added up by any worker (``/funnels/``) and by ``orchestrator graph --worker``.

The customer stage adds the transitions of a batch to its partition's :class:`~orchestrator.core.funnel.
Funnel` and writes the partition's row (``funnel:<partition>`` in the ``segment_sizes`` table) in the
same delivery as the customers: the counts move with the partition across rebalances and restarts, like
segment sizes and campaign counts. Entries, arrivals per step, edges, where customers are now
(occupancy), goals, exits and split branches; actions and decisions are on the topics and in the
metrics, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from orchestrator.core.engine.records import Transition
from orchestrator.core.funnel import Funnel

__all__ = ["FUNNEL_KEY", "FunnelRows", "funnel_key", "funnels_from_changelog"]

FUNNEL_KEY = "funnel"


def funnel_key(partition: int) -> str:
    """The key of a customer partition's funnel row."""
    return f"{FUNNEL_KEY}:{partition}"


@dataclass
class FunnelRows:
    """The funnels of the partitions this worker owns, as last read or written."""

    partitions: dict[int, Funnel] = field(default_factory=dict)

    def known(self, partition: int) -> bool:
        return partition in self.partitions

    def load(self, partition: int, row: Any) -> None:
        self.partitions[partition] = Funnel.from_dict(row)

    def apply(self, partition: int, transitions: Iterable[Transition]) -> dict[str, Any]:
        """Add a batch's transitions; the partition's new row."""
        funnel = self.partitions.setdefault(partition, Funnel())
        for t in transitions:
            funnel.add(t)
        return funnel.to_dict()

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)

    def totals(self) -> dict[str, Any]:
        out = Funnel()
        for funnel in self.partitions.values():
            out.add_counts(funnel.to_dict())
        return out.to_dict()


def funnels_from_changelog(records: Iterable[tuple[int, int, bytes | None, bytes | None]]) -> dict[str, Any]:
    """The cluster's funnels from the counts table's changelog records (partition, offset, key, value):
    the latest ``funnel:<partition>`` row of each customer partition, added up."""
    latest: dict[int, Any] = {}
    prefix = f"{FUNNEL_KEY}:".encode()
    for _, _, key, value in records:
        name = b"" if key is None else key.strip(b'"')
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            latest[int(name[len(prefix) :])] = None if value is None else orjson.loads(value)
    out = Funnel()
    for row in latest.values():
        out.add_counts(row)
    return out.to_dict()
