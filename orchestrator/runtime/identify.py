"""The identify stage: the one writer of the identity graph, between ingestion and the customers.

Valid events of every raw partition meet on one single-partition topic, and the stage applies them
to the identity graph (:class:`~orchestrator.core.identity.IdentityGraph`, docs/identity.md) **in
event-time order**: an event is held until every raw partition's watermark has passed its time;
the heads of the raw partitions' queues are then released oldest first (ties: raw partition), so
each raw partition's events keep the order they were read in (customers recognise re-resolved
copies by raw offset). The graph thus sees the events in the order ``orchestrator simulate`` sees a
time-ordered file, whichever raw partition each came from, and gives the same customers, merges and
aliases. An event older than what was already released (late) goes as soon as its partition's
earlier events have gone, and the watermark the stage publishes never passes an event it still holds
(one older than a newer event of its own raw partition waits behind it; issue 26). The price is
latency: an event waits for the next watermark of every raw partition (``timer_tick_s``).

For each released event the stage publishes on the resolved topic, keyed by customer:

- the event, keyed by its canonical customer;
- when the event merges customers (a visitor signs in): first a ``merge_out`` control message per
  key merged away, on that key's partition (its agent sends the state over: ``merge_in``), then the
  event with ``merged_from``: the canonical key's agent holds it, and any later message of that
  customer, until every merged state has arrived, so nothing overtakes the merge;
- for ``customer.erased``: the event, then an ``erase`` control message per forwarding alias (the
  hand-over records the old keys keep for a while hold personal data too);
- nothing for an event carrying a recently erased identifier (dropped, not dead-lettered: the
  dead-letter topic would keep the personal data), nor for one naming a customer key the graph does
  not know (``customer_key``: a receipt of a customer never seen or erased long ago; dropped too).

An event naming its customer by key (``customer_key``, the receipts of connectors) is resolved by the
graph without changing it (:meth:`~orchestrator.core.identity.IdentityGraph.resolve_key`): in its
event-time place like any event, so a receipt before a sign-in goes to the visitor, which the
sign-in then merges.

After them, the released time goes to every customer partition as its watermark.

At-least-once: the graph's rows, the held events (``b:<offset>``), the raw watermarks (``w:<raw
partition>``) and the last offset read are stored in the ``identities`` table. Its changelog can be
ahead of the committed offset after a crash: a message read again (offset at or below the last one
read) is then already in the table, and what its reading published is re-sent from its ``o:<offset>``
row. Such a row is deleted once its offset is committed (:meth:`IdentifyStage.prune`; it names
customers), and at the latest :data:`OUTBOX_SPAN` offsets later.

Erased-identifier markers are keyed hashes (docs/identity.md): the stage gives the graph
``Settings.erasure_key`` when one is set; otherwise a random key it generated once and keeps in the
``key`` row of the table (so a worker taking the partition over uses the same key). A generated key
that is still in the table when an ``erasure_key`` is set stays a *previous* key — its markers are
honoured until they expire — and the row is deleted once no marker of it is left.

Free of Faust: the agent in :mod:`.app` feeds it and writes :attr:`Identified.rows`.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import SecretStr

from orchestrator.contracts import ResolvedEvent
from orchestrator.contracts.events import CUSTOMER_KEY, IDENTIFIER_NAMES
from orchestrator.core.customer import ERASE_EVENT
from orchestrator.core.identity import ALIAS_ROW, NODE_ROW, OWNER_ROW, IdentityGraph, RowReader, key_id
from orchestrator.runtime.claims import claim_key, claim_value

__all__ = [
    "CONTROL_PREFIX",
    "IDENTITY_CACHE",
    "MAX_RELEASE",
    "OUTBOX_SPAN",
    "RELEASE_BYTES",
    "WATERMARK_KEY",
    "HeldEvent",
    "Identified",
    "IdentifyStage",
    "control",
    "erasure_key_bytes",
]

log = logging.getLogger("orchestrator.identify")

MAX_RELEASE = 200
"""Events one message releases at most: its ``o:<offset>`` row (what it published) must stay well under
Kafka's message size limit (1 MB by default); 200 events make about 150 KB."""
RELEASE_BYTES = 256 * 1024
"""Bytes one message publishes at most (its ``o:<offset>`` row holds them, JSON-escaped again: at
worst twice as large): an event that would take it past this waits for the next message, unless it is
the first (an event alone is within ``max_event_bytes``). A catch-up burst of large events thus spreads
over several messages instead of one row over Kafka's 1 MB."""

IDENTITY_CACHE = 100_000
"""Default of ``Settings.identity_cache``: entries of each kind of the identity graph (customers,
identifiers, aliases) a worker keeps in memory; the rest stay in the table (RocksDB)."""

OUTBOX_SPAN = 100_000
"""Offsets of the identify topic for which what a message published is kept for re-sending."""

CONTROL_PREFIX = b'{"ctl":'
"""Control messages on the resolved topic start with this (a resolved event never does)."""

WATERMARK_KEY = b"\x00watermark"
"""Key of watermark messages (no customer key starts with a NUL byte)."""

_LAST = "last"
_OUT = "o:"
_CLAIM = -1
"""In an ``o:`` row, the partition of a claim (for the claims topic, not the resolved topic)."""
CLAIMS_REMEMBERED = 20_000
"""Claims the writer remembers having made (older ones may be made again: harmless, same claim)."""
_HELD = "b:"
_MARK = "w:"
_KEY = "key"
"""Row of the generated erasure key (hex), when no ``erasure_key`` is configured."""
_VERSION = "v"
"""Row of the table's layout: 2 since the graph's owner and alias rows are kept (a paged graph
reads them); a table without it gets them written with the next message."""
_LAYOUT = 2
_INDEX_ROWS = (OWNER_ROW, ALIAS_ROW)


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """An event of the identify topic as the stage keeps it while it waits for the watermarks: its JSON
    and what resolving it needs. A ``ResolvedEvent`` model per held event took ~2.5 kB of memory (a
    backlog read unevenly holds tens of thousands); this takes about its JSON's size, and reading it
    skips the model's validation (the identify topic carries what ingest validated)."""

    event_json: bytes
    """The event's JSON as ``CustomerEvent.to_json`` wrote it (ingest), published as is."""
    identifiers: tuple[tuple[str, str], ...]
    """In priority order (as ``CustomerEvent.to_json`` writes them)."""
    type: str
    occurred_ms: int
    source_partition: int | None = None
    source_offset: int | None = None
    order_ms: int | None = None
    """Its order time (ingest: :mod:`.raw_order`); None from an ingest of an older version."""

    @classmethod
    def read(cls, value: bytes | str) -> HeldEvent:
        """From an identify-topic record (``ResolvedEvent.to_json``); ValueError when it is not one."""
        try:
            data = orjson.loads(value)
            event = data["event"]
            identifiers = tuple(event["identifiers"].items())
            # what ingest validated, checked again where it is cheap: a held event that cannot be
            # resolved would fail every later release, not only its own message
            if not identifiers or any(
                k not in IDENTIFIER_NAMES or type(v) is not str or not v for k, v in identifiers
            ):
                raise ValueError(f"identifiers {dict(identifiers)!r}")
            if len(identifiers) > 1 and CUSTOMER_KEY in event["identifiers"]:
                raise ValueError(f"{CUSTOMER_KEY} with other identifiers")
            if type(event["type"]) is not str:
                raise ValueError("type")
            return cls(
                event_json=orjson.dumps(event),
                identifiers=identifiers,
                type=event["type"],
                occurred_ms=_ms(event["occurred_at"]),
                source_partition=_int_or_none(data.get("source_partition")),
                source_offset=_int_or_none(data.get("source_offset")),
                order_ms=_int_or_none(data.get("order_ms")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a resolved event of the identify topic: {exc!r}") from None

    @classmethod
    def of(cls, resolved: ResolvedEvent) -> HeldEvent:
        event = resolved.event
        return cls(
            event_json=event.to_json(),
            identifiers=tuple(event.identifiers.items()),
            type=event.type,
            occurred_ms=event.occurred_ms,
            source_partition=resolved.source_partition,
            source_offset=resolved.source_offset,
            order_ms=resolved.order_ms,
        )

    def to_json(self, customer_key: str, merged_from: list[str] | None = None) -> bytes:
        """``ResolvedEvent.to_json``'s bytes for this event keyed ``customer_key`` (a unit test holds
        them equal), without the model."""
        form: dict[str, Any] = {"customer_key": customer_key, "event": orjson.Fragment(self.event_json)}
        if self.source_partition is not None:
            form["source_partition"] = self.source_partition
        if self.source_offset is not None:
            form["source_offset"] = self.source_offset
        if self.order_ms is not None:
            form["order_ms"] = self.order_ms
        if merged_from:
            form["merged_from"] = merged_from
        return orjson.dumps(form)


def _ms(occurred_at: str) -> int:
    # as CustomerEvent.occurred_ms: the timestamp of the aware datetime, in whole milliseconds
    at = datetime.fromisoformat(occurred_at)
    if at.tzinfo is None:
        raise ValueError(f"occurred_at without a time zone: {occurred_at!r}")
    return int(at.timestamp() * 1000)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


_Held = tuple[int, int, int, int, HeldEvent]
"""(order time: the event time where ingest gave none; raw partition, raw offset, identify offset, event)."""

Message = tuple[bytes, bytes, int | None]
"""(key, value, partition) for the resolved topic; partition None: by key."""


class _HeldQueue:
    """One raw partition's held events in the order read, and the oldest event time among them in O(1)
    (a monotonic deque of (time, identify offset): events leave only from the head, arrive only at the
    tail). Scanning every held event for it on each message made a backlog quadratic: with tens of
    thousands held, the stage spent milliseconds per event."""

    __slots__ = ("_mins", "entries")

    def __init__(self) -> None:
        self.entries: deque[_Held] = deque()
        self._mins: deque[tuple[int, int]] = deque()

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, entry: _Held) -> None:
        self.entries.append(entry)
        mins = self._mins
        while mins and mins[-1][0] >= entry[0]:
            mins.pop()
        mins.append((entry[0], entry[3]))

    def popleft(self) -> _Held:
        entry = self.entries.popleft()
        if self._mins and self._mins[0][1] == entry[3]:
            self._mins.popleft()
        return entry

    def oldest(self) -> int | None:
        """The earliest event time held (None when empty)."""
        return self._mins[0][0] if self._mins else None


def erasure_key_bytes(key: SecretStr | str | bytes | None) -> bytes | None:
    """The configured erasure key as bytes (UTF-8 of the secret), None when unset or empty."""
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    if isinstance(key, str):
        key = key.encode()
    return key or None


def control(kind: str, **fields: Any) -> bytes:
    """A control message for the resolved topic: ``merge_out``, ``merge_in`` or ``erase``."""
    return orjson.dumps({"ctl": kind, **fields})


@dataclass
class Identified:
    """What one identify message gives."""

    messages: list[Message] = field(default_factory=list)
    """For the resolved topic, in order."""
    rows: dict[str, Any] = field(default_factory=dict)
    """Rows of the identities table to write (None: delete)."""
    dropped: int = 0
    """Events dropped: they carried a recently erased identifier."""
    unknown: int = 0
    """Events dropped: the customer key they named (``customer_key``) is no customer of the graph."""
    merges: int = 0
    erased: int = 0
    released: int = 0
    published_bytes: int = 0
    """Bytes of :attr:`messages` (keys and values)."""
    copies: int = 0
    """Raw records resolved again (after a crash or a takeover), dropped."""
    replayed: bool = False
    claims: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    """For the claims topic (:mod:`.claims`): (key, claim), None a tombstone, in order."""


class IdentifyStage:
    def __init__(
        self,
        sources: int,
        partitions: int,
        erasure_key: SecretStr | str | bytes | None = None,
        previous_keys: Iterable[SecretStr | str | bytes] = (),
        idle_ms: int | None = None,
        claims: bool = True,
    ) -> None:
        """``erasure_key``: ``Settings.erasure_key`` (None: a generated key kept in the table);
        ``previous_keys``: keys whose markers are still honoured until they expire (after a rotation);
        ``idle_ms``: ``Settings.watermark_idle_s`` — a raw partition not heard from for longer (by the
        send times of the other partitions' watermarks) is left out of the minimum (None: never).
        ``claims``: publish claims for the fast path (``Settings.fast_path``)."""
        self.claims = claims
        self.sources = sources
        """Raw partitions: each must report a watermark before anything is released."""
        self.partitions = partitions
        """Customer partitions, each sent the released time as its watermark."""
        self.graph: IdentityGraph | None = None
        self.last = -1
        self.raw_read: dict[int, int] = {}
        """Per raw partition, the highest raw offset taken (copies at or below it are dropped)."""
        self.marks: dict[int, int] = {}
        self.heard: dict[int, int] = {}
        """Per raw partition, the send time (wall clock of its ingest worker) of its last watermark."""
        self.idle_ms = idle_ms
        self._idle: frozenset[int] = frozenset()
        self.released_ms = 0
        self._held: dict[int, _HeldQueue] = {}
        self._claimed: dict[str, str] = {}
        """Claim token -> customer key, claims made lately (:meth:`_claim`)."""
        """Per raw partition, the events held, in the order read (a raw partition's own order is kept
        even when its event times are not: the customers recognise re-resolved copies by raw offset)."""
        self._outbox: list[int] = []
        self._sizes: dict[int, int] = {}
        """Per held event (identify offset), the size of its JSON: what releasing it would publish."""
        self._configured = erasure_key_bytes(erasure_key)
        self._previous = [k for k in map(erasure_key_bytes, previous_keys) if k is not None]
        self._pending: dict[str, Any] = {}
        """Rows to write with the next message (the generated key)."""

    @property
    def loaded(self) -> bool:
        return self.graph is not None

    def held(self) -> int:
        return sum(len(q) for q in self._held.values())

    def load(
        self,
        rows: Iterable[tuple[str, Any]],
        read: RowReader | None = None,
        cache: int = IDENTITY_CACHE,
    ) -> None:
        """Rebuild from the stored rows (at start, and when the partition comes back to this worker).

        ``read``: a stored row by name (the table): the graph is then paged, at most ``cache`` entries
        of each kind in memory (:meth:`IdentityGraph.paged`), and ``rows`` is only scanned. Without
        it the graph is rebuilt whole (tests, small data)."""
        graph_rows: list[tuple[str, Any]] = []
        self.last = -1
        self.raw_read = {}
        self.marks = {}
        self.heard = {}
        self._idle = frozenset()
        self._held = {}
        self._sizes = {}
        self._outbox = []
        held: list[tuple[int, _Held]] = []
        stored_key: bytes | None = None
        paged = read is not None
        migrate = (read(_VERSION) if read is not None else None) != _LAYOUT
        layout = None
        customers = 0
        staged: dict[str, Any] = {}
        for name, value in rows:
            if name.startswith(NODE_ROW):
                customers += 1
                if paged and migrate and value is not None:
                    staged.update(IdentityGraph.index_rows(name[len(NODE_ROW) :], value))
                if not paged:
                    graph_rows.append((name, value))
            elif name.startswith(_INDEX_ROWS):
                continue  # read when needed (paged), rebuilt from the customers' rows (whole)
            elif name == _KEY:
                stored_key = bytes.fromhex(str(value))
            elif name == _VERSION:
                layout = value
            elif name == _LAST:
                self.last = int(value[0])
                self.raw_read = {int(r): int(o) for r, o in value[1].items()}
            elif name.startswith(_OUT):
                self._outbox.append(int(name[len(_OUT) :]))
            elif name.startswith(_HELD):
                at, rp, ro, text = value
                event = HeldEvent.read(text)
                offset = int(name[len(_HELD) :])
                held.append((offset, (int(at), int(rp), int(ro), offset, event)))
                self._sizes[offset] = len(text)
            elif name.startswith(_MARK):
                raw = int(name[len(_MARK) :])
                if isinstance(value, list):  # [watermark, send time]
                    self.marks[raw], self.heard[raw] = int(value[0]), int(value[1])
                else:  # (before the send time was kept)
                    self.marks[raw] = int(value)
            else:
                graph_rows.append((name, value))
        self._outbox.sort()
        self._idle = self._idle_now()
        for _, entry in sorted(held, key=lambda h: h[0]):
            self._held.setdefault(entry[1], _HeldQueue()).append(entry)
        low = self._low()
        self.released_ms = 0 if low is None else self._bound(low)
        self.graph = self._graph(graph_rows, stored_key, read, customers, cache, staged)
        if not paged:
            self.graph.changes()  # what was loaded is not a change
            if layout != _LAYOUT and customers:
                self.graph.index_all()  # an older table: its owner and alias rows, with the next message
        if layout != _LAYOUT:
            self._pending[_VERSION] = _LAYOUT
        if staged:
            log.info("identity table of an older layout: writing the owner and alias rows of %d customers",
                     customers)  # fmt: skip

    def _graph(
        self,
        rows: list[tuple[str, Any]],
        stored: bytes | None,
        read: RowReader | None = None,
        customers: int = 0,
        cache: int = IDENTITY_CACHE,
        staged: dict[str, Any] | None = None,
    ) -> IdentityGraph:
        """The graph of ``rows`` with the right keys (see the module docstring): paged over ``read``
        when given (``rows``: the markers only), else held whole."""
        self._pending = {}
        previous = list(self._previous)
        if self._configured is not None:
            current = self._configured
            if stored is not None and stored != current:
                previous.append(stored)
        elif stored is not None:
            current = stored
        else:
            current = secrets.token_bytes(32)
            self._pending[_KEY] = current.hex()
            log.warning(
                "no erasure_key is set: erased-identifier markers use a generated key kept in the "
                "identities table; set erasure_key (docs/security.md)"
            )
        if read is None:
            graph = IdentityGraph.from_rows(rows, current, previous)
        else:
            graph = IdentityGraph.paged(read, customers, cache, rows, current, previous, staged)
        markers = graph.markers
        if self._configured is not None and stored is not None and not markers.by_key().get(key_id(stored)):
            self._pending[_KEY] = None  # the generated key made no marker still kept: forget it
        if markers.unrecognised():
            log.warning(
                "%d erased-identifier markers were made with a key this worker does not have (erasure_key "
                "changed?): they match nothing until they expire, 30 days after their erasure",
                markers.unrecognised(),
            )
        if markers.legacy():
            log.info("%d unkeyed erased-identifier markers of an older version kept until they expire",
                     markers.legacy())  # fmt: skip
        return graph

    def unload(self) -> None:
        self.graph = None

    # -- messages -------------------------------------------------------------------------------
    def on_event(
        self, offset: int, resolved: HeldEvent | ResolvedEvent, at_ms: int, stored: Any = None
    ) -> Identified:
        """An event read at ``offset`` of the identify topic (:meth:`HeldEvent.read`, or a model);
        ``at_ms`` its logical time. ``stored``: the ``o:<offset>`` row, which the caller looks up when
        :meth:`needs_stored`."""
        if offset <= self.last:
            return self._replay(stored)
        if isinstance(resolved, ResolvedEvent):
            resolved = HeldEvent.of(resolved)
        out = Identified()
        rp, ro = resolved.source_partition, resolved.source_offset
        if rp is not None and ro is not None:
            if ro <= self.raw_read.get(rp, -1):
                # The same raw record resolved again (its raw offset was not committed before a crash
                # or a takeover): taken already. Dropped here, where every copy meets, because after a
                # merge a copy may resolve to another key than its original did.
                out.copies = 1
                return self._finish(offset, out)
            self.raw_read[rp] = ro
        entry = (
            # the order time: a late event keeps its place behind its raw partition's earlier events
            at_ms if resolved.order_ms is None else resolved.order_ms,
            resolved.source_partition or 0,
            resolved.source_offset or 0,
            offset,
            resolved,
        )
        self._held.setdefault(entry[1], _HeldQueue()).append(entry)
        text = resolved.to_json("-").decode()  # (the key is a hint here: the stage decides it)
        self._sizes[offset] = len(text)
        out.rows[f"{_HELD}{offset}"] = [entry[0], entry[1], entry[2], text]
        self._release(out)  # a late event (older than what was released) goes at once
        return self._finish(offset, out)

    def on_watermark(
        self,
        offset: int,
        raw_partition: int,
        value_ms: int,
        stored: Any = None,
        sent_ms: int | None = None,
        covered: int | None = None,
    ) -> Identified:
        """A raw partition's watermark: release what every raw partition has passed. ``sent_ms``: when
        its ingest worker sent it (wall clock): how the stage tells a silent raw partition.
        ``covered``: every raw offset below it is on the broker, by the writer's path or the fast
        path's, so one read again later is a copy (with the fast path, the writer does not see every
        raw offset of the partition)."""
        if offset <= self.last:
            return self._replay(stored)
        out = Identified()
        if covered is not None and covered - 1 > self.raw_read.get(raw_partition, -1):
            self.raw_read[raw_partition] = covered - 1
        changed = value_ms > self.marks.get(raw_partition, 0)
        if changed:
            self.marks[raw_partition] = value_ms
        if sent_ms is not None and sent_ms > self.heard.get(raw_partition, -1):
            self.heard[raw_partition] = sent_ms
            changed = True
        if changed:
            heard = self.heard.get(raw_partition)
            mark = self.marks.get(raw_partition, 0)
            out.rows[f"{_MARK}{raw_partition}"] = mark if heard is None else [mark, heard]
        idle = self._idle_now()
        if idle != self._idle:
            for raw in sorted(idle - self._idle):
                log.warning(
                    "raw partition %d sent no watermark for over %.0f s (watermark_idle_s): left out of the "
                    "event-time order until it is heard again; its events count as late meanwhile",
                    raw, (self.idle_ms or 0) / 1000,
                )  # fmt: skip
            for raw in sorted(self._idle - idle):
                log.info("raw partition %d is heard again: back in the event-time order", raw)
            self._idle = idle
        low = self._release(out)
        if low is not None and low > self.released_ms:
            self.released_ms = low
            body = orjson.dumps({"r": 0, "t": low})
            out.messages += [(WATERMARK_KEY, body, p) for p in range(self.partitions)]
        return self._finish(offset, out)

    def prune(self, committed: int | None) -> dict[str, Any]:
        """Rows of kept messages no longer needed: every offset before ``committed`` (the next offset
        the group will read) can no longer be read again."""
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

    # -- internals ------------------------------------------------------------------------------
    def _release(self, out: Identified) -> int | None:
        """Release, in event-time order, the heads of the raw partitions' queues older than every
        raw partition's watermark (ties: raw partition), at most :data:`MAX_RELEASE` per message (what
        one message releases is kept in one row of the table). Returns the time before which all is
        released: the watermark, or the oldest event still held below it."""
        low = self._low()
        if low is None:
            return None
        queues = self._held
        while True:
            heads = [(q.entries[0][0], rp) for rp, q in queues.items() if q and q.entries[0][0] < low]
            if not heads:
                return self._bound(low)
            _, rp = min(heads)
            size = self._sizes.get(queues[rp].entries[0][3], 0)
            if out.released and (out.released >= MAX_RELEASE or out.published_bytes + size > RELEASE_BYTES):
                return self._bound(min(heads)[0])  # the rest with the next message (a watermark every tick)
            entry = queues[rp].popleft()
            self._sizes.pop(entry[3], None)
            out.rows[f"{_HELD}{entry[3]}"] = None
            self._release_one(entry, out)

    def _bound(self, low: int) -> int:
        """``low``, or the time of the oldest event still held when it is older (issue 26).

        A raw partition's events keep their order, so one older than the watermark can wait behind a
        newer one of its partition (event time that goes back within a partition: producers that
        merge sources). Publishing the watermark past it would make it late at its customer (no
        journey entry under ``lateness_hours``, timers fired before it): the customer's clock never
        passes an event still held."""
        for queue in self._held.values():
            oldest = queue.oldest()
            if oldest is not None and oldest < low:
                low = oldest
        return low

    def _low(self) -> int | None:
        """The minimum of the raw partitions' watermarks (all must have reported), silent ones left out."""
        if len(self.marks) < self.sources:
            return None
        idle = self._idle
        if not idle:
            return min(self.marks.values())
        active = [m for raw, m in self.marks.items() if raw not in idle]
        return min(active) if active else None

    def idle(self) -> list[int]:
        """Raw partitions left out of the minimum now (not heard from for ``idle_ms``)."""
        return sorted(self._idle)

    def _idle_now(self) -> frozenset[int]:
        if self.idle_ms is None or not self.heard:
            return frozenset()
        now = max(self.heard.values())
        return frozenset(raw for raw, at in self.heard.items() if now - at > self.idle_ms)

    def _replay(self, stored: Any) -> Identified:
        if stored is None:
            return Identified(replayed=True)
        messages = [(k.encode(), v.encode(), p) for k, v, p in stored if p != _CLAIM]
        claims = [(k.encode(), None if v is None else v.encode()) for k, v, p in stored if p == _CLAIM]
        return Identified(messages=messages, replayed=True, claims=claims)

    def _finish(self, offset: int, out: Identified) -> Identified:
        graph = self.graph
        if self._pending:
            out.rows.update(self._pending)
            self._pending = {}
        if graph is not None:
            out.rows.update(graph.changes())
        if out.released:  # (watermarks alone are not kept: the next one supersedes a lost one)
            out.rows[f"{_OUT}{offset}"] = [[k.decode(), v.decode(), p] for k, v, p in out.messages] + [
                [k.decode(), None if v is None else v.decode(), _CLAIM] for k, v in out.claims
            ]
            self._outbox.append(offset)
            while self._outbox and self._outbox[0] < offset - OUTBOX_SPAN:
                out.rows[f"{_OUT}{self._outbox.pop(0)}"] = None
        out.rows[_LAST] = [offset, {str(r): o for r, o in self.raw_read.items()}]
        self.last = offset
        return out

    def _release_one(self, entry: _Held, out: Identified) -> None:
        before = len(out.messages)
        self._release_entry(entry, out)
        out.published_bytes += sum(len(k) + len(v) for k, v, _ in out.messages[before:])

    def _release_entry(self, entry: _Held, out: Identified) -> None:
        if self.graph is None:
            self.graph = self._graph([], None)
        graph = self.graph
        event = entry[4]
        at = event.occurred_ms
        resolution = graph.resolve(event.identifiers, at)
        out.released += 1
        if resolution.erased:
            out.dropped += 1
            return
        if resolution.unknown:  # (a receipt for a customer the graph does not know: dropped, not
            out.unknown += 1  # dead-lettered — its key may be an erased customer's email)
            return
        key = resolution.customer_key
        merged = [m.from_key for m in resolution.merges]
        # Every message a raw event releases carries its order key [order time, raw partition, raw
        # offset, n] (the event's own is read from its fields, n = its merges): the customer partitions
        # apply them in that order (processor.py). Events without a raw source (tests) have none.
        ordered = None not in (event.order_ms, event.source_partition, event.source_offset)
        order = [entry[0], entry[1], entry[2]]
        for n, m in enumerate(resolution.merges):
            extra = {"ord": [*order, n]} if ordered else {}
            out.messages.append(
                (m.from_key.encode(), control("merge_out", into=key, at=entry[0], **extra), None)
            )
        out.messages.append((key.encode(), event.to_json(key, merged or None), None))
        out.merges += len(merged)
        if event.type == ERASE_EVENT:
            erasure = graph.erase(key, at)
            out.erased += 1
            for n, alias in enumerate(erasure.aliases, start=len(merged) + 1):
                extra = {"ord": [*order, n]} if ordered else {}
                out.messages.append((alias.encode(), control("erase", into=key, **extra), None))
            for token in erasure.claims:
                self._claimed.pop(token, None)
                out.claims.append((claim_key(token), None))
        elif ordered and self.claims:
            self._claim(graph.claims(event.identifiers, key), key, [*order, len(merged)], out)

    def _claim(self, tokens: list[str], key: str, order: list[int], out: Identified) -> None:
        """Claims for the fast path (:mod:`.claims`), once per token and customer (as far as this worker
        remembers: at most :data:`CLAIMS_REMEMBERED`; a claim made again changes nothing)."""
        claimed = self._claimed
        for token in tokens:
            if claimed.get(token) == key:
                continue
            claimed[token] = key
            if len(claimed) > CLAIMS_REMEMBERED:
                del claimed[next(iter(claimed))]
            out.claims.append((claim_key(token), claim_value(key, order)))
