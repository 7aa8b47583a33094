"""One customer's engine state: profile, journey instances, timers, entry history, seen event ids.

Serialised with :meth:`CustomerState.to_dict` to compact JSON-compatible dicts (short keys, no
``None`` values) for the state stores; :meth:`CustomerState.from_dict` reads them back.
A timer is not stored apart: each instance has at most one, its ``due_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.profile import Profile

__all__ = ["CustomerState", "Instance"]


@dataclass(slots=True)
class Instance:
    """One customer's passage through one journey (one entry)."""

    journey: str
    version: int
    entry_seq: int
    step: str
    entered_ms: int
    due_ms: int | None = None
    """When this instance's pending timer fires (wait end, timeout, holdout window), if any."""
    held: bool = False
    """Parked in a holdout group: no steps, only goals, exits and the holdout window."""
    visits: dict[str, int] = field(default_factory=dict)
    """How many times each step was visited (the visit sequence of action ids)."""
    sends: dict[str, str] = field(default_factory=dict)
    """Send step id -> action_id of its latest send (what ``until_event.of`` matches)."""
    splits: dict[str, str] = field(default_factory=dict)
    """Split step id -> branch name this customer was put in."""
    entry_event: dict[str, Any] = field(default_factory=dict)
    """The event that started the instance (type, id, at_ms, properties): ``event`` for timer steps."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "j": self.journey,
            "v": self.version,
            "e": self.entry_seq,
            "s": self.step,
            "at": self.entered_ms,
        }
        if self.due_ms is not None:
            out["due"] = self.due_ms
        if self.held:
            out["h"] = 1
        if self.visits:
            out["vis"] = self.visits
        if self.sends:
            out["snd"] = self.sends
        if self.splits:
            out["sp"] = self.splits
        if self.entry_event:
            out["ev"] = self.entry_event
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Instance:
        return cls(
            journey=d["j"],
            version=d["v"],
            entry_seq=d["e"],
            step=d["s"],
            entered_ms=d["at"],
            due_ms=d.get("due"),
            held=bool(d.get("h", 0)),
            visits=dict(d.get("vis", {})),
            sends=dict(d.get("snd", {})),
            splits=dict(d.get("sp", {})),
            entry_event=dict(d.get("ev", {})),
        )


@dataclass(slots=True)
class CustomerState:
    """Everything the engine keeps about one customer."""

    profile: Profile
    instances: list[Instance] = field(default_factory=list)
    entries: dict[str, list[int]] = field(default_factory=dict)
    """Journey id -> [entries so far (the last entry sequence), time of the last entry in ms]."""
    conditions: dict[str, bool] = field(default_factory=dict)
    """Journey id -> last value of its ``becomes_true`` entry condition (entry on false -> true)."""
    seen: dict[str, int] = field(default_factory=dict)
    """Event id -> event time, for dropping duplicates within the dedupe window."""
    clock_ms: int = 0
    """Latest logical time this customer's state was moved to."""

    @classmethod
    def new(cls, customer_key: str) -> CustomerState:
        return cls(profile=Profile(customer_key=customer_key))

    @property
    def customer_key(self) -> str:
        return self.profile.customer_key

    def next_wakeup_ms(self) -> int | None:
        dues = [i.due_ms for i in self.instances if i.due_ms is not None]
        return min(dues) if dues else None

    def active(self, journey_id: str) -> int:
        return sum(1 for i in self.instances if i.journey == journey_id)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"p": self.profile.to_dict(), "t": self.clock_ms}
        if self.instances:
            out["i"] = [i.to_dict() for i in self.instances]
        if self.entries:
            out["n"] = self.entries
        if self.conditions:
            out["c"] = self.conditions
        if self.seen:
            out["d"] = self.seen
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CustomerState:
        return cls(
            profile=Profile.from_dict(d["p"]),
            instances=[Instance.from_dict(i) for i in d.get("i", [])],
            entries={k: list(v) for k, v in d.get("n", {}).items()},
            conditions=dict(d.get("c", {})),
            seen=dict(d.get("d", {})),
            clock_ms=d.get("t", 0),
        )
