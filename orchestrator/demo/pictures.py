"""The demo's last word: a picture of each example journey with the counts of the run
(``<workdir>/pictures/<journey>.svg``), as ``orchestrator graph`` draws it. Without Graphviz's ``dot``
the pictures are mermaid texts (``.mmd``) instead, and the demo says which package draws SVG."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.core.journey import load_journey_file
from orchestrator.pictures import journey_graph, journey_svg, to_mermaid
from orchestrator.pictures.render import DOT_PROGRAM

__all__ = ["write_pictures"]


def write_pictures(
    journeys: Path, names: Iterable[str], funnels: Mapping[str, Any], out: Path
) -> tuple[list[Path], bool]:
    """Draw ``journeys/<name>.yaml`` for each name with its counts in ``funnels`` (journey id -> the
    journey's funnel: a worker's ``/funnels/`` ``journeys``, or simulate's) into ``out``: the files
    written, and whether they are SVG (else mermaid: Graphviz's dot is not installed)."""
    out.mkdir(parents=True, exist_ok=True)
    svg = shutil.which(DOT_PROGRAM) is not None
    written: list[Path] = []
    for name in names:
        definition = load_journey_file(journeys / f"{name}.yaml")
        found = funnels.get(definition.id)
        counts: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        if svg:
            path, text = out / f"{name}.svg", journey_svg(definition, counts)
        else:
            path, text = out / f"{name}.mmd", to_mermaid(journey_graph(definition), counts)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written, svg
