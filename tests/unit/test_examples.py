"""The example journeys do, through `orchestrator simulate`, exactly what their expected files say."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from orchestrator.cli.simulate import parse_until
from orchestrator.simulate import simulate_file
from orchestrator.simulate.state_file import read_state_file

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


def test_the_segment_example_gives_its_expected_actions(tmp_path: Path) -> None:
    """cart_nudge starts on entering the cart_abandoners segment (which reads the vip segment and the
    policy's product_news subscription group) and ends on leaving it: by an order, an opt-out, or the
    24 hours since the cart passing."""
    out, state = tmp_path / "actions.jsonl", tmp_path / "state.json"
    journeys = ROOT / "journeys"
    result = simulate_file(
        [journeys / "cart_nudge.yaml", journeys / "cart_abandoners.yaml", journeys / "vip.yaml"],
        EXAMPLES / "cart_nudge.events.jsonl",
        out_path=out,
        until_ms=parse_until(UNTIL),
        policy_path=journeys / "policy.yaml",
        state_out=state,
    )
    assert result.invalid == []
    assert _lines(out) == _lines(EXAMPLES / "cart_nudge.expected.jsonl")
    funnel = result.funnel.journeys["cart_nudge"]
    assert funnel.exits == {"completed": 3, "left_the_segment": 2}  # s-ann and s-fay twice; s-cat, s-gus
    assert sorted(str(a["customer_id"]) for a in _lines(out)) == ["s-ann", "s-fay", "s-fay"]
    customers = read_state_file(state).customers
    assert customers["s-dan"].profile.segments.keys() == {"vip"}
    assert all("cart_abandoners" not in c.profile.segments for c in customers.values())  # all left by time


def test_the_campaign_example_gives_its_expected_actions(tmp_path: Path) -> None:
    """vip_preview: every VIP at 10:00 in their own zone (Berlin 09:00 UTC, New York 14:00 UTC, an unknown
    zone as Berlin), none to the VIP who opted out of product news (decision not_subscribed), none to the
    customer who became a VIP past 10:00 + the 2-hour window (late)."""
    out = tmp_path / "actions.jsonl"
    journeys = ROOT / "journeys"
    result = simulate_file(
        [journeys / "vip_preview.yaml", journeys / "vip.yaml"],
        EXAMPLES / "vip_preview.events.jsonl",
        out_path=out,
        until_ms=parse_until(UNTIL),
        policy_path=journeys / "policy.yaml",
    )
    assert result.invalid == []
    assert _lines(out) == _lines(EXAMPLES / "vip_preview.expected.jsonl")
    sent = sorted((str(a["customer_id"]), str(a["created_at"])) for a in _lines(out))
    assert sent == [
        ("v-ada", "2025-03-20T09:00:00Z"),
        ("v-bea", "2025-03-20T14:00:00Z"),
        ("v-cid", "2025-03-20T09:00:00Z"),
    ]
    assert result.campaigns == {
        "vip_preview": {"scheduled": 4, "sent": 3, "unsent_not_subscribed": 1, "late": 1}
    }


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


def test_the_run_stage_example_gives_its_expected_actions(tmp_path: Path) -> None:
    """smart_winback (journeys/run_stage/): channel: auto, send_time: optimal and an adaptive split,
    with the model deployed from 2025-03-10 (journeys/examples/smart_winback.deployments.yaml)."""
    out, decisions = tmp_path / "actions.jsonl", tmp_path / "decisions.jsonl"
    result = simulate_file(
        None,
        EXAMPLES / "smart_winback.events.jsonl",
        out_path=out,
        until_ms=parse_until(UNTIL),
        policy_path=ROOT / "journeys" / "policy.yaml",
        deployments_path=EXAMPLES / "smart_winback.deployments.yaml",
        decisions_path=decisions,
    )
    assert result.invalid == []
    assert result.refused_deployments == []
    assert _lines(out) == _lines(EXAMPLES / "smart_winback.expected.jsonl")
    made = _lines(decisions)
    held = [d for d in made if d["reason"] == "send_time"]
    assert len(held) == 7
    assert all(d["choice"]["send_at"][:19] == d["release_at"][:19] for d in held)
    models = {d["choice"]["model"] for d in made if "choice" in d}
    assert models == {None, "engagement@1"}  # before and after the model's deployment
    # the customers who engage at a local hour get their message at that hour, DST or not
    sent = {a["customer_id"]: a for a in _lines(out)}
    assert sent["rs-01"]["created_at"] == "2025-03-05T18:00:00Z"  # 19:00 in Berlin (opens at 19:15)
    assert sent["rs-02"]["created_at"] == "2025-03-12T16:00:00Z"  # 12:00 in New York, EDT (clicks 12:15 EST)
    assert sent["rs-02"]["channel"] == "sms"  # clicks SMS, never opens email
    assert "rs-05" not in sent  # no consent on any channel
