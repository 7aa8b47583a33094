"""A journey as a graph of nodes and labelled edges (pure): what ``orchestrator graph`` draws.

:func:`journey_graph` turns a :class:`JourneyDefinition` into a :class:`JourneyGraph`: one node for the
entry, one per step, one per goal and exit rule (they end the journey wherever the customer is, so they
have no edges), and an ``end`` node when a path ends without an exit step. The graph has no counts and
no presentation: :mod:`orchestrator.pictures.dot` and :mod:`orchestrator.pictures.mermaid` add both.

Node ids are the step ids; the other nodes have ids no step id can have (``@entry``, ``@end``,
``@goal.<name>``, ``@exit.<name>``: a step id is lower-case letters, digits, ``_`` and ``-``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from orchestrator.contracts.events import SEGMENT_ENTERED, SEGMENT_LEFT
from orchestrator.core.journey.durations import DAY_MS, HOUR_MS, format_duration
from orchestrator.core.journey.model import (
    AUTO_CHANNEL,
    BranchStep,
    Condition,
    ExitRule,
    ExitStep,
    Goal,
    JourneyDefinition,
    SendStep,
    SplitStep,
    Step,
    UpdateStep,
    WaitStep,
)

__all__ = [
    "END_ID",
    "ENTRY_ID",
    "Edge",
    "EdgeKind",
    "JourneyGraph",
    "Node",
    "NodeKind",
    "duration",
    "goal_id",
    "journey_graph",
    "rule_id",
]

NodeKind = Literal["entry", "send", "wait", "branch", "split", "update", "exit", "goal", "exit_rule", "end"]
EdgeKind = Literal["start", "next", "event", "timeout", "branch", "default", "split", "holdout"]

ENTRY_ID = "@entry"
END_ID = "@end"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def duration(ms: int) -> str:
    """A duration as a journey file would write it: ``24h``, ``14d``, ``30d``, ``1h30m``."""
    if ms >= 2 * DAY_MS and ms % DAY_MS == 0:
        return f"{ms // DAY_MS}d"
    if ms >= HOUR_MS and ms % HOUR_MS == 0:
        return f"{ms // HOUR_MS}h"
    return format_duration(ms)


def goal_id(name: str) -> str:
    return f"@goal.{name}"


def rule_id(name: str) -> str:
    return f"@exit.{name}"


@dataclass(frozen=True, slots=True)
class Node:
    """One box of the picture. ``lines``: the title first, then the details (plain text, unescaped)."""

    id: str
    kind: NodeKind
    lines: tuple[str, ...]
    step: str | None = None
    """The step id (the key of the funnel's ``steps``/``occupancy``), None for the other nodes."""
    name: str | None = None
    """A goal's or exit rule's name (the key of the funnel's ``goals``/``exits``)."""
    waits: bool = False
    """Customers may stay here (a wait; a split with a holdout branch that holds them)."""
    claimed: tuple[str, ...] = ()
    """``end`` only: the exit reasons other nodes show (exit steps' reasons, exit rules' names); the end
    node counts the others (``completed``, ``timeout``, ``holdout_window`` ...)."""


@dataclass(frozen=True, slots=True)
class Edge:
    """A move between nodes. ``count_key``: the funnel's ``edges`` key (``"a>b"``, ``">start"``);
    ``split``: (split step, branch name) whose ``splits`` counts belong to this edge."""

    source: str
    target: str
    kind: EdgeKind
    label: tuple[str, ...] = ()
    count_key: str | None = None
    split: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class JourneyGraph:
    journey_id: str
    version: int
    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    @property
    def title(self) -> str:
        return f"{self.name} ({self.journey_id} v{self.version})"


def journey_graph(definition: JourneyDefinition) -> JourneyGraph:
    """The graph of ``definition``: entry, steps in file order, goals, exit rules, and ``end`` if needed."""
    d = definition
    nodes: list[Node] = [Node(ENTRY_ID, "entry", _entry_lines(d))]
    edges: list[Edge] = []
    if d.start in d.steps:
        edges.append(Edge(ENTRY_ID, d.start, "start", count_key=f">{d.start}"))
    for step in d.steps.values():
        nodes.append(_step_node(d, step))
        edges.extend(_step_edges(step))
    edges = _merged(edges)
    if any(e.target == END_ID for e in edges):
        claimed = {s.reason for s in d.steps.values() if isinstance(s, ExitStep)} | {x.name for x in d.exits}
        nodes.append(Node(END_ID, "end", ("end",), claimed=tuple(sorted(claimed))))
    nodes.extend(Node(goal_id(g.name), "goal", _rule_lines("goal", g), name=g.name) for g in d.goals)
    nodes.extend(Node(rule_id(x.name), "exit_rule", _rule_lines("exit", x), name=x.name) for x in d.exits)
    known = {n.id for n in nodes}
    edges = [e for e in edges if e.target in known]  # (a definition made by hand may name no step)
    return JourneyGraph(d.id, d.version, d.name, tuple(nodes), tuple(edges))


def _events(events: Iterable[str]) -> str:
    return " or ".join(sorted(events))


def _entry_lines(d: JourneyDefinition) -> tuple[str, ...]:
    e = d.entry
    lines = ["entry"]
    if e.segment is not None:
        lines.append(f"on entering segment {e.segment}")
    elif e.becomes_true is not None:
        lines.append(f"when {e.becomes_true.source} becomes true")
    elif e.events:
        lines.append(f"on {_events(e.events)}")
    if e.condition is not None:
        lines.append(f"if {e.condition.source}")
    if e.key is not None:
        lines.append(f"per key {e.key.source}")
    r = d.re_entry
    if r.policy == "cooldown":
        lines.append(f"re-entry after {duration(r.cooldown_ms)}")
    elif r.policy == "always":
        lines.append("re-entry always")
    return tuple(lines)


def _rule_lines(word: str, rule: Goal | ExitRule) -> tuple[str, ...]:
    lines = [f"{word}: {rule.name}"]
    if rule.segment is not None:
        change = "entering" if SEGMENT_ENTERED in rule.events else "leaving"
        lines.append(f"on {change} segment {rule.segment}")
    elif rule.events and not rule.events <= {SEGMENT_ENTERED, SEGMENT_LEFT}:
        lines.append(f"on {_events(rule.events)}")
    if rule.condition is not None:
        lines.append(f"if {rule.condition.source}")
    return tuple(lines)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _step_node(d: JourneyDefinition, step: Step) -> Node:
    sid = step.id
    if isinstance(step, SendStep):
        return Node(sid, "send", _send_lines(step), step=sid)
    if isinstance(step, WaitStep):
        return Node(sid, "wait", _wait_lines(step), step=sid, waits=True)
    if isinstance(step, BranchStep):
        return Node(sid, "branch", (f"branch: {sid}",), step=sid)
    if isinstance(step, SplitStep):
        lines = [f"split: {sid}"]
        if step.adaptive:
            lines.append("adaptive (model weights)")
        holds = any(b.holdout and b.next is None for b in step.branches)
        if holds:
            lines.append(f"holdout held {duration(d.holdout_window_ms)}")
        return Node(sid, "split", tuple(lines), step=sid, waits=holds)
    if isinstance(step, UpdateStep):
        sets = tuple(f"set {name} = {cond.source}" for name, cond in step.assignments)
        return Node(sid, "update", (f"update: {sid}", *sets), step=sid)
    assert isinstance(step, ExitStep)
    return Node(sid, "exit", (f"exit: {sid}", f"reason {step.reason}"), step=sid)


def _send_lines(step: SendStep) -> tuple[str, ...]:
    lines = [f"send: {step.id}"]
    if step.channel == AUTO_CHANNEL:
        lines.append("channel auto, one of:")
        lines.extend(f"  {channel}: {template}" for channel, template in step.templates)
    else:
        lines.append(f"{step.channel}: {step.template}")
    if step.send_time == "optimal":
        window = f"send_time optimal within {duration(step.within_ms)}"
        if step.between is not None:
            window += f", {_hhmm(step.between[0])}-{_hhmm(step.between[1])}"
        lines.append(window)
    if step.subscription_group:
        lines.append(f"group {step.subscription_group}")
    if step.on_unsent == "exit":
        lines.append("if unsent: exit")
    return tuple(lines)


def _wait_lines(step: WaitStep) -> tuple[str, ...]:
    title = f"wait: {step.id}"
    if step.mode == "duration":
        return (title, f"for {duration(step.duration_ms)}")
    if step.mode == "time_of_day":
        at = f"until {step.time_of_day[0]:02d}:{step.time_of_day[1]:02d}"
        if step.timezone:
            at += f" {step.timezone}"
        lines = [title, at]
        if step.weekdays is not None:
            lines.append("on " + ", ".join(_WEEKDAYS[i] for i in sorted(step.weekdays)))
        return tuple(lines)
    if step.mode == "event":
        lines = [title, f"until {_events(step.event_types)}"]
        if step.of_step:
            lines.append(f"of {step.of_step}")
        if step.condition is not None:
            lines.append(f"if {step.condition.source}")
        lines.append(f"timeout {duration(step.timeout_ms)}")
        return tuple(lines)
    if step.mode == "condition":
        cond = step.condition.source if step.condition is not None else "?"
        return (title, f"until {cond}", f"timeout {duration(step.timeout_ms)}")
    until = step.until.source if step.until is not None else "?"
    lines = [title, f"until {until}"]
    if step.offset_ms:
        sign = "+" if step.offset_ms > 0 else "-"
        lines.append(f"{sign} {duration(abs(step.offset_ms))}")
    if step.if_past == "exit":
        lines.append("if past: exit")
    return tuple(lines)


def _to(step: Step, target: str | None, kind: EdgeKind, label: tuple[str, ...] = ()) -> Edge:
    if target is None:
        return Edge(step.id, END_ID, kind, label)
    return Edge(step.id, target, kind, label, count_key=f"{step.id}>{target}")


def _step_edges(step: Step) -> list[Edge]:
    if isinstance(step, SendStep | UpdateStep):
        return [_to(step, step.next, "next")]
    if isinstance(step, WaitStep):
        if step.mode == "event":
            out = [_to(step, step.next, "event", (_events(step.event_types),))]
            timeout = f"timeout {duration(step.timeout_ms)}"
            return [*out, _to(step, step.timeout_next, "timeout", (timeout,))]
        if step.mode == "condition":
            timeout = f"timeout {duration(step.timeout_ms)}"
            return [
                _to(step, step.next, "event", ("holds",)),
                _to(step, step.timeout_next, "timeout", (timeout,)),
            ]
        return [_to(step, step.next, "next")]
    if isinstance(step, BranchStep):
        out = [_to(step, nxt, "branch", (_when(cond),)) for cond, nxt in step.branches]
        return [*out, _to(step, step.default, "default", ("default",))]
    if isinstance(step, SplitStep):
        out = []
        for b in step.branches:
            label = f"{b.name} {_percent(b.basis_points)}"
            if b.holdout:
                label += " (holdout)" if b.name != "holdout" else ""
                label += "" if b.next else ", held"
            kind: EdgeKind = "holdout" if b.holdout else "split"
            edge = _to(step, b.next, kind, (label,))
            out.append(Edge(edge.source, edge.target, kind, edge.label, None, (step.id, b.name)))
        return out
    return []


def _when(cond: Condition) -> str:
    return cond.source


def _percent(basis_points: int) -> str:
    whole, part = divmod(basis_points, 100)
    return f"{whole} %" if not part else f"{basis_points / 100:g} %"


def _merged(edges: list[Edge]) -> list[Edge]:
    """One edge per (source, target) and count key: two conditions of a branch to the same step become
    one edge labelled with both (the funnel counts the moves between two steps once). Split edges stay
    apart: each branch has its own counts."""
    out: list[Edge] = []
    index: dict[tuple[str, str], int] = {}
    for e in edges:
        if e.split is not None:
            out.append(e)
            continue
        key = (e.source, e.target)
        if key in index:
            first = out[index[key]]
            label = (*first.label, *(("or", *e.label) if first.label and e.label else e.label))
            out[index[key]] = Edge(first.source, first.target, first.kind, label, first.count_key)
        else:
            index[key] = len(out)
            out.append(e)
    return out
