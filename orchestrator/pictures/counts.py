"""The counts a picture shows, read from one journey's funnel (``JourneyFunnel.to_dict``: a simulate
report's ``journeys[<id>]``, or a worker's ``/funnels/`` ``journeys[<id>]``).

The funnel may come from a file or another process: every lookup is defensive (a missing or odd value
counts as 0), so that a picture is drawn whatever the counts hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.pictures.graph import Edge, Node

__all__ = ["EdgeCount", "NodeCount", "edge_count", "node_count", "totals_lines"]


@dataclass(frozen=True, slots=True)
class NodeCount:
    lines: tuple[str, ...]
    """What arrived (``12 arrived``, ``40 entered``, ``5 converted`` ...)."""
    now: int | None
    """Customers at this step now (the "now: N" badge), None when there is nobody."""


@dataclass(frozen=True, slots=True)
class EdgeCount:
    text: str


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _map(counts: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = counts.get(key)
    return value if isinstance(value, Mapping) else {}


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "0.0 %"


def node_count(node: Node, counts: Mapping[str, Any]) -> NodeCount:
    """The count lines of ``node`` and its occupancy."""
    if node.kind == "entry":
        return NodeCount((f"{_int(counts.get('entered'))} entered",), None)
    if node.kind == "goal":
        return NodeCount((f"{_int(_map(counts, 'goals').get(node.name or ''))} converted",), None)
    if node.kind == "exit_rule":
        return NodeCount((f"{_int(_map(counts, 'exits').get(node.name or ''))} exited",), None)
    if node.kind == "end":
        exits = _map(counts, "exits")
        lines = [f"{_int(n)} {r}" for r, n in sorted(exits.items()) if r not in node.claimed and _int(n)]
        return NodeCount(tuple(lines) or ("0 completed",), None)
    step = node.step or ""
    lines = [f"{_int(_map(counts, 'steps').get(step))} arrived"]
    for key, n in sorted(_map(counts, "skipped_sends").items()):
        where, _, reason = str(key).partition(": ")
        if where == step and _int(n):
            lines.append(f"{_int(n)} not sent: {reason}")
    now = _int(_map(counts, "occupancy").get(step))
    return NodeCount(tuple(lines), now if now > 0 else None)


def edge_count(edge: Edge, counts: Mapping[str, Any]) -> EdgeCount | None:
    """The count of ``edge``: moves along it, or a split branch's entered and converted."""
    if edge.split is not None:
        step, branch = edge.split
        c = _map(_map(_map(counts, "splits"), step), branch)
        entered, converted = _int(c.get("entered")), _int(c.get("converted"))
        return EdgeCount(f"{entered} in, {converted} converted ({_pct(converted, entered)})")
    if edge.count_key is None:
        return None
    return EdgeCount(str(_int(_map(counts, "edges").get(edge.count_key))))


def totals_lines(counts: Mapping[str, Any]) -> tuple[str, ...]:
    """The legend: entered, converted (with the rate), each goal and exit reason, customers in now."""
    entered = _int(counts.get("entered"))
    goals = _map(counts, "goals")
    converted = sum(_int(n) for n in goals.values())
    lines = [f"entered {entered}", f"converted {converted} ({_pct(converted, entered)})"]
    lines += [f"  goal {name}: {_int(n)}" for name, n in sorted(goals.items())]
    exits = _map(counts, "exits")
    lines.append(f"exited {sum(_int(n) for n in exits.values())}")
    lines += [f"  {reason}: {_int(n)}" for reason, n in sorted(exits.items())]
    now = sum(_int(n) for n in _map(counts, "occupancy").values())
    lines.append(f"in the journey now {now}")
    return tuple(lines)
