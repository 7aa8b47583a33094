"""What happened, as ``orchestrator fit`` and ``orchestrator evaluate`` read it: customer events, the
actions sent and (optionally) the policy's decisions, from JSONL files or from the Kafka topics.

A line (or a record) that is not valid is skipped and counted, with ``file:line: why`` (``topic[p]@offset:
why`` from Kafka): one bad line never stops a fit. :attr:`History.problems` keeps the first
:data:`PROBLEMS_KEPT` of them, :attr:`History.skipped` counts them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from orchestrator.contracts.actions import CHANNELS, ChannelAction
from orchestrator.contracts.decision import Decision
from orchestrator.contracts.engine_event import Event, read_event
from orchestrator.contracts.events import CUSTOMER_KEY, describe_error
from orchestrator.core.resolution import canonical_key
from orchestrator.exceptions import InvalidEventError, OrchestratorError

if TYPE_CHECKING:
    from orchestrator.config import Settings

__all__ = [
    "PROBLEMS_KEPT",
    "History",
    "LearningError",
    "Send",
    "Verdict",
    "customer_of",
    "event_customer",
    "read_files",
    "read_kafka",
]

PROBLEMS_KEPT = 20
"""Problems kept word for word (every one is counted)."""


class LearningError(OrchestratorError):
    """The history cannot be read, or holds nothing to learn from."""


@dataclass(frozen=True, slots=True)
class Send:
    """One action that went out (a record of an action topic, or a line of simulate's actions file)."""

    action_id: str
    channel: str
    customer: str
    """The canonical customer key (the action's ``customer_id``)."""
    journey_id: str
    step_id: str
    at_ms: int
    """``created_at``: the engine's logical time of the send."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One decision of the policy on one send."""

    kind: str
    action_id: str
    original_action_id: str
    customer: str
    journey_id: str
    step_id: str
    channel: str
    at_ms: int


@dataclass(slots=True)
class History:
    """Events, sends and decisions, each in time order."""

    events: list[Event] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    decisions: list[Verdict] = field(default_factory=list)
    decisions_given: bool = False
    """Decisions were read (a file or the topic), even if there were none."""
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.skipped += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(text)

    def sort(self) -> History:
        self.events.sort(key=lambda e: (e.occurred_ms, e.event_id))
        self.sends.sort(key=lambda s: (s.at_ms, s.action_id))
        self.decisions.sort(key=lambda d: (d.at_ms, d.action_id, d.kind))
        return self

    def bounds(self) -> tuple[int, int] | None:
        """The earliest and the latest time of anything in it (None when empty)."""
        times = list(self._times())
        return (min(times), max(times)) if times else None

    def _times(self) -> Iterator[int]:
        if self.events:
            yield self.events[0].occurred_ms
            yield self.events[-1].occurred_ms
        if self.sends:
            yield self.sends[0].at_ms
            yield self.sends[-1].at_ms
        if self.decisions:
            yield self.decisions[0].at_ms
            yield self.decisions[-1].at_ms

    def within(self, from_ms: int, to_ms: int) -> History:
        """What happened in ``[from_ms, to_ms)`` (a copy; problems are not carried)."""
        return History(
            [e for e in self.events if from_ms <= e.occurred_ms < to_ms],
            [s for s in self.sends if from_ms <= s.at_ms < to_ms],
            [d for d in self.decisions if from_ms <= d.at_ms < to_ms],
            self.decisions_given,
        )


def customer_of(event: Event) -> str | None:
    """The customer an event names by ``customer_id`` or ``customer_key`` (a receipt), else None."""
    for kind, value in event.identifiers:
        if kind == "customer_id" or kind == CUSTOMER_KEY:
            return value
    return None


def event_customer(event: Event) -> str:
    """The canonical key of the event's customer (the resolution rule, without merges)."""
    return canonical_key(event.identifiers)


def _send(line: bytes) -> Send:
    a = ChannelAction.model_validate_json(line)
    return Send(a.action_id, a.channel, a.customer_id, a.journey_id, a.step_id, _ms(a.created_at.timestamp()))


def _verdict(line: bytes) -> Verdict:
    d = Decision.model_validate_json(line)
    return Verdict(
        d.kind, d.action_id, d.original_action_id, d.customer_id, d.journey_id, d.step_id, d.channel,
        _ms(d.at.timestamp()),
    )  # fmt: skip


def _ms(seconds: float) -> int:
    return int(seconds * 1000)  # (CustomerEvent.occurred_ms's rule)


def _add(history: History, kind: str, raw: bytes, where: str) -> None:
    try:
        if kind == "event":
            history.events.append(read_event(raw))
        elif kind == "action":
            history.sends.append(_send(raw))
        else:
            history.decisions.append(_verdict(raw))
    except InvalidEventError as exc:
        history.problem(f"{where}: not an event: {exc.detail}")
    except ValidationError as exc:
        history.problem(f"{where}: not {'an action' if kind == 'action' else 'a decision'}: {_why(exc)}")


def _why(exc: ValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else None
    if first is not None and first["type"] == "json_invalid":
        return "not valid JSON"
    return describe_error(exc)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                stripped = line.strip()
                if stripped:
                    yield number, stripped
    except FileNotFoundError:
        raise LearningError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LearningError(f"{path}: a directory, not a JSONL file") from None


def read_files(events: Path, actions: Path, decisions: Path | None = None) -> History:
    """The history in JSONL files: events (one customer event a line), actions (simulate's output, or a
    dump of the action topics) and decisions (``simulate --decisions``)."""
    history = History(decisions_given=decisions is not None)
    inputs: list[tuple[str, Path]] = [("event", events), ("action", actions)]
    if decisions is not None:
        inputs.append(("decision", decisions))
    for kind, path in inputs:
        for number, raw in _lines(path):
            _add(history, kind, raw, f"{path}:{number}")
    return history.sort()


def _records(settings: Settings, topic: str) -> Iterable[tuple[int, int, bytes | None]]:
    from orchestrator.kafka.deploy import read_whole_topic

    for partition, offset, _key, value in read_whole_topic(settings, topic, timeout=120.0):
        yield partition, offset, value


def read_kafka(settings: Settings, decisions: bool = True) -> History:
    """The history on the topics of ``settings``: the raw events topic (every event, receipts included),
    the action topic of each channel and (``decisions``) the decisions topic, read whole."""
    t = settings.topics
    history = History(decisions_given=decisions)
    inputs = [("event", t.raw_events), *(("action", t.action_topic(ch)) for ch in CHANNELS)]
    if decisions:
        inputs.append(("decision", t.decisions))
    for kind, topic in inputs:
        for partition, offset, value in _records(settings, topic):
            if value is None:  # (a tombstone: nothing to read)
                continue
            _add(history, kind, value, f"{topic}[{partition}]@{offset}")
    return history.sort()
