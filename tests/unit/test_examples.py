"""The example journeys do, through `orchestrator simulate`, exactly what their expected files say."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.cli.simulate import parse_until
from orchestrator.simulate import simulate_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "journeys" / "examples"
UNTIL = "2025-04-30T00:00:00Z"
"""Pending timers up to this time fire at the end of each example (see docs/simulate.md)."""


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.mark.parametrize(
    "name", ["welcome", "abandoned_cart", "winback", "post_purchase", "appointment_reminder"]
)
def test_example_gives_its_expected_actions(name: str, tmp_path: Path) -> None:
    out = tmp_path / "actions.jsonl"
    result = simulate_file(
        ROOT / "journeys" / f"{name}.yaml",
        EXAMPLES / f"{name}.events.jsonl",
        out_path=out,
        until_ms=parse_until(UNTIL),
    )
    assert result.invalid == []
    assert _lines(out) == _lines(EXAMPLES / f"{name}.expected.jsonl")


def test_welcome_example_sends_sms_only_when_unopened_and_consented() -> None:
    sms = [a for a in _lines(EXAMPLES / "welcome.expected.jsonl") if a["channel"] == "sms"]
    assert sorted(a["customer_id"] for a in sms) == ["w-ann", "w-eve"]  # w-dan opened at exactly 24 h


def test_all_examples_together() -> None:
    """All journeys over all example events at once: each journey still sees its own customers."""
    total = 0
    for name in ("welcome", "abandoned_cart", "winback", "post_purchase", "appointment_reminder"):
        total += len(_lines(EXAMPLES / f"{name}.expected.jsonl"))
    combined = ROOT / "journeys"
    counts = []
    for name in ("welcome", "abandoned_cart", "winback", "post_purchase", "appointment_reminder"):
        r = simulate_file(combined, EXAMPLES / f"{name}.events.jsonl", until_ms=parse_until(UNTIL))
        counts.append(r.funnel.journeys[name].actions)
    assert sum(counts) == total
