"""One customer's engine state: profile, journey instances, timers, entry history, seen event ids,
what the cross-channel policy keeps (sends held for quiet hours, the log of marketing sends that
frequency caps count), the journeys it finished lately and the events that came too late or early.

Serialised with :meth:`CustomerState.to_dict` to compact JSON-compatible dicts (short keys, no
``None`` values) for the state stores; :meth:`CustomerState.from_dict` reads them back.
A timer is not stored apart: each instance has at most one, its ``due_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.profile import Profile

__all__ = ["TIMING_MEANING", "TIMING_REASONS", "CustomerState", "FinishedInstance", "Instance", "PendingSend"]

TIMING_MEANING = {
    "late": "older than the lateness window: the profile and running journeys take them, no journey starts",
    "future": "later than the worker's clock: applied now, at the clock, not at their own time",
}
"""Why an event was not applied at its own time, and what that did."""
TIMING_REASONS = tuple(TIMING_MEANING)


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
    key: str | None = None
    """A keyed journey's key (the appointment id this instance is about); None for unkeyed journeys."""

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
        if self.key is not None:
            out["k"] = self.key
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], copy: bool = True) -> Instance:
        if not copy:
            return cls(
                d["j"], d["v"], d["e"], d["s"], d["at"], d.get("due"), bool(d.get("h", 0)),
                d.get("vis") or {}, d.get("snd") or {}, d.get("sp") or {}, d.get("ev") or {}, d.get("k"),
            )  # fmt: skip
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
            key=d.get("k"),
        )


@dataclass(slots=True)
class FinishedInstance:
    """A journey instance that ended (goal or exit), kept a while for ``orchestrator inspect``."""

    journey: str
    version: int
    entry_seq: int
    entered_ms: int
    finished_ms: int
    kind: str
    """``goal`` or ``exited``."""
    reason: str
    """The goal's name, or why it exited (``completed``, an exit rule, ``timeout``, ``merged``, ...)."""
    step: str
    """The step it was at when it ended."""
    visits: dict[str, int] = field(default_factory=dict)
    """The steps it took, in the order of their first visit, with how often each was visited."""
    splits: dict[str, str] = field(default_factory=dict)
    key: str | None = None

    @classmethod
    def of(cls, inst: Instance, kind: str, reason: str, at_ms: int) -> FinishedInstance:
        return cls(
            inst.journey, inst.version, inst.entry_seq, inst.entered_ms, at_ms, kind, reason, inst.step,
            dict(inst.visits), dict(inst.splits), inst.key,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "j": self.journey,
            "v": self.version,
            "e": self.entry_seq,
            "at": self.entered_ms,
            "end": self.finished_ms,
            "k": self.kind,
            "r": self.reason,
            "s": self.step,
        }
        if self.visits:
            out["vis"] = self.visits
        if self.splits:
            out["sp"] = self.splits
        if self.key is not None:
            out["key"] = self.key
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinishedInstance:
        return cls(
            d["j"], d["v"], d["e"], d["at"], d["end"], d["k"], d["r"], d["s"],
            dict(d.get("vis") or {}), dict(d.get("sp") or {}), d.get("key"),
        )  # fmt: skip


@dataclass(slots=True)
class PendingSend:
    """A send as a journey step made it, before the policy's verdict; stored while held (quiet hours)."""

    action_id: str
    channel: str
    category: str
    journey_id: str
    journey_version: int
    entry_seq: int
    step_id: str
    template_id: str
    campaign: str
    personalization: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0
    """When the journey made it."""
    release_ms: int | None = None
    """While held: when the policy looks at it again."""
    subscription_group: str | None = None
    """The subscription group the send step names (judged again with it at release)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "a": self.action_id,
            "ch": self.channel,
            "cat": self.category,
            "j": self.journey_id,
            "v": self.journey_version,
            "e": self.entry_seq,
            "s": self.step_id,
            "tpl": self.template_id,
            "cmp": self.campaign,
            "p": self.personalization,
            "at": self.created_ms,
            "rel": self.release_ms,
        }
        if self.subscription_group is not None:
            out["sg"] = self.subscription_group
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PendingSend:
        return cls(
            action_id=d["a"],
            channel=d["ch"],
            category=d["cat"],
            journey_id=d["j"],
            journey_version=d["v"],
            entry_seq=d["e"],
            step_id=d["s"],
            template_id=d["tpl"],
            campaign=d["cmp"],
            personalization=dict(d.get("p", {})),
            created_ms=d.get("at", 0),
            release_ms=d.get("rel"),
            subscription_group=d.get("sg"),
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
    held: list[PendingSend] = field(default_factory=list)
    """Sends held by quiet hours, each with its ``release_ms`` (a timer like an instance's)."""
    sent_log: list[tuple[int, str]] = field(default_factory=list)
    """(time, channel) of marketing sends, oldest first, as long as a frequency cap counts them."""
    finished: list[FinishedInstance] = field(default_factory=list)
    """Instances that ended lately, oldest first (how many and how long: ``CustomerLogic``)."""
    timing: dict[str, list[int]] = field(default_factory=dict)
    """Reason (:data:`TIMING_REASONS`) -> [events so far, event time of the last one] of the events not
    applied at their own time."""
    segment_due_ms: int | None = None
    """When the customer's segment memberships are checked again with no event: the soonest time an event
    counted by a time-dependent segment leaves its window (None: no such segment counts any)."""
    campaigns: dict[str, list[Any]] = field(default_factory=dict)
    """Campaign id -> ``[occurrence, due ms (0: none), status, version]``: the latest occurrence the
    customer was scheduled for or handled (:mod:`orchestrator.core.campaign.delivery`)."""

    @classmethod
    def new(cls, customer_key: str) -> CustomerState:
        return cls(profile=Profile(customer_key=customer_key))

    @property
    def customer_key(self) -> str:
        return self.profile.customer_key

    def next_wakeup_ms(self) -> int | None:
        dues = [i.due_ms for i in self.instances if i.due_ms is not None]
        dues += [h.release_ms for h in self.held if h.release_ms is not None]
        if self.segment_due_ms is not None:
            dues.append(self.segment_due_ms)
        dues += [int(e[1]) for e in self.campaigns.values() if e[2] == "due"]
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
        if self.held:
            out["hs"] = [h.to_dict() for h in self.held]
        if self.sent_log:
            out["sl"] = [[at, ch] for at, ch in self.sent_log]
        if self.finished:
            out["f"] = [f.to_dict() for f in self.finished]
        if self.timing:
            out["tm"] = self.timing
        if self.segment_due_ms is not None:
            out["sd"] = self.segment_due_ms
        if self.campaigns:
            out["cp"] = self.campaigns
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], copy: bool = True) -> CustomerState:
        """``copy=False``: ``d`` is the caller's to give away (freshly decoded): its containers become
        the state's own, not copied."""
        if not copy:
            return cls(
                Profile.from_dict(d["p"], copy=False),
                [Instance.from_dict(i, False) for i in d.get("i", ())],
                d.get("n") or {},
                d.get("c") or {},
                d.get("d") or {},
                d.get("t", 0),
                [PendingSend.from_dict(h) for h in d.get("hs", ())],
                [(int(at), str(ch)) for at, ch in d.get("sl", ())],
                [FinishedInstance.from_dict(f) for f in d.get("f", ())],
                d.get("tm") or {},
                d.get("sd"),
                d.get("cp") or {},
            )
        return cls(
            profile=Profile.from_dict(d["p"]),
            instances=[Instance.from_dict(i) for i in d.get("i", [])],
            entries={k: list(v) for k, v in d.get("n", {}).items()},
            conditions=dict(d.get("c", {})),
            seen=dict(d.get("d", {})),
            clock_ms=d.get("t", 0),
            held=[PendingSend.from_dict(h) for h in d.get("hs", [])],
            sent_log=[(int(at), str(ch)) for at, ch in d.get("sl", [])],
            finished=[FinishedInstance.from_dict(f) for f in d.get("f", [])],
            timing={k: list(v) for k, v in d.get("tm", {}).items()},
            segment_due_ms=d.get("sd"),
            campaigns={k: list(v) for k, v in d.get("cp", {}).items()},
        )
