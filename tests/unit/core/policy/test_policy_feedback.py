"""Engagement feedback, properties of caps, and `orchestrator simulate --policy`."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_helpers import T0, Customer, D, H, policy, registry, send_journey

from orchestrator.cli.simulate import register as register_simulate
from orchestrator.core.engine.state import CustomerState
from orchestrator.simulate import simulate_file

ROOT = Path(__file__).resolve().parents[4]
EXAMPLES = ROOT / "journeys" / "examples"

WAIT_DELIVERY = """\
id: w
version: 1
entry: {event: w.go}
steps:
  mail: {type: send, channel: email, template: t, campaign: spring, next: delivered}
  delivered:
    type: wait
    until_event: {event: email.delivered, of: mail}
    timeout: {after: 1d, next: lost}
    next: check
  check:
    type: branch
    branches:
      - {when: 'profile.engagement.email.delivered >= 1', next: done}
    default: lost
  done: {type: exit, reason: delivered}
  lost: {type: exit, reason: lost}
"""


def test_delivery_wakes_the_waiting_journey_and_updates_the_engagement_summary() -> None:
    c = Customer.of(registry(WAIT_DELIVERY), policy())
    c.reachable(T0, "email")
    (action,) = c.on("w.go", T0).actions
    out = c.on("email.delivered", T0 + 1000, action_id=action.action_id, campaign="spring", journey="w")
    assert [(t.kind, t.reason) for t in out.transitions][-1] == ("exited", "delivered")
    assert c.state is not None
    view = c.state.profile.cel_view()["engagement"]
    assert view["email"]["delivered"] == 1
    assert view["email"]["last_delivered_ms"] == T0 + 1000
    assert c.state.profile.campaign_engagement == {"spring": {"email.delivered": T0 + 1000}}
    again = CustomerState.from_dict(c.state.to_dict())
    assert again.profile.engagement == c.state.profile.engagement


def test_engagement_of_many_campaigns_is_bounded() -> None:
    c = Customer.of(registry(), None)
    for i in range(60):
        c.on("email.opened", T0 + i, campaign=f"c{i}")
    assert c.state is not None
    kept = c.state.profile.campaign_engagement
    assert len(kept) == 50
    assert "c0" not in kept
    assert "c59" in kept
    assert c.state.profile.engagement["email.opened"] == [60, T0 + 59]


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=20 * H), min_size=1, max_size=25),
    journeys=st.lists(st.sampled_from(["a.go", "b.go"]), min_size=25, max_size=25),
    cap=st.integers(min_value=0, max_value=3),
)
def test_a_cap_is_never_exceeded_in_any_rolling_window(
    gaps: list[int], journeys: list[str], cap: int
) -> None:
    reg = registry(send_journey("a", "a.go", "sms"), send_journey("b", "b.go", "sms"))
    c = Customer.of(reg, policy(f"frequency_caps: [{{name: c, channels: [sms], max: {cap}, per: 1d}}]\n"))
    c.reachable(T0, "sms")
    t = T0
    for gap, j in zip(gaps, journeys, strict=False):
        t += gap
        c.on(j, t)
        if c.state is not None:  # a state round trip in between changes nothing
            c.state = CustomerState.from_dict(c.state.to_dict())
    times = [int(a.created_at.timestamp() * 1000) for a in c.actions]
    for start in times:
        assert sum(1 for x in times if start <= x < start + D) <= cap
    assert len(c.decisions) == len(gaps)
    assert {d.kind for d in c.decisions} <= {"sent", "suppressed"}


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_simulate_with_a_policy(tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        "kind: policy\nid: strict\nversion: 1\n"
        "frequency_caps: [{name: one_a_week, channels: [email], max: 1, per: 7d}]\n"
        'quiet_hours: {start: "00:00", end: "23:59", action: drop, channels: [sms]}\n'
    )
    events = EXAMPLES / "welcome.events.jsonl"
    plain = simulate_file(ROOT / "journeys" / "welcome.yaml", events, until_ms=T0 + 365 * D)
    out = tmp_path / "actions.jsonl"
    decisions = tmp_path / "decisions.jsonl"
    result = simulate_file(
        ROOT / "journeys" / "welcome.yaml",
        events,
        out_path=out,
        until_ms=T0 + 365 * D,
        policy_path=strict,
        decisions_path=decisions,
    )
    written = _lines(decisions)
    assert len(written) == sum(result.decisions.values())
    assert result.actions == len(_lines(out)) < plain.actions
    assert result.decisions.get("dropped: quiet_hours", 0) >= 1
    assert all(str(d["policy"]) == "strict@1" for d in written)
    funnel = result.report()["journeys"]["welcome"]["decisions"]
    assert funnel == result.decisions
    sent = {d["action_id"] for d in written if d["kind"] in ("sent", "redirected")}
    assert sent == {a["action_id"] for a in _lines(out)}


def test_simulate_cli_prints_decisions(tmp_path: Path, capsys: object) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register_simulate(parser.add_subparsers(dest="command", required=True))
    report = tmp_path / "r.json"
    args = parser.parse_args(
        [
            "simulate",
            "--journeys",
            str(ROOT / "journeys"),
            "--events",
            str(EXAMPLES / "welcome.events.jsonl"),
            "--policy",
            str(ROOT / "journeys" / "policy.yaml"),
            "--report",
            str(report),
        ]
    )
    assert args.func(args) == 0
    text = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "decision sent: allowed" in text
    assert "decisions: " in text
    assert json.loads(report.read_text())["decisions"]
