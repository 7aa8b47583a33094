"""docs/segments.md runs: its YAML loads, and what its console blocks show is what the commands print
on the repository's example files."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.cli.segments import format_rows, segments_from_state
from orchestrator.cli.simulate import parse_until
from orchestrator.cli.validate import validate_paths
from orchestrator.core.journey import load_journey_text
from orchestrator.core.policy import load_policy_text
from orchestrator.core.segment import is_segment_text, load_segment_text
from orchestrator.simulate import simulate_file

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "segments.md").read_text()


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC, re.S)


def test_every_yaml_block_loads() -> None:
    blocks = _blocks("yaml")
    assert len(blocks) == 4
    for text in blocks:
        if is_segment_text(text):
            load_segment_text(text, "doc.yaml")
        elif text.startswith("subscription_groups:"):
            policy = load_policy_text(f"kind: policy\nid: p\nversion: 1\n{text}", "doc.yaml")
            assert set(policy.subscription_groups) == {"product_news", "weekly_digest"}
        else:
            assert load_journey_text(text, "doc.yaml").entry.segment == "cart_abandoners"


def test_the_console_blocks_are_what_the_commands_print(tmp_path: Path) -> None:
    shown = "\n".join(_blocks("console"))
    summaries, problems = validate_paths([ROOT / "journeys"])
    assert problems == []
    for line in summaries:
        if ": ok: segment " in line or "cart_nudge" in line or "policy default" in line:
            assert line.replace(f"{ROOT}/", "") in shown, line
    state = tmp_path / "state.json"
    result = simulate_file(
        ROOT / "journeys",
        ROOT / "journeys" / "examples" / "cart_nudge.events.jsonl",
        until_ms=parse_until("2025-04-30T00:00:00Z"),
        policy_path=ROOT / "journeys" / "policy.yaml",
        state_out=state,
    )
    funnel = result.funnel.journeys["cart_nudge"]
    assert (funnel.entered, funnel.actions, funnel.exits) == (5, 3, {"completed": 3, "left_the_segment": 2})
    for line in format_rows(segments_from_state(state)):
        assert line in shown, line
