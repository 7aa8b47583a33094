"""One customer's message in, stored record and outputs out: the runtime's step, free of Faust.

The stored record wraps the engine's :class:`CustomerState` with what at-least-once delivery needs::

    {"s": <state dict>, "off": {"e": <last event offset>, "t": <last timer offset>},
     "out": [[<source>, <offset>, [<action json>, ...]], ...]}

Why: after a crash Faust's changelog (the state) can be ahead of the committed input offsets, so
messages are read again that the state already contains. Such a message (offset at or below the
last one applied for this customer) must not be applied twice, nor swallowed: its actions may never
have reached Kafka. So the actions each message produced are kept in a small per-customer outbox,
and a replayed message re-sends exactly those (same action_ids; connectors drop duplicates).
The outbox keeps the last :data:`OUTBOX_KEEP` messages that produced actions or policy decisions
(decisions are re-sent too, with their deterministic ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from orchestrator.contracts import ChannelAction, CustomerEvent
from orchestrator.contracts.decision import Decision
from orchestrator.core.customer import CustomerLogic, CustomerState, Outcome, Transition

__all__ = ["OUTBOX_KEEP", "Processed", "Processor"]

OUTBOX_KEEP = 16

Source = Literal["e", "t"]


@dataclass(slots=True)
class Processed:
    """What the runtime writes and sends for one message."""

    record: bytes | None
    """The new stored record; None deletes the customer (erasure)."""
    actions: list[tuple[str, bytes]] = field(default_factory=list)
    """(channel, action json) to send, in order."""
    decisions: list[bytes] = field(default_factory=list)
    """The policy's decisions (json) for the decisions topic."""
    decision_models: list[Decision] = field(default_factory=list)
    """The same decisions as models (for metrics); empty on a replay."""
    transitions: list[Transition] = field(default_factory=list)
    next_wakeup_ms: int | None = None
    replayed: bool = False
    duplicate: bool = False
    changed: bool = True


def _encode_actions(actions: list[ChannelAction]) -> list[tuple[str, bytes]]:
    return [(a.channel, a.to_json()) for a in actions]


class Processor:
    """Applies resolved events and timer wake-ups to stored records through :class:`CustomerLogic`."""

    def __init__(self, logic: CustomerLogic) -> None:
        self.logic = logic

    @staticmethod
    def decode(raw: bytes | None) -> dict[str, Any] | None:
        return None if raw is None else orjson.loads(raw)

    def state_of(self, raw: bytes | None) -> CustomerState | None:
        record = self.decode(raw)
        return None if record is None else CustomerState.from_dict(record["s"])

    def on_event(
        self,
        customer: str,
        raw: bytes | None,
        event: CustomerEvent,
        offset: int,
        now_ms: int,
        source: tuple[int, int] | None = None,
    ) -> Processed:
        """Apply one resolved event. ``source`` is its (raw partition, raw offset): after a crash the
        resolution stage reads raw events again and republishes them at new offsets; such a copy is
        recognised here, whatever its event time, and changes nothing."""
        record = self.decode(raw)
        read: dict[str, int] = record.get("raw", {}) if record is not None else {}
        if source is not None and read.get(str(source[0]), -1) >= source[1]:
            state = self.state_of(raw)
            wake = state.next_wakeup_ms() if state is not None else None
            return Processed(record=raw, duplicate=True, changed=False, next_wakeup_ms=wake)
        return self._run(
            "e", customer, raw, offset, lambda s: self.logic.on_event(customer, s, event, now_ms), source
        )

    def on_wakeup(self, customer: str, raw: bytes | None, offset: int, now_ms: int) -> Processed:
        return self._run("t", customer, raw, offset, lambda s: self.logic.on_wakeup(customer, s, now_ms))

    def _run(
        self,
        source: Source,
        customer: str,
        raw: bytes | None,
        offset: int,
        step: Any,
        raw_source: tuple[int, int] | None = None,
    ) -> Processed:
        record = self.decode(raw)
        if record is not None:
            last = record["off"].get(source, -1)
            if offset <= last:
                return self._replay(record, source, offset)
        state = None if record is None else CustomerState.from_dict(record["s"])
        if state is None and source == "t":
            return Processed(record=raw, changed=False)
        outcome: Outcome = step(state)
        if outcome.duplicate:
            return Processed(record=raw, duplicate=True, changed=False, next_wakeup_ms=outcome.next_wakeup_ms)
        decisions = [d.to_json() for d in outcome.decisions]
        if outcome.state is None:
            return Processed(
                record=None,
                actions=_encode_actions(outcome.actions),
                decisions=decisions,
                decision_models=list(outcome.decisions),
                transitions=outcome.transitions,
            )
        actions = _encode_actions(outcome.actions)
        offsets = dict(record["off"]) if record is not None else {}
        offsets[source] = offset
        outbox: list[Any] = list(record["out"]) if record is not None else []
        if actions or decisions:
            outbox.append([source, offset, [a.decode() for _, a in actions], [d.decode() for d in decisions]])
            del outbox[:-OUTBOX_KEEP]
        new = {"s": outcome.state.to_dict(), "off": offsets, "out": outbox}
        read = dict(record.get("raw", {})) if record is not None else {}
        if raw_source is not None:
            read[str(raw_source[0])] = max(read.get(str(raw_source[0]), -1), raw_source[1])
        if read:
            new["raw"] = read
        return Processed(
            record=orjson.dumps(new),
            actions=actions,
            decisions=decisions,
            decision_models=list(outcome.decisions),
            transitions=outcome.transitions,
            next_wakeup_ms=outcome.next_wakeup_ms,
        )

    @staticmethod
    def _replay(record: dict[str, Any], source: Source, offset: int) -> Processed:
        actions: list[tuple[str, bytes]] = []
        decisions: list[bytes] = []
        for entry in record["out"]:
            if entry[0] == source and entry[1] == offset:
                for text in entry[2]:
                    data = text.encode()
                    actions.append((orjson.loads(data)["channel"], data))
                decisions += [text.encode() for text in (entry[3] if len(entry) > 3 else [])]
        state = CustomerState.from_dict(record["s"])
        return Processed(
            record=None,
            actions=actions,
            decisions=decisions,
            replayed=True,
            changed=False,
            next_wakeup_ms=state.next_wakeup_ms(),
        )
