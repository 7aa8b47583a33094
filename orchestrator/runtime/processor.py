"""One customer's message in, stored record and outputs out: the runtime's step, free of Faust.

The stored record wraps the engine's :class:`CustomerState` with what at-least-once delivery and
identity merges need::

    {"s": <state dict or null>,
     "off": {"e": <highest resolved-topic offset of an ordered message applied>,
             "h": <highest resolved-topic offset of a hand-over applied>, "t": <last timer offset>},
     "rk": {<lane>: [<raw offset>, <n>] of the last ordered message applied in that lane},
     "out": [[<source>, <offset>, [<action json>...], [<decision json>...], [[<key>, <message>]...],
              <order key or null>]...],
     "raw": {<raw partition>: <last raw offset applied>},
     "await": [<key>...], "early": {<key>: <state dict or null>}, "pend": [[<offset>, <now>, <event>]...],
     "merged": [<key>...]}

Why the offsets and the outbox: after a crash Faust's changelog (the state) can be ahead of the
committed input offsets, so messages are read again that the state already contains. Such a message
(offset at or below the last one applied for this customer) must not be applied twice, nor
swallowed: what it produced may never have reached Kafka. So the actions, decisions and forwarded
messages of each message are kept in a small per-customer outbox, and a replayed message re-sends
exactly those (same action_ids; connectors drop duplicates). The outbox keeps the last
:data:`OUTBOX_KEEP` messages that produced something. A copy of a raw event resolved again after a
crash (a new resolved offset) is recognised by its raw partition and offset and changes nothing.

Which messages were applied (docs/runtime.md, "Step (a) worked out"): the identity writer's messages
and the fast path's are *ordered*: each carries an order key ``[order time, raw partition, raw offset,
n]`` (``n``: its place among the messages one raw event released), and a customer partition applies them
in key order, which need not be the order of their resolved offsets. Each *lane* — the messages of one
raw partition by one path: the writer's (``w<p>``) or the fast path's (``f<p>``) — comes in the order of
its raw offsets (an order time never goes back within a raw partition, nor below a watermark it sent),
even when a message is late (its key below others already applied, after a partition was left out). So
an ordered message was applied when its (raw offset, n) is at or below its lane's last (``rk``), and its
outbox entry is found by its key. A copy of a raw event that comes by another key or path (resolved
again to the customer a visitor was merged into; read again by an ingest worker whose claims are behind)
is recognised by the record's raw offsets (``raw``, a merged visitor's taken once the merge is done), as
before the keys. Hand-overs
between customer partitions (``merge_in``, events forwarded by a moved record) have no key: they are
applied as they are read, so one was applied when any resolved message read after it was (its offset is
at or below ``off``'s highest). A record written before order keys (no ``rk``) is judged by its offsets,
as it was then.

Merges (docs/identity.md): the identify stage sends ``merge_out`` to the key merged away, then the
event with ``merged_from`` to the canonical key. The old key's record becomes a *moved* record
(``{"moved": <canonical key>, "exp": <ms>, ...}``) whose outbox holds the ``merge_in`` message with
its state, so a crash can send it again; it is deleted :data:`MOVED_KEEP_MS` later (by its wake-up,
once its last message is committed: :data:`MOVED_RETRY_MS`) or when the customer is erased. The
canonical key holds (``await``/``pend``) the event and every later message until each awaited
``merge_in`` has arrived (one that comes first waits in ``early``), then merges and applies what it
held, in order; wake-ups meanwhile wait too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from orchestrator.contracts import ChannelAction, CustomerEvent
from orchestrator.contracts.decision import Decision
from orchestrator.contracts.engine_event import Event
from orchestrator.core.customer import CustomerLogic, CustomerState, Outcome, Transition
from orchestrator.core.segment import SegmentChange
from orchestrator.runtime.clock import event_time
from orchestrator.runtime.identify import CONTROL_PREFIX, control
from orchestrator.runtime.record_fit import fit_record
from orchestrator.runtime.segment_sizes import changed_members, members_of

__all__ = [
    "ERASED_RETRY_MS",
    "MAX_RECORD_BYTES",
    "MOVED_KEEP_MS",
    "MOVED_RETRY_MS",
    "OUTBOX_KEEP",
    "Applied",
    "Message",
    "Processed",
    "Processor",
    "order_key",
]

MAX_RECORD_BYTES = 512 * 1024
"""Largest stored customer record: its changelog record must stay under Kafka's 1 MB message limit.
Over it, :func:`fit_record` trims what may be trimmed (counted in ``orchestrator_state_trimmed_total``);
a record still too large makes the message fail alone (dead-lettered, the state unchanged)."""
OUTBOX_KEEP = 16
"""Messages whose outputs the outbox keeps (more when one batch of the customer produced more: every
message of a batch can be read again until the batch is committed)."""
MOVED_KEEP_MS = 86_400_000
"""How long the record of a key merged away is kept (for re-sending its state after a crash)."""
MOVED_RETRY_MS = 60_000
"""A moved record past :data:`MOVED_KEEP_MS` whose last message is not yet committed looks again this
much later (partition clock): deleted before, a crash would read that message again, find no record and
apply it, and every earlier message not committed, to a new empty state."""
ERASED_RETRY_MS = 1_000
"""The same for the bare record an erasure leaves (it still names the visitor's key): looked at again a
second later (the worker commits every ``commit_interval_s``)."""
MERGED_KEEP = 64
"""Keys merged in that a customer remembers (a merge_in read twice is recognised)."""

Source = Literal["e", "t"]
Order = list[int]
"""An ordered message's key: ``[order time, raw partition, raw offset, n]`` (compared as a list)."""


@dataclass(frozen=True, slots=True)
class _Ordered:
    """An ordered message's key and lane (see the module docstring)."""

    key: Order
    lane: str
    """``w<raw partition>`` (the identity writer's) or ``f<raw partition>`` (the fast path's)."""


def _writer(key: Order | None) -> _Ordered | None:
    """An ordered message of the identity writer with this key (the per-message methods)."""
    return None if key is None else _Ordered(key, f"w{key[1]}")


def _ordered(body: dict[str, Any]) -> _Ordered | None:
    key = order_key(body)
    if key is None:
        return None
    return _Ordered(key, f"{'f' if 'via' in body else 'w'}{key[1]}")


Record = dict[str, Any]
"""A decoded stored record. While a batch applies, its ``"s"`` may hold the :class:`CustomerState`
object itself (decoded once, encoded once)."""


@dataclass(slots=True)
class Processed:
    """What the runtime writes and sends for one message."""

    record: bytes | None
    """The new stored record (the per-message methods; :meth:`Processor.apply` gives one per batch);
    None deletes the customer (erasure)."""
    actions: list[tuple[str, bytes]] = field(default_factory=list)
    """(channel, action json) to send, in order."""
    decisions: list[bytes] = field(default_factory=list)
    """The policy's decisions (json) for the decisions topic."""
    decision_models: list[Decision] = field(default_factory=list)
    """The same decisions as models (for metrics); empty on a replay."""
    transitions: list[Transition] = field(default_factory=list)
    next_wakeup_ms: int | None = None
    """The customer's next wake-up after this message (the per-message methods; a batch gives one in
    :attr:`Applied.next_wakeup_ms`); messages that change nothing give it too."""
    replayed: bool = False
    duplicate: bool = False
    changed: bool = True
    forwards: list[tuple[bytes, bytes]] = field(default_factory=list)
    """(key, message) for the resolved topic: a merge's hand-over, an event for a key merged away."""
    merged: int = 0
    """Merges completed by this message."""
    trimmed: list[str] = field(default_factory=list)
    """What :func:`fit_record` trimmed to keep the record under its limit (outbox, history, seen)."""
    event_type: str | None = None
    """The event's type (an event message), for metrics."""
    timing: str | None = None
    """``late`` or ``future``: an event not applied at its own time (:attr:`Outcome.timing`)."""
    occurred_ms: int | None = None
    """The event's own time (an event message)."""
    erased: bool = False
    """A fast-path event for a customer with no record here (erased while ingest's claims said
    otherwise): dropped, as the identity graph drops an erased customer's events."""
    error: Exception | None = None
    """The message could not be applied (:meth:`Processor.apply`): it changed nothing; set it aside."""
    segments: list[SegmentChange] = field(default_factory=list)
    """The segment entries and exits this message made (for the counters; the sizes come from the
    records: :attr:`Applied.entered`)."""
    campaigns: list[tuple[str, int, str]] = field(default_factory=list)
    """(campaign, occurrence, outcome) of this message (:attr:`Outcome.campaigns`): the partition's
    campaign counts (:mod:`.releases`) and the metrics."""


@dataclass(slots=True)
class Message:
    """One message of a customer for :meth:`Processor.apply`: a resolved-topic record (an event or a
    hand-over) or a wake-up."""

    source: Source
    """``e``: the resolved topic; ``t``: the timers topic."""
    offset: int
    value: bytes | None
    """The resolved-topic value (None for a wake-up)."""
    now_ms: int
    """An event: its partition's clock (the event applies at its own time, never before the clock);
    a wake-up: the time it fires at."""
    wall_ms: int | None = None
    """An event: the wall clock when read (its time is clamped to it, plus skew); None: no clamp."""
    body: Any = None
    """The value decoded, when the reader decoded it already (for its order key); None: decoded here."""

    @classmethod
    def resolved(
        cls, offset: int, value: bytes, clock_ms: int, wall_ms: int | None = None, body: Any = None
    ) -> Message:
        return cls("e", offset, value, clock_ms, wall_ms, body)

    @classmethod
    def wakeup(cls, offset: int, now_ms: int) -> Message:
        return cls("t", offset, None, now_ms)


@dataclass(slots=True)
class Applied:
    """What :meth:`Processor.apply` gives for one customer's batch."""

    record: bytes | None
    """The record to store (None: delete it) when :attr:`changed`."""
    changed: bool
    touched: bool
    """A message changed the record, was read again or was a duplicate: re-assert the wake-up."""
    next_wakeup_ms: int | None
    done: list[Processed]
    """What each message produced, in order (``trimmed``: what keeping the record in bounds cost)."""
    entered: tuple[str, ...] = ()
    """Segments the customer is a member of after the batch and was not before (:mod:`.segment_sizes`)."""
    left: tuple[str, ...] = ()
    """Segments it was a member of before the batch and is not after (erased or merged away: all)."""


@dataclass(slots=True)
class _Step:
    """What running the logic on a record produced, before it is stored."""

    state: CustomerState | None
    actions: list[ChannelAction] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    forwards: list[tuple[bytes, bytes]] = field(default_factory=list)
    merged: int = 0
    timing: str | None = None
    segments: list[SegmentChange] = field(default_factory=list)
    campaigns: list[tuple[str, int, str]] = field(default_factory=list)

    def take(self, outcome: Outcome) -> None:
        self.state = outcome.state
        self.timing = outcome.timing or self.timing
        self.actions += outcome.actions
        self.decisions += outcome.decisions
        self.transitions += outcome.transitions
        self.segments += outcome.segments
        self.campaigns += outcome.campaigns


_NONE: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Box:
    """One customer's record while messages apply to it."""

    record: Record | None
    strict: bool = False
    """The last stored message was an event (its record may not be trimmed below its outbox)."""
    added: int = 0
    """Outbox entries added since the record was read (all are kept)."""
    committed: Mapping[str, int] | None = None
    """Per source (``e``, ``t``), the committed offset of the customer's partition: outbox entries
    below it can never be read again, so they are dropped when the record is written."""


class _OneByOne(Exception):
    """The batch must be applied again message by message (a message failed, or the record is over
    its limit): each message then gets its own verdict."""


def _still_read_again(record: Record, committed: Mapping[str, int] | None) -> bool:
    """Whether a resolved-topic message ``record`` has taken may still be read again: the last one it
    applied (``off``) or took as a moved record (``hw``) is not below the committed offset (unknown
    commits: the per-message methods and tests, which never read a message again, say no)."""
    if committed is None:
        return False
    off = record.get("off", {})
    last = max(int(off.get("e", -1)), int(off.get("h", -1)), int(record.get("hw", -1)))
    return last >= 0 and committed.get("e", -1) <= last


def _seen_by_moved(box: _Box, offset: int, done: Processed) -> Processed:
    """A message a moved record took without applying it (a copy, a forward): its offset raises the
    record's high-water (``hw``), so the record outlives it until it is committed
    (:func:`_still_read_again`); otherwise ``done`` as is."""
    record = box.record
    if record is None or "moved" not in record or offset <= int(record.get("hw", -1)):
        return done
    record["hw"] = offset
    done.changed = True
    return done


class Processor:
    """Applies resolved events, timer wake-ups and merge hand-overs to stored records through
    :class:`CustomerLogic`."""

    def __init__(self, logic: CustomerLogic, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self.logic = logic
        self.max_record_bytes = max_record_bytes

    @staticmethod
    def decode(raw: bytes | None) -> Record | None:
        return None if raw is None else orjson.loads(raw)

    def state_of(self, raw: bytes | None) -> CustomerState | None:
        record = self.decode(raw)
        if record is None or record.get("s") is None:
            return None
        return CustomerState.from_dict(record["s"])

    # -- batches --------------------------------------------------------------------------------
    def apply(
        self,
        customer: str,
        raw: bytes | None,
        messages: list[Message],
        committed: Mapping[str, int] | None = None,
    ) -> Applied:
        """Apply one customer's messages, in order, to its stored record ``raw``: the record is read
        once and written once. A message that fails (``Processed.error``) changes nothing and the
        others apply as if it had not been there; a record over its limit is judged message by
        message (as :meth:`on_event` does), so the result never depends on how messages were batched.
        ``committed``: per source (``e`` resolved, ``t`` timers), the offset the group has committed
        on the customer's partition; outbox entries below it are dropped (they cannot be read again)."""
        try:
            return self._together(customer, raw, messages, committed)
        except _OneByOne:
            return self._one_by_one(customer, raw, messages, committed)

    def _together(
        self, customer: str, raw: bytes | None, messages: list[Message], committed: Mapping[str, int] | None
    ) -> Applied:
        box = _Box(self.decode(raw), committed=committed)
        before = members_of(box.record)
        done: list[Processed] = []
        changed = touched = False
        try:
            for message in messages:
                one = self._dispatch(customer, box, message)
                done.append(one)
                changed = changed or one.changed
                touched = touched or one.changed or one.replayed or one.duplicate
        except Exception as exc:
            raise _OneByOne from exc
        record = box.record
        if not changed:
            return Applied(raw, False, touched, self._wake(record) if record is not None else None, done)
        if record is None:
            return Applied(None, True, True, None, done, *changed_members(before, _NONE))
        wake = self._wake(record)
        after = members_of(record)
        data = self._encode(record)
        if len(data) > self.max_record_bytes:
            raise _OneByOne
        return Applied(data, True, True, wake, done, *changed_members(before, after))

    def _one_by_one(
        self,
        customer: str,
        raw: bytes | None,
        messages: list[Message],
        committed: Mapping[str, int] | None = None,
    ) -> Applied:
        done: list[Processed] = []
        changed = touched = False
        before = members_of(self.decode(raw)) if raw is not None else _NONE
        new = raw is None  # (a customer without a record before this batch)
        for message in messages:
            box = _Box(self.decode(raw), committed=committed)
            if message.body is not None:  # (decoded again: the failed attempt may have used it)
                message = replace(message, body=None)
            try:
                one = self._dispatch(customer, box, message)
                if one.changed:
                    one.record, one.trimmed = self._store_box(box)
            except Exception as exc:  # this message alone
                done.append(Processed(record=raw, changed=False, error=exc))
                value = message.value
                if new and raw is None and value is not None and not value.startswith(CONTROL_PREFIX):
                    # a new customer's first event failed: keep an empty record all the same, so that
                    # the fast path (which drops events of customers without one) takes its next ones
                    raw = orjson.dumps({"s": None, "off": {}, "out": []})
                    changed = True
                continue
            if one.changed:
                raw = one.record
                new = False  # (deleted by this batch, an erasure: no empty record for it)
            changed = changed or one.changed
            touched = touched or one.changed or one.replayed or one.duplicate
            done.append(one)
        record = self.decode(raw)
        wake = self._wake(record) if record is not None else None
        return Applied(raw, changed, touched, wake, done, *changed_members(before, members_of(record)))

    def _dispatch(self, customer: str, box: _Box, message: Message) -> Processed:
        if message.source == "t":
            return self._wakeup(customer, box, message.offset, message.now_ms)
        value = message.value
        assert value is not None
        body = orjson.loads(value) if message.body is None else message.body
        if value.startswith(CONTROL_PREFIX):
            return self._control(customer, box, message.offset, body)
        if type(body) is not dict:
            raise ValueError("not a resolved event: not a JSON object")
        event = Event.trusted(body["event"]) if type(body.get("event")) is dict else None
        if event is None:
            raise ValueError("not a resolved event: no event")
        occurred = event.occurred_ms
        at = occurred if message.wall_ms is None else event_time(occurred, message.wall_ms)
        sp, so = body.get("source_partition"), body.get("source_offset")
        origin = (int(sp), int(so)) if sp is not None and so is not None else None
        merged_from = body.get("merged_from")
        order = _ordered(body)
        if "via" in body and box.record is None:
            # The fast path sends only a known customer's events, after the message that made it known
            # (the order): no record means it was erased since (docs/runtime.md, the fast path).
            done = Processed(record=None, changed=False, erased=True)
            done.event_type = event.type
            return done
        done = self._event(
            customer, box, event, message.offset, max(at, message.now_ms), origin, merged_from, order
        )
        done.event_type = event.type
        done.occurred_ms = occurred
        return done

    def _control(self, key: str, box: _Box, offset: int, body: dict[str, Any]) -> Processed:
        """A control message of the identify stage (``merge_out``, ``erase``: ordered, with their key
        ``ord``) or of another customer's agent (``merge_in``; docs/identity.md)."""
        kind = body["ctl"]
        order = _ordered(body)
        if kind == "merge_out":
            return self._merge_out(key, box, offset, str(body["into"]), int(body["at"]), order)
        if kind == "merge_in":
            at = body.get("at")
            return self._merge_in(
                key,
                box,
                offset,
                str(body["key"]),
                body["s"],
                None if at is None else int(at),
                body.get("raw"),
            )
        if kind == "erase":
            return self._erase(box, offset)
        raise ValueError(f"unknown control message {kind!r}")

    # -- one message (the stored record in, the stored record out) ------------------------------
    def on_event(
        self,
        customer: str,
        raw: bytes | None,
        event: Event | CustomerEvent,
        offset: int,
        now_ms: int,
        source: tuple[int, int] | None = None,
        merged_from: list[str] | None = None,
        order: Order | None = None,
    ) -> Processed:
        """Apply one resolved event. ``source`` is its (raw partition, raw offset): after a crash the
        resolution stage reads raw events again and republishes them at new offsets; such a copy is
        recognised here, whatever its event time, and changes nothing. ``merged_from``: the keys whose
        state must arrive (merge_in) before this event is applied. ``order``: its order key (an ordered
        message; None: a hand-over)."""
        box = _Box(self.decode(raw))
        ev = event if type(event) is Event else Event.of(event)  # type: ignore[arg-type]
        return self._finish(
            raw, box, self._event(customer, box, ev, offset, now_ms, source, merged_from, _writer(order))
        )

    def on_wakeup(self, customer: str, raw: bytes | None, offset: int, now_ms: int) -> Processed:
        box = _Box(self.decode(raw))
        return self._finish(raw, box, self._wakeup(customer, box, offset, now_ms))

    def on_merge_out(
        self,
        customer: str,
        raw: bytes | None,
        offset: int,
        into: str,
        at_ms: int,
        order: Order | None = None,
    ) -> Processed:
        """``customer`` was merged into ``into``: fire its timers due before the merge's time (as
        simulate does), then send its state over and keep a moved record. Held, like an event, while
        the customer itself waits for a merge."""
        box = _Box(self.decode(raw))
        return self._finish(raw, box, self._merge_out(customer, box, offset, into, at_ms, _writer(order)))

    def on_merge_in(
        self,
        customer: str,
        raw: bytes | None,
        offset: int,
        key: str,
        state: dict[str, Any] | None,
        at_ms: int | None = None,
        raw_read: dict[str, int] | None = None,
    ) -> Processed:
        """The state of ``key``, merged into ``customer``, has arrived, with the raw offsets ``key``
        had applied (copies of those records are then recognised here too; every later record of a
        raw partition has a higher offset, so taking the highest per partition is safe)."""
        box = _Box(self.decode(raw))
        return self._finish(raw, box, self._merge_in(customer, box, offset, key, state, at_ms, raw_read))

    def on_erase(self, raw: bytes | None, offset: int) -> Processed:
        """The customer this key was merged into was erased: the moved record goes too."""
        box = _Box(self.decode(raw))
        return self._finish(raw, box, self._erase(box))

    def _finish(self, raw: bytes | None, box: _Box, done: Processed) -> Processed:
        if done.changed:
            if box.record is not None:
                done.next_wakeup_ms = self._wake(box.record)
            done.record, done.trimmed = self._store_box(box)
        else:
            done.record = raw
        return done

    def _store_box(self, box: _Box) -> tuple[bytes | None, list[str]]:
        """The record's bytes within its limit (see :func:`fit_record`), None when deleted."""
        record = box.record
        if record is None:
            return None, []
        data = self._encode(record)
        if len(data) > self.max_record_bytes:
            return fit_record(record, self.max_record_bytes, strict=box.strict)
        return data, []

    @staticmethod
    def _encode(record: Record) -> bytes:
        state = record.get("s")
        if type(state) is CustomerState:
            record["s"] = state.to_dict()
        return orjson.dumps(record)

    # -- the steps ------------------------------------------------------------------------------
    def _event(
        self,
        customer: str,
        box: _Box,
        event: Event,
        offset: int,
        now_ms: int,
        source: tuple[int, int] | None,
        merged_from: list[str] | None,
        order: _Ordered | None,
    ) -> Processed:
        record = box.record
        if record is not None and _applied(record, offset, order):
            # This very message read again (its offset was not committed before a crash), or a copy
            # of it (the writer sent it again): re-send what it produced.
            return self._replay(record, "e", offset, order)
        read: dict[str, int] = record.get("raw", {}) if record is not None else {}
        if source is not None and read.get(str(source[0]), -1) >= source[1]:
            # a copy of a raw record applied already (here, or before this key was merged away)
            wake = self._wake(record) if record is not None else None
            done = Processed(record=None, duplicate=True, changed=False, next_wakeup_ms=wake)
            return _seen_by_moved(box, offset, done)
        if record is not None and record.get("erased"):
            # (a copy in flight for a visitor whose customer was erased: dropped, as the identify
            # stage drops an event of an erased identifier)
            done = Processed(record=None, duplicate=True, changed=False, next_wakeup_ms=0)
            return _seen_by_moved(box, offset, done)
        if record is not None and "moved" in record:
            # A key merged away (an event already on its way when the merge happened): on to the
            # canonical key.
            into = str(record["moved"])
            # (a hand-over: no order time, so no order key — it is applied when it arrives)
            copy: dict[str, Any] = {"customer_key": into, "event": event.to_dict()}
            if source is not None:
                copy["source_partition"], copy["source_offset"] = source
            forward = [(into.encode(), orjson.dumps(copy))]
            done = Processed(record=None, changed=False, next_wakeup_ms=record["exp"], forwards=forward)
            return _seen_by_moved(box, offset, done)
        record = record if record is not None else {"s": None, "off": {}, "out": []}
        waiting = list(record.get("await", []))
        for key in merged_from or ():
            if key not in record.get("merged", []) and key not in waiting:
                waiting.append(key)
        if waiting:
            record["await"] = waiting
            pend = record.setdefault("pend", [])
            pend.append([offset, now_ms, event.to_dict()])
            step = self._settle(customer, record)
        else:
            step = _Step(self._state(record))
            outcome = self.logic.on_event(customer, step.state, event, now_ms)
            if outcome.duplicate:
                return Processed(
                    record=None, duplicate=True, changed=False, next_wakeup_ms=outcome.next_wakeup_ms
                )
            step.take(outcome)
        return self._store(box, record, "e", offset, step, source, strict=True, order=order)

    def _wakeup(self, customer: str, box: _Box, offset: int, now_ms: int) -> Processed:
        record = box.record
        if record is None:
            return Processed(record=None, changed=False)
        if offset <= record["off"].get("t", -1):
            return self._replay(record, "t", offset)
        if "moved" in record or (record.get("s") is None and "exp" in record and not record.get("await")):
            if now_ms < record["exp"]:
                return Processed(record=None, changed=False, next_wakeup_ms=record["exp"])
            if _still_read_again(record, box.committed):
                # Not yet: the messages it covers can still be read again after a crash, and would
                # then find no record and apply to a new, empty state (found by the policy kill test).
                record["exp"] = now_ms + (ERASED_RETRY_MS if record.get("erased") else MOVED_RETRY_MS)
                record["off"]["t"] = offset
                return Processed(record=None, next_wakeup_ms=record["exp"])
            box.record = None
            return Processed(record=None)  # a moved record, or a merged state nobody awaited
        if record.get("await") or record.get("s") is None:
            # Held for a merge: its timers fire once the merge is done (the next wake-up is set then).
            return Processed(record=None, changed=False)
        step = _Step(self._state(record))
        step.take(self.logic.on_wakeup(customer, step.state, now_ms))
        return self._store(box, record, "t", offset, step)

    def _merge_out(
        self, customer: str, box: _Box, offset: int, into: str, at_ms: int, order: _Ordered | None
    ) -> Processed:
        record = box.record
        if record is not None and _applied(record, offset, order):
            return self._replay(record, "e", offset, order)
        record = record if record is not None else {"s": None, "off": {}, "out": []}
        step = _Step(None if "moved" in record else self._state(record))
        if record.get("await"):
            record["pend"].append([offset, "out", into, at_ms])
        else:
            self._move_out(customer, record, step, into, at_ms)
        return self._store(box, record, "e", offset, step, order=order)

    def _merge_in(
        self,
        customer: str,
        box: _Box,
        offset: int,
        key: str,
        state: dict[str, Any] | None,
        at_ms: int | None,
        raw_read: dict[str, int] | None,
    ) -> Processed:
        record = box.record
        if record is not None and _applied(record, offset, None):
            return self._replay(record, "e", offset)
        if record is None:
            # Before the event that awaits it (rare), or for a customer erased meanwhile: kept only
            # until MOVED_KEEP_MS after the merge unless that event comes.
            record = {"s": None, "off": {}, "out": []}
            if at_ms is not None:
                record["exp"] = at_ms + MOVED_KEEP_MS
        if record.get("erased"):
            done = Processed(record=None, duplicate=True, changed=False, next_wakeup_ms=0)
            return _seen_by_moved(box, offset, done)
        if "moved" in record:  # (not expected: a merge is held until the states it awaits arrived)
            body = control("merge_in", key=key, s=state, at=at_ms, raw=raw_read or {})
            done = Processed(
                record=None,
                changed=False,
                next_wakeup_ms=record["exp"],
                forwards=[(str(record["moved"]).encode(), body)],
            )
            return _seen_by_moved(box, offset, done)
        if key in record.get("merged", []) or key in record.get("early", {}):
            return Processed(record=None, duplicate=True, changed=False, next_wakeup_ms=self._wake(record))
        record.setdefault("early", {})[key] = state
        # its raw offsets count once the merge is done (:meth:`_settle`): until then this customer may
        # still hold an earlier message of the same raw partition, which is no copy
        record.setdefault("early_raw", {})[key] = raw_read or {}
        step = self._settle(customer, record)
        return self._store(box, record, "e", offset, step)

    @staticmethod
    def _erase(box: _Box, offset: int | None = None) -> Processed:
        record = box.record
        if record is None:
            return Processed(record=None, changed=False)
        if "moved" in record and offset is not None:
            record["hw"] = max(int(record.get("hw", -1)), offset)
            if _still_read_again(record, box.committed):
                # Its earlier messages can still be read again after a crash: they must find a record
                # (and replay nothing), not build the erased visitor's state anew. Kept bare — no
                # outbox, no raw offsets, not even the customer's key — until the retry loop of its
                # wake-up deletes it.
                box.record = {
                    "moved": "",
                    "erased": True,
                    "exp": 0,
                    "off": record["off"],
                    "out": [],
                    "hw": record["hw"],
                }
                if "rk" in record:
                    box.record["rk"] = record["rk"]
                return Processed(record=None, next_wakeup_ms=0)
        box.record = None
        left = [SegmentChange(segment, False, 0) for segment in sorted(members_of(record))]
        return Processed(record=None, segments=left)

    # -- internals ------------------------------------------------------------------------------
    @staticmethod
    def _state(record: Record) -> CustomerState | None:
        """The record's state, decoded once (the object then stands in the record until encoded)."""
        data = record.get("s")
        if data is None or type(data) is CustomerState:
            return data
        state = CustomerState.from_dict(data, copy=False)
        record["s"] = state
        return state

    def _wake(self, record: Record) -> int | None:
        if "moved" in record:
            return int(record["exp"])
        data = record.get("s")
        if data is None and "exp" in record and not record.get("await"):
            return int(record["exp"])
        if data is None or record.get("await"):
            return None
        state = self._state(record)
        return None if state is None else self.logic.next_wakeup_ms(state)

    def _settle(self, customer: str, record: Record) -> _Step:
        """Once every awaited state is there: fire the customer's timers due before the merge, merge
        in order, then apply the events held, in order."""
        state = self._state(record)
        step = _Step(state)
        waiting: list[str] = record.get("await", [])
        early: dict[str, Any] = record.get("early", {})
        if not waiting or any(k not in early for k in waiting):
            return step
        pend: list[Any] = record.pop("pend", [])
        now = pend[0][1] if pend else (state.clock_ms if state is not None else 0)
        at = min(now, Event.trusted(pend[0][2]).occurred_ms) if pend else now
        if step.state is not None:
            step.take(self.logic.on_wakeup(customer, step.state, at - 1))
        merged: list[str] = record.setdefault("merged", [])
        early_raw: dict[str, Any] = record.pop("early_raw", {})
        read = record.setdefault("raw", {})
        for key in waiting:
            other = early.pop(key)
            for partition, last in early_raw.pop(key, {}).items():
                read[partition] = max(read.get(partition, -1), int(last))
            step.take(
                self.logic.on_merge(
                    customer, step.state, None if other is None else CustomerState.from_dict(other), now
                )
            )
            merged.append(key)
            step.merged += 1
        del merged[:-MERGED_KEEP]
        record.pop("await", None)
        record.pop("exp", None)
        if not early:
            record.pop("early", None)
        elif early_raw:  # (states that came for another merge, still awaited)
            record["early_raw"] = early_raw
        for entry in pend:
            if entry[1] == "out":  # this customer was merged away in the meantime
                self._move_out(customer, record, step, str(entry[2]), int(entry[3]))
                break  # nothing comes after a merge-out: later messages go to the canonical key
            step.take(self.logic.on_event(customer, step.state, Event.trusted(entry[2]), int(entry[1])))
        return step

    def _move_out(self, customer: str, record: Record, step: _Step, into: str, at_ms: int) -> None:
        if step.state is not None:
            step.take(self.logic.on_wakeup(customer, step.state, at_ms - 1))
        state = None if step.state is None else step.state.to_dict()
        read = record.get("raw", {})
        body = control("merge_in", key=customer, s=state, at=at_ms, raw=read)
        step.forwards.append((into.encode(), body))
        step.state = None
        for name in ("s", "await", "early", "early_raw", "pend", "merged"):
            record.pop(name, None)
        record["moved"] = into
        record["exp"] = at_ms + MOVED_KEEP_MS

    def _store(
        self,
        box: _Box,
        record: Record,
        source: Source,
        offset: int,
        step: _Step,
        raw_source: tuple[int, int] | None = None,
        *,
        strict: bool = False,
        order: _Ordered | None = None,
    ) -> Processed:
        """``record`` after ``step``, kept in ``box`` (encoded by the caller). ``strict`` (an event): a
        record that cannot be trimmed to its limit refuses the event; otherwise (wake-ups, hand-overs,
        which must never be refused or a customer would wait for ever) more may go: see
        :func:`fit_record`."""
        actions: list[tuple[str, bytes]] = [(a.channel, a.to_json()) for a in step.actions]
        decisions = [d.to_json() for d in step.decisions]
        out = Processed(
            record=None,
            actions=actions,
            decisions=decisions,
            decision_models=list(step.decisions),
            transitions=step.transitions,
            forwards=step.forwards,
            merged=step.merged,
            timing=step.timing,
            segments=step.segments,
            campaigns=step.campaigns,
        )
        box.strict = strict
        held = bool(record.get("await") or record.get("early") or record.get("pend"))
        if step.state is None and "moved" not in record and not held:
            box.record = None
            return out  # erased
        if "moved" not in record:
            record["s"] = step.state
        off = record["off"]
        if source == "t":
            off["t"] = offset
        elif order is None:  # a hand-over (or a message of a release before order keys)
            off["h"] = max(int(off.get("h", -1)), offset)
        else:
            off["e"] = max(int(off.get("e", -1)), offset)
            record.setdefault("rk", {})[order.lane] = order.key[2:4]
        if actions or decisions or step.forwards:
            outbox: list[Any] = record["out"]
            outbox.append(
                [
                    source,
                    offset,
                    [orjson.Fragment(a) for _, a in actions],
                    [orjson.Fragment(d) for d in decisions],
                    [[k.decode(), v.decode()] for k, v in step.forwards],
                    None if order is None else order.key,
                ]
            )
            box.added += 1
            del outbox[: -max(OUTBOX_KEEP, box.added)]
        committed = box.committed
        if committed is not None and record["out"]:
            record["out"] = [e for e in record["out"] if e[1] >= committed.get(e[0], -1)]
        if raw_source is not None:
            read = record.setdefault("raw", {})
            read[str(raw_source[0])] = max(read.get(str(raw_source[0]), -1), raw_source[1])
        box.record = record
        return out

    def _replay(
        self, record: Record, source: Source, offset: int, order: _Ordered | None = None
    ) -> Processed:
        """What the message at ``offset`` (an ordered one: with key ``order``) produced, sent again."""
        actions: list[tuple[str, bytes]] = []
        decisions: list[bytes] = []
        forwards: list[tuple[bytes, bytes]] = []
        place = None if order is None or "rk" not in record else order.key[1:]
        for entry in record["out"]:
            if (
                (len(entry) > 5 and entry[5] is not None and entry[5][1:] == place)
                if place is not None
                else (entry[0] == source and entry[1] == offset)
            ):
                for item in entry[2]:
                    data = _json(item)
                    actions.append((orjson.loads(data)["channel"], data))
                decisions += [_json(item) for item in (entry[3] if len(entry) > 3 else [])]
                forwards += [(k.encode(), v.encode()) for k, v in (entry[4] if len(entry) > 4 else [])]
        return Processed(
            record=None,
            actions=actions,
            decisions=decisions,
            forwards=forwards,
            replayed=True,
            changed=False,
            next_wakeup_ms=self._wake(record),
        )


def order_key(body: dict[str, Any]) -> Order | None:
    """The order key of a resolved-topic message (its decoded JSON): a control message's ``ord``; an
    event's ``[order_ms, source_partition, source_offset, number of merges]`` (the merge_outs its release
    sent come first); None for a hand-over or an event without a raw source."""
    if "ctl" in body:
        order = body.get("ord")
        return None if order is None else [int(x) for x in order]
    order_ms, sp, so = body.get("order_ms"), body.get("source_partition"), body.get("source_offset")
    if order_ms is None or sp is None or so is None:
        return None
    return [int(order_ms), int(sp), int(so), len(body.get("merged_from") or ())]


def _applied(record: Record, offset: int, order: _Ordered | None) -> bool:
    """Whether the resolved message at ``offset`` (with key ``order``, an ordered message; None, a
    hand-over) was applied to ``record`` already (see the module's docstring)."""
    off = record["off"]
    lanes = record.get("rk")
    if order is not None and lanes is not None:
        last = lanes.get(order.lane)
        return last is not None and bool(order.key[2:4] <= last)
    if order is not None:  # (a record of a release before order keys)
        return offset <= int(off.get("e", -1))
    return offset <= max(int(off.get("e", -1)), int(off.get("h", -1)))


def _json(item: Any) -> bytes:
    """An outbox item as the bytes first sent: a string (records of earlier releases) or the object it
    was read back as (orjson writes it again byte for byte). A fragment not stored yet (the same
    offset twice in one batch, which the reading never delivers) is judged message by message."""
    if type(item) is str:
        return item.encode()
    if type(item) is orjson.Fragment:
        raise _OneByOne
    return orjson.dumps(item)
