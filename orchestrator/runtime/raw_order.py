"""Ingest's order times, kept with its commits (docs/runtime.md, design note of issue 17, step (a)).

Every event ingest passes on carries its *order time*: the running maximum of the event times read so
far in its raw partition (:class:`~.ordering.OrderTimes`), so that a late event keeps its place behind
its partition's earlier events on every path. Reading a raw partition starts at the group's committed
offset, after a restart or a takeover; the order time of the records before it is kept as that commit's
metadata (one request: the offset and its order time can never disagree) and read back when the
partition's first batch comes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
from faust.types import TP

from orchestrator.runtime.ordering import OrderTimes

__all__ = ["RawOrder", "metadata_of", "order_of"]

log = logging.getLogger("orchestrator.worker")


def metadata_of(order_ms: int | None) -> str:
    """The commit metadata that keeps ``order_ms``."""
    return "" if order_ms is None else orjson.dumps({"order_ms": order_ms}).decode()


def order_of(metadata: str | None) -> int | None:
    """The order time kept in a commit's metadata; None when there is none (nothing committed yet, or
    committed by a version that kept none: the running maximum then starts again where reading does)."""
    if not metadata:
        return None
    try:
        return int(orjson.loads(metadata)["order_ms"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("commit metadata %r keeps no order time: ignored", metadata[:100])
        return None


class RawOrder:
    """The order times of the raw partitions this worker reads, and what to commit with their offsets."""

    def __init__(self) -> None:
        self.times = OrderTimes()
        self._restored: set[TP] = set()
        self._done: dict[TP, int | None] = {}
        """Per raw partition, the order time after the last run whose offset is done."""

    def needs_restore(self, tp: TP) -> bool:
        return tp not in self._restored

    def restore(self, tp: TP, metadata: str | None) -> None:
        """Reading ``tp`` starts at its committed offset, whose metadata is ``metadata``."""
        order = order_of(metadata)
        self.times.restore(tp.partition, order)
        self._done[tp] = order
        self._restored.add(tp)

    def next(self, tp: TP, event_ms: int) -> int:
        """The order time of the next event read from ``tp`` (its logical time ``event_ms``)."""
        return self.times.next(tp.partition, event_ms)

    def done(self, tp: TP) -> None:
        """A run of ``tp`` is done (its offset may be committed): its order time goes with the commit."""
        self._done[tp] = self.times.get(tp.partition)

    def metadata(self, tp: TP) -> str:
        """What to commit with ``tp``'s offset now."""
        return metadata_of(self._done.get(tp))

    def forget(self, tps: Iterable[Any]) -> None:
        """Partitions revoked: read back from the commit when they come back."""
        for tp in tps:
            self._restored.discard(tp)
            self._done.pop(tp, None)
            self.times.restore(tp.partition, None)
