"""The demo's pictures: each example journey drawn with the run's counts into <workdir>/pictures (SVG
with Graphviz's dot, mermaid text without)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.demo import EXAMPLES
from orchestrator.demo.pictures import write_pictures
from orchestrator.simulate import simulate_file

ROOT = Path(__file__).resolve().parents[3]
JOURNEYS = ROOT / "journeys"


def _funnels() -> dict[str, object]:
    result = simulate_file(JOURNEYS / "welcome.yaml", JOURNEYS / "examples" / "welcome.events.jsonl")
    funnels: dict[str, object] = result.report()["journeys"]
    return funnels


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_each_example_journey_is_drawn_with_its_counts(tmp_path: Path) -> None:
    written, svg = write_pictures(JOURNEYS, EXAMPLES, _funnels(), tmp_path / "pictures")
    assert svg
    assert written == [tmp_path / "pictures" / f"{name}.svg" for name in EXAMPLES]
    welcome = ET.fromstring(written[0].read_text())
    texts = [t.text for t in welcome.iter("{http://www.w3.org/2000/svg}text")]
    assert "6 entered" in texts
    assert "0 entered" in [
        t.text for t in ET.fromstring(written[1].read_text()).iter("{http://www.w3.org/2000/svg}text")
    ]  # (no counts of abandoned_cart in these funnels)


def test_without_dot_the_pictures_are_mermaid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    written, svg = write_pictures(JOURNEYS, EXAMPLES, _funnels(), tmp_path / "pictures")
    assert not svg
    assert [p.name for p in written] == [f"{name}.mmd" for name in EXAMPLES]
    assert written[0].read_text().startswith("flowchart TD\n")
    assert "6 entered" in written[0].read_text()
