"""The journey language as immutable Python objects, ready for the engine.

A :class:`JourneyDefinition` is what a journey file becomes after loading and validation: every
CEL condition compiled once, every duration in milliseconds, steps by id. The engine reads these
objects on its hot path; they are plain frozen dataclasses (no validation cost when read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from orchestrator.core.cel import CompiledCondition

__all__ = [
    "AUTO_CHANNEL",
    "CHANNEL_CHOICES",
    "STATUSES",
    "STEP_KINDS",
    "BranchStep",
    "Condition",
    "Entry",
    "ExitRule",
    "ExitStep",
    "Goal",
    "JourneyDefinition",
    "ReEntry",
    "SendStep",
    "SplitBranch",
    "SplitStep",
    "Status",
    "Step",
    "UpdateStep",
    "WaitStep",
]

Status = Literal["active", "paused", "archived"]
STATUSES: tuple[Status, ...] = ("active", "paused", "archived")
STEP_KINDS = ("send", "wait", "branch", "split", "update", "exit")
CHANNEL_CHOICES = ("email", "sms", "push")
AUTO_CHANNEL = "auto"
"""``channel: auto``: the engine picks one of the step's ``channels`` per send (docs/optimization.md)."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A CEL condition (or expression) as written, and compiled."""

    source: str
    compiled: CompiledCondition


@dataclass(frozen=True, slots=True)
class SendStep:
    """Send one message. A clean data record: the policy layer, applied after, may hold/drop/redirect it."""

    id: str
    channel: str
    category: str
    template: str
    campaign: str
    personalization: tuple[tuple[str, Condition], ...] = ()
    send_time: str = "immediate"
    on_unsent: Literal["continue", "exit"] = "continue"
    """When the message cannot go out (no address, no consent, suppressed, dropped): go on to ``next``,
    or end the journey (exit reason ``unsent_<reason>``). A send held for quiet hours is not unsent."""
    subscription_group: str | None = None
    """The policy's subscription group the message belongs to: only its members get it, on ``channel``
    only (no fallback)."""
    next: str | None = None
    kind: Literal["send"] = "send"
    channels: tuple[tuple[str, str], ...] = ()
    """``channel: auto``: the channels to choose from, each with its template, in the file's order
    (``channel`` is then ``auto`` and ``template`` the first channel's)."""
    within_ms: int = 0
    """``send_time: optimal``: the window the moment is chosen in (from the step's time)."""
    between: tuple[int, int] | None = None
    """``send_time: optimal``: local minutes of the day ``[start, end)`` the moment must fall in."""

    @property
    def templates(self) -> tuple[tuple[str, str], ...]:
        """(channel, template) of every channel the step may send on."""
        return self.channels or ((self.channel, self.template),)


@dataclass(frozen=True, slots=True)
class WaitStep:
    """Wait for a duration, until a local time of day, for an event with a timeout, or until a condition
    holds with a timeout (``condition`` mode: re-checked on each of the customer's events)."""

    id: str
    mode: Literal["duration", "time_of_day", "event", "condition", "until"]
    duration_ms: int = 0
    time_of_day: tuple[int, int] = (0, 0)
    timezone: str | None = None
    weekdays: frozenset[int] | None = None
    """``until_time`` on these days only (0 = Monday), in the zone of the wait; None: any day."""
    event_types: frozenset[str] = frozenset()
    of_step: str | None = None
    condition: Condition | None = None
    timeout_ms: int = 0
    timeout_next: str | None = None
    until: Condition | None = None
    """``until`` mode: the CEL time it waits for (a timestamp, or ISO 8601 text), plus ``offset_ms``."""
    offset_ms: int = 0
    if_past: Literal["continue", "exit"] = "continue"
    """``until`` mode, when the time is already past as the customer reaches the step (or moves into the
    past when the data changes): go on at once, or end the journey (reason ``wait_time_past``)."""
    next: str | None = None
    kind: Literal["wait"] = "wait"


@dataclass(frozen=True, slots=True)
class BranchStep:
    """Ordered conditions; the first true one wins, else ``default``."""

    id: str
    branches: tuple[tuple[Condition, str], ...]
    default: str
    kind: Literal["branch"] = "branch"


@dataclass(frozen=True, slots=True)
class SplitBranch:
    name: str
    basis_points: int
    """Share of customers in 1/100 of a percent (10000 = 100 %)."""
    next: str | None
    holdout: bool = False


@dataclass(frozen=True, slots=True)
class SplitStep:
    """Random but deterministic per customer and journey (and ``salt``): a re-run gives the same groups."""

    id: str
    branches: tuple[SplitBranch, ...]
    salt: str = ""
    kind: Literal["split"] = "split"
    adaptive: bool = False
    """Weight the non-holdout branches by the deployed model's conversion rates (Thompson sampling); the
    holdout is decided by the bucket first, never by the model (docs/optimization.md)."""


@dataclass(frozen=True, slots=True)
class UpdateStep:
    """Set profile attributes to the values of CEL expressions (null removes the attribute)."""

    id: str
    assignments: tuple[tuple[str, Condition], ...]
    next: str | None = None
    kind: Literal["update"] = "update"


@dataclass(frozen=True, slots=True)
class ExitStep:
    id: str
    reason: str = "exit_step"
    kind: Literal["exit"] = "exit"


Step = SendStep | WaitStep | BranchStep | SplitStep | UpdateStep | ExitStep


@dataclass(frozen=True, slots=True)
class Entry:
    """How customers get in: on an event (optionally filtered), or when a condition becomes true."""

    events: frozenset[str] = frozenset()
    condition: Condition | None = None
    becomes_true: Condition | None = None
    key: Condition | None = None
    """Keyed journeys: one instance per value of this expression over the entry event (an appointment
    id); re-entry and ``max_concurrent`` count per key, and an event that gives a key reaches only the
    instance of that key."""
    max_keys: int = 20
    """At most this many keys open (instances running) per customer; more entries wait for one to end."""
    segment: str | None = None
    """Entered when the customer enters this segment (``events`` is then the engine's
    ``orchestrator.segment.entered``)."""


@dataclass(frozen=True, slots=True)
class ReEntry:
    policy: Literal["never", "cooldown", "always"] = "never"
    cooldown_ms: int = 0
    max_concurrent: int = 1


@dataclass(frozen=True, slots=True)
class Goal:
    """A conversion: ends the journey for the customer wherever they are."""

    name: str
    events: frozenset[str] = frozenset()
    condition: Condition | None = None
    segment: str | None = None
    """With ``entered_segment``/``left_segment``: the segment whose change it waits for (``events`` is the
    engine's ``orchestrator.segment.entered`` or ``.left``)."""


@dataclass(frozen=True, slots=True)
class ExitRule:
    """An exit criterion: ends the journey for the customer wherever they are (not a conversion)."""

    name: str
    events: frozenset[str] = frozenset()
    condition: Condition | None = None
    segment: str | None = None
    """With ``entered_segment``/``left_segment``: the segment whose change it waits for (``events`` is the
    engine's ``orchestrator.segment.entered`` or ``.left``)."""


@dataclass(frozen=True, slots=True)
class JourneyDefinition:
    """One version of one journey, loaded, compiled and validated."""

    id: str
    version: int
    name: str
    description: str
    entry: Entry
    start: str
    steps: dict[str, Step]
    re_entry: ReEntry = ReEntry()
    goals: tuple[Goal, ...] = ()
    exits: tuple[ExitRule, ...] = ()
    status: Status = "active"
    migrate: bool = False
    holdout_window_ms: int = 14 * 86_400_000
    default_timezone: str | None = None
    """The zone of local-time waits for a customer whose zone is unknown (else UTC)."""
    max_lookback_ms: int = 0
    source_name: str = "<text>"
    content_hash: str = ""
    """Hash of the file's meaning (not its status): a version deployed twice must keep its hash."""
    event_types: frozenset[str] = field(default=frozenset())
    """Every event type the journey reacts to: entry, goals, exits and waits."""
    condition_rules: bool = False
    """True when a goal or exit rule has no event type, or a wait waits for a condition or a time from
    data: it is checked on every event of the customer."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.version)
