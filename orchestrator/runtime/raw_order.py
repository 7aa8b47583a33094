"""Ingest's order times, kept with its commits (docs/runtime.md, design note of issue 17, step (a)).

Every event ingest passes on carries its *order time*: the running maximum of the event times read so
far in its raw partition (:class:`~.ordering.OrderTimes`), so that a late event keeps its place behind
its partition's earlier events on every path. Reading a raw partition starts at the group's committed
offset, after a restart or a takeover; the order time of the records before it is kept as that commit's
metadata (one request: the offset and its order time can never disagree) and read back when the
partition's first batch comes.

With the fast path, the same metadata keeps the partition's *fast allowance* (``fast_ms``): how far
the fast path's watermarks of this raw partition may go. A worker sends no fast-path watermark past
the allowance of its last commit that succeeded, so a worker that takes the partition over (after a
crash, or a rebalance) knows, from the commit alone, a time no watermark sent before it can have
passed. It sends the events it reads again below that time through the identity writer, never by the
fast path: below a fast-path watermark already on the customer partitions, a fast-path copy would be
late there and be applied out of order (docs/runtime.md, "The fast path across a crash").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
from faust.types import TP

from orchestrator.runtime.ordering import OrderTimes

__all__ = ["RawOrder", "fast_of", "metadata_of", "order_of"]

log = logging.getLogger("orchestrator.worker")


def metadata_of(order_ms: int | None, fast_ms: int | None = None) -> str:
    """The commit metadata that keeps ``order_ms`` (and the fast allowance ``fast_ms``)."""
    kept: dict[str, int] = {}
    if order_ms is not None:
        kept["order_ms"] = order_ms
    if fast_ms is not None:
        kept["fast_ms"] = fast_ms
    return orjson.dumps(kept).decode() if kept else ""


def order_of(metadata: str | None) -> int | None:
    """The order time kept in a commit's metadata; None when there is none (nothing committed yet, or
    committed by a version that kept none: the running maximum then starts again where reading does)."""
    if not metadata:
        return None
    try:
        kept = orjson.loads(metadata)
        if isinstance(kept, dict) and "order_ms" not in kept and "fast_ms" in kept:
            return None  # (a fast allowance committed before any event was read)
        return int(kept["order_ms"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("commit metadata %r keeps no order time: ignored", metadata[:100])
        return None


def fast_of(metadata: str | None) -> int | None:
    """The fast allowance kept in a commit's metadata; None when there is none."""
    if not metadata:
        return None
    try:
        found = orjson.loads(metadata).get("fast_ms")
        return None if found is None else int(found)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None


class RawOrder:
    """The order times of the raw partitions this worker reads, and what to commit with their offsets."""

    def __init__(self) -> None:
        self.times = OrderTimes()
        self._restored: set[TP] = set()
        self._done: dict[TP, int | None] = {}
        """Per raw partition, the order time after the last run whose offset is done."""
        self._allowed: dict[TP, int] = {}
        """Per raw partition, the fast allowance of the last commit that succeeded (or restored)."""
        self._wanted: dict[TP, int] = {}
        """Per raw partition, the fast allowance the next commit asks for."""
        self._asked: dict[TP, int] = {}
        """Per raw partition, the fast allowance of the commit under way."""
        self._floor: dict[int, int] = {}
        """Per raw partition number, the restored allowance: the fast path takes events at or after it."""

    def needs_restore(self, tp: TP) -> bool:
        return tp not in self._restored

    def restore(self, tp: TP, metadata: str | None) -> None:
        """Reading ``tp`` starts at its committed offset, whose metadata is ``metadata``."""
        order = order_of(metadata)
        self.times.restore(tp.partition, order)
        self._done[tp] = order
        fast = fast_of(metadata)
        if fast is not None:
            self._allowed[tp] = fast
        self._floor[tp.partition] = fast or 0
        self._restored.add(tp)

    def next(self, tp: TP, event_ms: int) -> int:
        """The order time of the next event read from ``tp`` (its logical time ``event_ms``)."""
        return self.times.next(tp.partition, event_ms)

    def done(self, tp: TP) -> None:
        """A run of ``tp`` is done (its offset may be committed): its order time goes with the commit."""
        self._done[tp] = self.times.get(tp.partition)

    def metadata(self, tp: TP) -> str:
        """What to commit with ``tp``'s offset now (then :meth:`committed` once it succeeded)."""
        fast = max(self._allowed.get(tp, 0), self._wanted.get(tp, 0))
        fast_ms = fast if fast or tp in self._allowed else None
        if fast_ms is not None:
            self._asked[tp] = fast_ms
        return metadata_of(self._done.get(tp), fast_ms)

    def committed(self, tp: TP) -> None:
        """The commit of ``tp`` succeeded: its allowance holds now."""
        asked = self._asked.pop(tp, None)
        if asked is not None and tp in self._restored and asked > self._allowed.get(tp, -1):
            self._allowed[tp] = asked

    # -- the fast path's allowance --------------------------------------------------------------
    def want(self, tp: TP, fast_ms: int) -> None:
        """The fast path's watermark of ``tp`` would go to ``fast_ms``: the next commit asks for it."""
        if fast_ms > self._wanted.get(tp, 0):
            self._wanted[tp] = fast_ms

    def to_raise(self) -> list[TP]:
        """Raw partitions whose next commit would raise their allowance (even with the offset unchanged)."""
        allowed = self._allowed
        return [tp for tp, want in self._wanted.items() if tp in self._restored and want > allowed.get(tp, 0)]

    def fast_cap(self, tp: TP) -> int:
        """How far the fast path's watermark of ``tp`` may go now."""
        return self._allowed.get(tp, 0) if tp in self._restored else 0

    def fast_floor(self, raw_partition: int) -> int:
        """Events of ``raw_partition`` with an order time below this go through the identity writer:
        a worker before this one may have sent fast-path watermarks up to it."""
        return self._floor.get(raw_partition, 0)

    def forget(self, tps: Iterable[Any]) -> None:
        """Partitions revoked: read back from the commit when they come back."""
        for tp in tps:
            self._restored.discard(tp)
            self._done.pop(tp, None)
            for kept in (self._allowed, self._wanted, self._asked):
                kept.pop(tp, None)
            self._floor.pop(tp.partition, None)
            self.times.restore(tp.partition, None)
