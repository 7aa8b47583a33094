"""docs/campaigns.md, "The campaign file": its YAML loads, its console block is what validate prints for
it, and every field the loader accepts is described."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.cli.validate import validate_paths
from orchestrator.core.campaign import load_campaign_text
from orchestrator.core.campaign.loader import _AUDIENCE, _SCHEDULE, _SEND, _TOP

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "campaigns.md").read_text()
SECTION = DOC.split("## The campaign file", 1)[1].split("\n## ", 1)[0]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", SECTION, re.S)


def test_the_examples_load_and_validate_prints_the_lines_shown(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    blocks = _blocks("yaml")
    assert len(blocks) == 2
    for text in blocks:
        campaign = load_campaign_text(text, "doc.yaml")
        (folder / f"{campaign.id}.yaml").write_text(text)
    summaries, problems = validate_paths([folder])
    assert problems == []
    shown = _blocks("console")[0]
    for line in summaries:
        assert line.replace(f"{tmp_path}/", "") in shown, line


def test_every_field_the_loader_accepts_is_described() -> None:
    described = set(re.findall(r"^\| `([a-z_.]+)` \|", SECTION, re.M))
    fields = {f for f in _TOP if f not in ("audience", "schedule")} | {"schedule"}
    fields |= {f"audience.{f}" for f in _AUDIENCE} | set(_SEND) | set(_SCHEDULE)
    assert fields <= described, fields - described


def test_the_walkthrough_shows_what_simulate_prints_for_the_example() -> None:
    from orchestrator.cli.simulate import parse_until
    from orchestrator.simulate import simulate_file

    walkthrough = DOC.split("## A campaign at 10:00 local, step by step", 1)[1].split("\n## ", 1)[0]
    result = simulate_file(
        ROOT / "journeys",
        ROOT / "journeys" / "examples" / "vip_preview.events.jsonl",
        until_ms=parse_until("2025-04-30T00:00:00Z"),
        policy_path=ROOT / "journeys" / "policy.yaml",
    )
    counts = result.campaigns["vip_preview"]
    assert "campaign vip_preview: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) in walkthrough
    decided = "decisions: " + ", ".join(f"{k} {n}" for k, n in sorted(result.decisions.items()))
    assert decided in walkthrough
