"""A journey graph as Graphviz DOT source, with counts when given (``dot -Tsvg`` draws it).

Every label is an HTML-like label (``<...>``) whose text is XML-escaped (``&``, ``<``, ``>``, quotes):
names and CEL texts may contain anything. Node ids are quoted DOT strings with ``"`` and ``\\``
escaped. Shapes and colours by kind: entry a green house, send a blue rounded box, wait a yellow hexagon,
branch an orange diamond, split a violet trapezium, update a grey parallelogram, exit a red octagon;
goals and exit rules (they apply at any step) in a dashed box of their own; the totals in a legend.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.pictures.counts import edge_count, node_count, totals_lines
from orchestrator.pictures.graph import Edge, EdgeKind, JourneyGraph, Node, NodeKind

__all__ = ["NODE_STYLES", "html_text", "quote_id", "to_dot"]

NODE_STYLES: dict[NodeKind, tuple[str, str, str]] = {
    # kind: (shape, style, fill colour)
    "entry": ("invhouse", "filled", "#bbf7d0"),
    "send": ("box", "filled,rounded", "#dbeafe"),
    "wait": ("hexagon", "filled", "#fef9c3"),
    "branch": ("diamond", "filled", "#ffedd5"),
    "split": ("trapezium", "filled", "#ede9fe"),
    "update": ("parallelogram", "filled", "#e5e7eb"),
    "exit": ("octagon", "filled", "#fecaca"),
    "goal": ("box", "filled,rounded,dashed", "#dcfce7"),
    "exit_rule": ("box", "filled,rounded,dashed", "#fee2e2"),
    "end": ("ellipse", "filled", "#f3f4f6"),
}
_EDGE_STYLES: dict[EdgeKind, str] = {
    "start": 'style=bold, color="#15803d"',
    "next": 'color="#475569"',
    "event": 'color="#475569"',
    "timeout": 'style=dashed, color="#b45309", fontcolor="#b45309"',
    "branch": 'color="#475569"',
    "default": 'style=dashed, color="#475569"',
    "split": 'color="#6d28d9", fontcolor="#6d28d9"',
    "holdout": 'style=dotted, color="#6b7280", fontcolor="#6b7280"',
}
_COUNT_COLOUR = "#1d4ed8"
_BADGE_COLOUR = "#ea580c"
_WIDTH = 44
_EDGE_WIDTH = 36
_TOTALS_ID = "@totals"
_ANYWHERE = "cluster_anywhere"


def html_text(text: str) -> str:
    """``text`` escaped for an HTML-like label (and for XML): no markup survives."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def quote_id(node_id: str) -> str:
    """A DOT id as a quoted string (``"`` and ``\\`` escaped, line ends as spaces)."""
    clean = node_id.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
    return f'"{clean}"'


def _wrap(line: str, width: int) -> list[str]:
    indent = len(line) - len(line.lstrip(" "))
    wrapped = textwrap.wrap(
        line, width, subsequent_indent=" " * (indent + 2), break_long_words=False, break_on_hyphens=False
    )
    return wrapped or [""]


def _rows(cells: Iterable[str]) -> str:
    return "".join(f"<TR><TD>{cell}</TD></TR>" for cell in cells)


def _table(rows: str) -> str:
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{rows}</TABLE>>'


def _node_label(node: Node, counts: Mapping[str, Any] | None) -> str:
    title, *details = node.lines
    cells = [f"<B>{html_text(title)}</B>"]
    for line in details:
        cells.extend(html_text(part) for part in _wrap(line, _WIDTH))
    rows = _rows(cells)
    if counts is not None:
        c = node_count(node, counts)
        rows += _rows(f'<FONT COLOR="{_COUNT_COLOUR}"><B>{html_text(x)}</B></FONT>' for x in c.lines)
        if c.now is not None:
            rows += (
                f'<TR><TD BGCOLOR="{_BADGE_COLOUR}" STYLE="rounded">'
                f'<FONT COLOR="white"><B> now: {c.now} </B></FONT></TD></TR>'
            )
    return _table(rows)


def _edge_label(edge: Edge, counts: Mapping[str, Any] | None) -> str | None:
    cells = [html_text(part) for line in edge.label for part in _wrap(line, _EDGE_WIDTH)]
    if counts is not None:
        c = edge_count(edge, counts)
        if c is not None:
            cells.append(f'<FONT COLOR="{_COUNT_COLOUR}"><B>{html_text(c.text)}</B></FONT>')
    return _table(_rows(cells)) if cells else None


def _node_statement(node: Node, counts: Mapping[str, Any] | None) -> str:
    shape, style, fill = NODE_STYLES[node.kind]
    return (
        f'  {quote_id(node.id)} [class="{node.kind}", shape={shape}, style="{style}", '
        f'fillcolor="{fill}", label={_node_label(node, counts)}];'
    )


def to_dot(graph: JourneyGraph, counts: Mapping[str, Any] | None = None) -> str:
    """The DOT source of ``graph``; with ``counts`` (one journey's funnel, ``JourneyFunnel.to_dict``)
    arrivals on the nodes, a "now: N" badge where customers are, moves on the edges, and the totals."""
    title = f"<B>{html_text(graph.name)}</B><BR/>{html_text(f'{graph.journey_id} v{graph.version}')}"
    out = [
        "digraph journey {",
        f'  graph [charset="UTF-8", rankdir=TB, labelloc=t, fontname="Helvetica", fontsize=14, '
        f"nodesep=0.35, ranksep=0.45, label=<{title}>];",
        '  node [fontname="Helvetica", fontsize=10, penwidth=1.2, margin="0.12,0.06"];',
        '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];',
    ]
    rules = [n for n in graph.nodes if n.kind in ("goal", "exit_rule")]
    out.extend(_node_statement(n, counts) for n in graph.nodes if n.kind not in ("goal", "exit_rule"))
    if rules:
        out.append(f"  subgraph {_ANYWHERE} {{")
        out.append('    graph [label=<at any step>, style="dashed,rounded", color="#9ca3af", fontsize=10];')
        out.extend("  " + _node_statement(n, counts) for n in rules)
        out.append("  }")
    if counts is not None:
        rows = "".join(
            f'<TR><TD ALIGN="LEFT">{html_text(line) if line.startswith(" ") else f"<B>{html_text(line)}</B>"}'
            "</TD></TR>"
            for line in totals_lines(counts)
        )
        out.append(
            f'  {quote_id(_TOTALS_ID)} [class="totals", shape=note, style=filled, fillcolor="#f8fafc", '
            f"label={_table(rows)}];"
        )
    for edge in graph.edges:
        label = _edge_label(edge, counts)
        attrs = f'class="{edge.kind}", {_EDGE_STYLES[edge.kind]}' + (f", label={label}" if label else "")
        out.append(f"  {quote_id(edge.source)} -> {quote_id(edge.target)} [{attrs}];")
    out.append("}")
    return "\n".join(out) + "\n"
