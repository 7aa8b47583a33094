"""The identify stage: the one writer of the identity graph, between ingestion and the customers.

Valid events of every raw partition meet on one single-partition topic, so the identity graph
(:class:`~orchestrator.core.identity.IdentityGraph`, docs/identity.md) sees them in one order and
answers as ``orchestrator simulate`` does. For each event :class:`IdentifyStage` says what to
publish on the resolved topic, keyed by customer (the customer agents do the rest):

- the event, keyed by its canonical customer;
- when the event merges customers (a visitor signs in): first a ``merge_out`` control message per
  key merged away, on that key's partition (its agent sends the state over: ``merge_in``), then the
  event with ``merged_from``: the canonical key's agent holds it, and any later message of that
  customer, until every merged state has arrived, so nothing overtakes the merge;
- for ``customer.erased``: the event, then an ``erase`` control message per forwarding alias (the
  hand-over records the old keys keep for a while hold personal data too);
- nothing for an event carrying a recently erased identifier (dropped, not dead-lettered: the
  dead-letter topic would keep the personal data).

Watermarks of the raw partitions pass through unchanged, after the events before them.

At-least-once: the graph's rows and the stage's offset are stored in the ``identities`` table; its
changelog can be ahead of the committed offset after a crash, so a message read again is resolved
again (the graph gives the same key; nothing new is written), and the messages of a merge or an
erasure, which the graph would not give twice, are kept per offset (``o:<offset>`` rows) and re-sent
as they were. Such a row is deleted once its offset is committed (:meth:`IdentifyStage.prune`; it
names the customer), and at the latest :data:`OUTBOX_SPAN` offsets later.

Free of Faust: the agent in :mod:`.app` feeds it and writes :attr:`Identified.rows`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from orchestrator.contracts import ResolvedEvent
from orchestrator.core.customer import ERASE_EVENT
from orchestrator.core.identity import IdentityGraph

__all__ = ["CONTROL_PREFIX", "OUTBOX_SPAN", "Identified", "IdentifyStage", "control"]

OUTBOX_SPAN = 100_000
"""Offsets of the identify topic for which a merge's or erasure's messages are kept for re-sending."""

CONTROL_PREFIX = b'{"ctl":'
"""Control messages on the resolved topic start with this (a resolved event never does)."""

_LAST = "last"
_OUT = "o:"


def control(kind: str, **fields: Any) -> bytes:
    """A control message for the resolved topic: ``merge_out``, ``merge_in`` or ``erase``."""
    return orjson.dumps({"ctl": kind, **fields})


@dataclass
class Identified:
    """What one identify message gives."""

    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    """(key, value) for the resolved topic, in order."""
    rows: dict[str, Any] = field(default_factory=dict)
    """Rows of the identities table to write (None: delete)."""
    dropped: bool = False
    """The event carried a recently erased identifier."""
    merges: int = 0
    erased: int = 0
    replayed: bool = False


class IdentifyStage:
    def __init__(self) -> None:
        self.graph: IdentityGraph | None = None
        self.last = -1
        self._outbox: list[int] = []

    @property
    def loaded(self) -> bool:
        return self.graph is not None

    def load(self, rows: Iterable[tuple[str, Any]]) -> None:
        """Rebuild from the stored rows (at start, and when the partition comes back to this worker)."""
        graph_rows: list[tuple[str, Any]] = []
        self.last = -1
        self._outbox = []
        for name, value in rows:
            if name == _LAST:
                self.last = int(value)
            elif name.startswith(_OUT):
                self._outbox.append(int(name[len(_OUT) :]))
            else:
                graph_rows.append((name, value))
        self._outbox.sort()
        self.graph = IdentityGraph.from_rows(graph_rows)
        self.graph.changes()  # what was loaded is not a change

    def unload(self) -> None:
        self.graph = None

    def on_event(self, offset: int, resolved: ResolvedEvent, stored: Any = None) -> Identified:
        """Resolve the event read at ``offset`` of the identify topic. ``stored`` is the ``o:<offset>``
        row when the table has one (the caller looks it up only for ``offset <= last``)."""
        if self.graph is None:
            self.graph = IdentityGraph()
        if offset <= self.last and stored is not None:
            messages = [(k.encode(), v.encode()) for k, v in stored]
            return Identified(messages=messages, replayed=True)
        graph = self.graph
        event = resolved.event
        at = event.occurred_ms
        resolution = graph.resolve(event.identifiers, at)
        out = Identified()
        if resolution.erased:
            out.dropped = True
        else:
            key = resolution.customer_key
            merged = [m.from_key for m in resolution.merges]
            for m in resolution.merges:
                out.messages.append((m.from_key.encode(), control("merge_out", into=key, at=at)))
            copy = resolved.model_copy(update={"customer_key": key, "merged_from": merged or None})
            out.messages.append((key.encode(), copy.to_json()))
            out.merges = len(merged)
            if event.type == ERASE_EVENT:
                erasure = graph.erase(key, at)
                out.erased = 1
                for alias in erasure.aliases:
                    out.messages.append((alias.encode(), control("erase", into=key)))
        if offset > self.last:
            out.rows = graph.changes()
            if out.merges or out.erased:
                out.rows[f"{_OUT}{offset}"] = [[k.decode(), v.decode()] for k, v in out.messages]
                self._outbox.append(offset)
                while self._outbox and self._outbox[0] < offset - OUTBOX_SPAN:
                    out.rows[f"{_OUT}{self._outbox.pop(0)}"] = None
            out.rows[_LAST] = offset
            self.last = offset
        else:
            graph.changes()  # read again: the stored rows have it already
        return out

    def prune(self, committed: int | None) -> dict[str, Any]:
        """Rows of kept messages no longer needed: every offset before ``committed`` (the next offset
        the group will read) can no longer be read again. Pruned early because an erasure's and a
        merge's messages name the customer."""
        rows: dict[str, Any] = {}
        while committed is not None and self._outbox and self._outbox[0] < committed:
            rows[f"{_OUT}{self._outbox.pop(0)}"] = None
        return rows

    def needs_stored(self, offset: int) -> bool:
        """Whether the ``o:<offset>`` row may exist (a message read again after a crash)."""
        return offset <= self.last

    @staticmethod
    def outbox_row(offset: int) -> str:
        return f"{_OUT}{offset}"
