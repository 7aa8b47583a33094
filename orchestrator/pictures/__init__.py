"""Journeys as pictures: the graph of a journey (:mod:`.graph`), as Graphviz DOT (:mod:`.dot`) and
mermaid (:mod:`.mermaid`) text, drawn as SVG by Graphviz's ``dot`` (:mod:`.render`), with the counts of
a funnel (``JourneyFunnel.to_dict``: simulate's report or a worker's ``/funnels/``) when given.

:func:`journey_svg` is the one call for a picture: ``journey_svg(definition, counts)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.core.journey.model import JourneyDefinition
from orchestrator.exceptions import GraphvizMissingError, PictureError
from orchestrator.pictures.dot import to_dot
from orchestrator.pictures.graph import Edge, JourneyGraph, Node, journey_graph
from orchestrator.pictures.mermaid import to_mermaid
from orchestrator.pictures.render import inline_svg, render_svg

__all__ = [
    "Edge",
    "GraphvizMissingError",
    "JourneyGraph",
    "Node",
    "PictureError",
    "inline_svg",
    "journey_graph",
    "journey_svg",
    "render_svg",
    "to_dot",
    "to_mermaid",
]


def journey_svg(definition: JourneyDefinition, counts: Mapping[str, Any] | None = None) -> str:
    """The SVG picture of ``definition`` (a standalone document; :func:`inline_svg` makes an element of
    it for an HTML page); ``counts``: the journey's funnel (``JourneyFunnel.to_dict``), or None.

    Raises :class:`GraphvizMissingError` without Graphviz's ``dot``, :class:`PictureError` when it fails."""
    return render_svg(to_dot(journey_graph(definition), counts))
