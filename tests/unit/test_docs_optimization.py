"""docs/optimization.md runs: its journey is the example file, and its console and JSON blocks are what
the commands print and write on the repository's example files."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.core.journey import load_journey_file, load_journey_text

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "optimization.md").read_text()
EXAMPLES = ROOT / "journeys" / "examples"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC, re.S)


def test_the_journey_shown_is_the_example_s() -> None:
    (text,) = _blocks("yaml")
    shown = load_journey_text(text, "doc.yaml")
    assert (
        shown.content_hash
        == load_journey_file(ROOT / "journeys" / "run_stage" / "smart_winback.yaml").content_hash
    )


def test_the_console_blocks_and_the_decision_are_what_the_commands_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sim = next(b for b in _blocks("sh") if "simulate" in b)
    args = sim.replace("\\\n", " ").split()[1:]
    args = [a.replace("journeys/", f"{ROOT}/journeys/") for a in args]
    assert main(args) == 0
    printed = capsys.readouterr()
    shown = next(b for b in _blocks("text") if "decisions:" in b)
    for line in shown.strip().splitlines():
        assert line in printed.out + printed.err
    decisions = [orjson.loads(line) for line in (tmp_path / "decisions.jsonl").read_bytes().splitlines()]
    (doc_decision,) = [orjson.loads(b) for b in _blocks("json")]
    made = next(d for d in decisions if d["customer_id"] == "rs-02" and d["kind"] == "held")
    for field, value in doc_decision.items():
        if field == "choice":
            assert {k: made["choice"][k] for k in value} == value
        else:
            assert made[field] == value, field
    assert main(["validate", str(ROOT / "journeys" / "run_stage" / "engagement_model.yaml")]) == 0
    validated = capsys.readouterr().out.strip().replace(f"{ROOT}/", "")
    assert validated in [b.strip() for b in _blocks("text")]
