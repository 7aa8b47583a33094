"""A journey graph as a mermaid ``flowchart TD`` (for docs and pull requests), with counts when given.

Node ids are made of letters, digits and ``_`` only (``entry``, ``s_<step>``, ``goal_<n>``,
``rule_<n>``, ``end_``, ``totals``); labels are double-quoted strings in which every character mermaid
or HTML could read as markup (``"`` ``#`` ``&`` ``<`` ``>`` ``|`` and the backquote) is written as an
entity code (``#34;``), line breaks as ``<br/>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from orchestrator.pictures.counts import edge_count, node_count, totals_lines
from orchestrator.pictures.graph import END_ID, ENTRY_ID, EdgeKind, JourneyGraph, Node, NodeKind

__all__ = ["mermaid_ids", "mermaid_text", "to_mermaid"]

_SHAPES: dict[NodeKind, tuple[str, str]] = {
    "entry": (">", "]"),
    "send": ("(", ")"),
    "wait": ("{{", "}}"),
    "branch": ("{", "}"),
    "split": ("[/", "\\]"),
    "update": ("[/", "/]"),
    "exit": ("([", "])"),
    "goal": ("[[", "]]"),
    "exit_rule": ("[[", "]]"),
    "end": ("((", "))"),
}
_CLASSES: dict[NodeKind, str] = {
    "entry": "fill:#bbf7d0,stroke:#15803d",
    "send": "fill:#dbeafe,stroke:#1d4ed8",
    "wait": "fill:#fef9c3,stroke:#a16207",
    "branch": "fill:#ffedd5,stroke:#c2410c",
    "split": "fill:#ede9fe,stroke:#6d28d9",
    "update": "fill:#e5e7eb,stroke:#4b5563",
    "exit": "fill:#fecaca,stroke:#b91c1c",
    "goal": "fill:#dcfce7,stroke:#15803d,stroke-dasharray:4 3",
    "exit_rule": "fill:#fee2e2,stroke:#b91c1c,stroke-dasharray:4 3",
    "end": "fill:#f3f4f6,stroke:#6b7280",
}
_ARROWS: dict[EdgeKind, str] = {
    "start": "==>",
    "next": "-->",
    "event": "-->",
    "timeout": "-.->",
    "branch": "-->",
    "default": "-.->",
    "split": "-->",
    "holdout": "-.->",
}
_ESCAPED = '"#&<>|`'
_NOT_ID = re.compile(r"[^A-Za-z0-9_]")


def mermaid_text(text: str) -> str:
    """``text`` for a double-quoted mermaid label: markup characters as entity codes (``#34;``)."""
    clean = text.replace("\r", " ").replace("\n", " ")
    return "".join(f"#{ord(ch)};" if ch in _ESCAPED else ch for ch in clean)


def mermaid_ids(graph: JourneyGraph) -> dict[str, str]:
    """The mermaid id of every node of ``graph`` (unique, letters, digits and ``_``)."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    goals = rules = 0
    for node in graph.nodes:
        if node.id == ENTRY_ID:
            base = "entry"
        elif node.id == END_ID:
            base = "end_"
        elif node.kind == "goal":
            goals += 1
            base = f"goal_{goals}"
        elif node.kind == "exit_rule":
            rules += 1
            base = f"rule_{rules}"
        else:
            base = "s_" + _NOT_ID.sub("_", node.id)
        unique, n = base, 1
        while unique in used:
            n += 1
            unique = f"{base}_{n}"
        used.add(unique)
        ids[node.id] = unique
    return ids


def _label(lines: list[str]) -> str:
    return '"' + "<br/>".join(lines) + '"'


def _node_lines(node: Node, counts: Mapping[str, Any] | None) -> list[str]:
    title, *details = node.lines
    lines = [f"<b>{mermaid_text(title)}</b>", *(mermaid_text(x.strip()) for x in details)]
    if counts is not None:
        c = node_count(node, counts)
        lines += [f"<b>{mermaid_text(x)}</b>" for x in c.lines]
        if c.now is not None:
            lines.append(f"<b>now: {c.now}</b>")
    return lines


def _node(node: Node, mid: str, counts: Mapping[str, Any] | None) -> str:
    left, right = _SHAPES[node.kind]
    return f"{mid}{left}{_label(_node_lines(node, counts))}{right}"


def to_mermaid(graph: JourneyGraph, counts: Mapping[str, Any] | None = None) -> str:
    """The mermaid ``flowchart TD`` text of ``graph``; with ``counts`` (one journey's funnel) arrivals
    and "now: N" on the nodes, moves on the edges and a totals box."""
    ids = mermaid_ids(graph)
    out = ["flowchart TD", f"  %% {mermaid_text(graph.title)}"]
    rules = [n for n in graph.nodes if n.kind in ("goal", "exit_rule")]
    out.extend(f"  {_node(n, ids[n.id], counts)}" for n in graph.nodes if n not in rules)
    if rules:
        out.append('  subgraph anywhere["at any step"]')
        out.extend(f"    {_node(n, ids[n.id], counts)}" for n in rules)
        out.append("  end")
    if counts is not None:
        lines = [mermaid_text(x.strip()) for x in totals_lines(counts)]
        out.append(f"  totals[{_label(lines)}]")
    for edge in graph.edges:
        parts = [mermaid_text(x) for x in edge.label]
        if counts is not None:
            c = edge_count(edge, counts)
            if c is not None:
                parts.append(f"<b>{mermaid_text(c.text)}</b>")
        label = f"|{_label(parts)}|" if parts else ""
        out.append(f"  {ids[edge.source]} {_ARROWS[edge.kind]}{label} {ids[edge.target]}")
    for kind, style in _CLASSES.items():
        members = [ids[n.id] for n in graph.nodes if n.kind == kind]
        if members:
            out.append(f"  classDef k_{kind} {style}")
            out.append(f"  class {','.join(members)} k_{kind}")
    return "\n".join(out) + "\n"
