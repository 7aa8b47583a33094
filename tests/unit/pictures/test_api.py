"""The pictures API others call: journey_svg(definition, counts) gives an SVG document."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.core.journey import load_journey_file
from orchestrator.pictures import inline_svg, journey_graph, journey_svg, to_dot, to_mermaid

ROOT = Path(__file__).resolve().parents[3]
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@needs_dot
def test_journey_svg_is_an_svg_document_and_inline_svg_an_element() -> None:
    definition = load_journey_file(ROOT / "journeys" / "welcome.yaml")
    svg = journey_svg(definition)
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert inline_svg(svg).startswith("<svg")


def test_dot_and_mermaid_need_no_program() -> None:
    graph = journey_graph(load_journey_file(ROOT / "journeys" / "welcome.yaml"))
    assert to_dot(graph).startswith("digraph journey {")
    assert to_mermaid(graph).startswith("flowchart TD\n")
