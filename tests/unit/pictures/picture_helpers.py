"""Reading pictures back: the nodes, edges and texts of a Graphviz SVG, the nodes and edges of a mermaid
flowchart; the example journeys and their counts from simulate."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.simulate import parse_until
from orchestrator.simulate import simulate_file

ROOT = Path(__file__).resolve().parents[3]
JOURNEYS = ROOT / "journeys"
EXAMPLES = JOURNEYS / "examples"
SVG = "{http://www.w3.org/2000/svg}"
UNTIL = "2025-04-30T00:00:00Z"

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def example_journeys() -> list[Path]:
    """Every journey file among journeys/*.yaml (not the segment, policy, campaign files), and the run
    stage's smart_winback."""
    files = [p for p in sorted(JOURNEYS.glob("*.yaml")) if not re.search(r"^kind:", p.read_text(), re.M)]
    return [*files, JOURNEYS / "run_stage" / "smart_winback.yaml"]


@cache
def example_counts(name: str, *, until: bool = True) -> dict[str, Any]:
    """Journey ``name``'s funnel after simulate of journeys/examples/<name>.events.jsonl (with the
    timers up to :data:`UNTIL` fired, or only up to the last event: customers still waiting)."""
    events = EXAMPLES / f"{name}.events.jsonl"
    until_ms = parse_until(UNTIL) if until else None
    if name == "smart_winback":
        result = simulate_file(
            None, events, until_ms=until_ms, deployments_path=EXAMPLES / "smart_winback.deployments.yaml"
        )
    elif name == "cart_nudge":
        files = [JOURNEYS / "cart_nudge.yaml", JOURNEYS / "cart_abandoners.yaml", JOURNEYS / "vip.yaml"]
        result = simulate_file(files, events, until_ms=until_ms, policy_path=JOURNEYS / "policy.yaml")
    else:
        result = simulate_file(JOURNEYS / f"{name}.yaml", events, until_ms=until_ms)
    counts: dict[str, Any] = result.report()["journeys"][name]
    return counts


def _texts(g: ET.Element) -> list[str]:
    return [" ".join(t.text.split()) for t in g.iter(f"{SVG}text") if t.text and t.text.strip()]


@dataclass
class SvgPicture:
    nodes: dict[str, list[str]] = field(default_factory=dict)
    """node id (its title) -> its texts, whitespace collapsed."""
    classes: dict[str, str] = field(default_factory=dict)
    edges: dict[str, list[list[str]]] = field(default_factory=dict)
    """"a->b" -> the texts of each edge with that title."""
    title: list[str] = field(default_factory=list)

    def edge_text(self, key: str) -> str:
        return " ".join(" ".join(t) for t in self.edges[key])

    def node_text(self, node: str) -> str:
        return " ".join(self.nodes[node])


def read_svg(svg: str) -> SvgPicture:
    root = ET.fromstring(svg)
    out = SvgPicture()
    for g in root.iter(f"{SVG}g"):
        kinds = (g.get("class") or "").split()
        title = g.find(f"{SVG}title")
        if title is None or title.text is None:
            continue
        if "node" in kinds:
            out.nodes[title.text] = _texts(g)
            out.classes[title.text] = " ".join(k for k in kinds if k != "node")
        elif "edge" in kinds:
            out.edges.setdefault(title.text, []).append(_texts(g))
        elif "graph" in kinds:
            out.title = [" ".join(t.text.split()) for t in g.findall(f"{SVG}text") if t.text]
    return out


_MERMAID_NODE = re.compile(
    r'^\s*(\w+)(>|\(\[|\[\[|\[/|\(\(|\{\{|\(|\{|\[)"(.*)"(\]|\]\)|\]\]|\\\]|/\]|\)\)|\}\}|\)|\})$'
)
_MERMAID_EDGE = re.compile(r'^\s*(\w+) (-->|-\.->|==>)(?:\|"(.*)"\|)? (\w+)$')


def mermaid_decode(label: str) -> list[str]:
    """The lines of a mermaid label, markup removed and entity codes decoded."""
    plain = label.replace("<b>", "").replace("</b>", "")
    return [re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), line) for line in plain.split("<br/>")]


@dataclass
class MermaidPicture:
    nodes: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    """mermaid id -> (opening bracket of its shape, its label lines)."""
    edges: list[tuple[str, str, str, list[str]]] = field(default_factory=list)
    """(from, arrow, to, label lines)."""


def read_mermaid(text: str) -> MermaidPicture:
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    out = MermaidPicture()
    for line in lines[1:]:
        if m := _MERMAID_EDGE.match(line):
            out.edges.append((m[1], m[2], m[4], mermaid_decode(m[3]) if m[3] is not None else []))
        elif m := _MERMAID_NODE.match(line):
            out.nodes[m[1]] = (m[2], mermaid_decode(m[3]))
    return out
