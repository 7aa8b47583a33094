"""The offline simulator and the `validate` / `simulate` commands."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from orchestrator.cli import simulate as simulate_cli
from orchestrator.cli import validate as validate_cli
from orchestrator.cli.simulate import parse_until
from orchestrator.core.customer import CustomerLogic
from orchestrator.exceptions import SimulationError
from orchestrator.simulate import Simulator, load_registry, simulate_file

ROOT = Path(__file__).resolve().parents[3]
JOURNEYS = ROOT / "journeys"
EVENTS = JOURNEYS / "examples" / "welcome.events.jsonl"


def _cli(module: object, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="orchestrator")
    module.register(parser.add_subparsers(dest="command", required=True))  # type: ignore[attr-defined]
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_invalid_lines_are_skipped_and_reported(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    good = EVENTS.read_text().splitlines()
    events.write_text("\n".join([good[0], "{not json", '{"type": "x"}', "", good[1]]) + "\n")
    result = simulate_file(JOURNEYS, events)
    assert [(i.line, i.reason) for i in result.invalid] == [(2, "not_json"), (3, "invalid_event")]
    assert "event_id" in result.invalid[1].error
    assert result.events_applied == 2


def test_until_fires_pending_timers_and_without_it_they_stay(tmp_path: Path) -> None:
    events = JOURNEYS / "examples" / "post_purchase.events.jsonl"
    early = simulate_file(JOURNEYS / "post_purchase.yaml", events)
    late = simulate_file(
        JOURNEYS / "post_purchase.yaml", events, until_ms=parse_until("2025-03-31T00:00:00Z")
    )
    assert late.actions == early.actions + 3  # the second order's three review requests


def test_duplicates_are_counted_not_applied(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    first = next(line for line in EVENTS.read_text().splitlines() if "account.created" in line)
    events.write_text(f"{first}\n{first}\n")
    result = simulate_file(JOURNEYS, events)
    assert (result.events_applied, result.duplicates, result.actions) == (1, 1, 1)


def test_simulator_matches_per_customer_replay() -> None:
    """Timers fired by the global clock give the same actions as feeding each customer alone."""
    lines = EVENTS.read_bytes().splitlines()
    sim_actions: list[str] = []
    sim = Simulator(load_registry(JOURNEYS), on_action=lambda a: sim_actions.append(a.action_id))
    for n, raw in enumerate(lines, 1):
        sim.feed_line(n, raw)
    sim.finish(parse_until("2025-04-30T00:00:00Z"))
    from orchestrator.contracts import parse_event
    from orchestrator.core.resolution import canonical_key

    logic = CustomerLogic(load_registry(JOURNEYS))
    by_customer: dict[str, list[bytes]] = {}
    for raw in lines:
        by_customer.setdefault(canonical_key(parse_event(raw).identifiers), []).append(raw)
    alone: list[str] = []
    for key, raws in by_customer.items():
        state = None
        for raw in raws:
            ev = parse_event(raw)
            out = logic.on_event(key, state, ev, ev.occurred_ms)
            state = out.state
            alone += [a.action_id for a in out.actions]
        out = logic.on_wakeup(key, state, parse_until("2025-04-30T00:00:00Z"))
        alone += [a.action_id for a in out.actions]
    assert sorted(sim_actions) == sorted(alone)


def test_missing_inputs_raise_simulation_error(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="events file not found"):
        simulate_file(JOURNEYS, tmp_path / "nope.jsonl")
    with pytest.raises(SimulationError, match="no such journey"):
        simulate_file(tmp_path / "nodir", EVENTS)
    with pytest.raises(SimulationError, match="ISO 8601"):
        parse_until("tomorrow")


def test_simulate_command_writes_actions_report_and_funnel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "a.jsonl", tmp_path / "r.json"
    argv = ["simulate", "--journeys", str(JOURNEYS), "--events", str(EVENTS), "--out", str(out)]
    code = _cli(simulate_cli, [*argv, "--report", str(report), "--until", "2025-04-30T00:00:00Z"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "journey welcome" in printed
    assert "step welcome_sms" in printed
    data = orjson.loads(report.read_bytes())
    assert data["journeys"]["welcome"]["entered"] == 6
    assert data["journeys"]["welcome"]["goals"] == {"first_order": 1}
    assert len(out.read_bytes().splitlines()) == data["actions"]


def test_simulate_report_has_split_conversions_including_holdout(tmp_path: Path) -> None:
    result = simulate_file(
        JOURNEYS / "winback.yaml",
        JOURNEYS / "examples" / "winback.events.jsonl",
        until_ms=parse_until("2025-04-30"),
    )
    splits = result.report()["journeys"]["winback"]["splits"]["ab"]
    assert set(splits) == {"offer_10", "offer_20", "holdout"}
    assert sum(b["entered"] for b in splits.values()) == 20
    assert sum(b["converted"] for b in splits.values()) == result.funnel.journeys["winback"].goals["ordered"]


def test_validate_command_clean_and_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(validate_cli, ["validate", str(JOURNEYS)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 10  # six journeys, journeys/policy.yaml, two segments and a campaign
    assert all(": ok: " in line for line in out)
    assert any(": ok: policy default v1" in line for line in out)
    bad1 = tmp_path / "one.yaml"
    bad1.write_text(
        "id: one\nversion: 1\nentry: {event: a.b}\nsteps:\n  s: {type: send, channel: fax, template: t}\n"
    )
    bad2 = tmp_path / "two.yaml"
    bad2.write_text("id: two\nversion: 1\nsteps: {}\n")
    assert _cli(validate_cli, ["validate", str(bad1), str(bad2), str(tmp_path / "gone.yaml")]) == 1
    err = capsys.readouterr().err
    assert f"{bad1}:5: steps.s.channel: unknown value 'fax'" in err
    assert f"{bad2}:1: entry: required field is missing" in err
    assert f"{bad2}:3: steps: a journey needs at least one step" in err
    assert "gone.yaml:1: (root): no such file or directory" in err


def test_simulate_says_who_still_waits_and_the_until_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 18, trap 5: without --until, "N actions" gave no hint that customers still waited on timers
    argv = [
        "simulate", "--journeys", str(JOURNEYS / "abandoned_cart.yaml"),
        "--events", str(JOURNEYS / "examples" / "abandoned_cart.events.jsonl"),
    ]  # fmt: skip
    assert _cli(simulate_cli, [*argv, "--report", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2] == "1 customer waits on a timer; the next wake-up is at 2025-03-06T12:00:00.000Z"
    assert printed[-1].endswith("pass --until 2025-03-06T12:00:00.000Z (or later) to see what they do")
    waiting = orjson.loads((tmp_path / "r.json").read_bytes())["waiting"]
    assert waiting == {"customers": 1, "next_wakeup_ms": parse_until("2025-03-06T12:00:00Z")}
    assert _cli(simulate_cli, [*argv, "--until", "2030-01-01T00:00:00Z"]) == 0
    assert "waits on a timer" not in capsys.readouterr().out  # nothing left to wait for


def test_the_state_file_holds_each_campaign_and_what_it_did(tmp_path: Path) -> None:
    from orchestrator.simulate.state_file import read_state_file

    state = tmp_path / "state.json"
    result = simulate_file(
        JOURNEYS,
        JOURNEYS / "examples" / "vip_preview.events.jsonl",
        until_ms=parse_until("2025-04-30T00:00:00Z"),
        policy_path=JOURNEYS / "policy.yaml",
        state_out=state,
    )
    campaigns = read_state_file(state).campaigns
    assert campaigns == {
        "vip_preview": {
            "version": 1,
            "status": "active",
            "name": "Spring collection preview for VIPs",
            "segment": "vip",
            "counts": result.campaigns["vip_preview"],
        }
    }
    assert campaigns["vip_preview"]["counts"] == {
        "late": 1, "scheduled": 4, "sent": 3, "unsent_not_subscribed": 1
    }  # fmt: skip
    # a run without campaigns writes none; simulate's report given for a state file is named as such
    simulate_file(JOURNEYS / "welcome.yaml", EVENTS, state_out=state)
    assert "campaigns" not in orjson.loads(state.read_bytes())
    report = tmp_path / "report.json"
    assert _cli(simulate_cli, ["simulate", "--journeys", str(JOURNEYS / "welcome.yaml"),
                               "--events", str(EVENTS), "--report", str(report)]) == 0  # fmt: skip
    with pytest.raises(SimulationError, match=r"report of orchestrator simulate .* file of --state-out"):
        read_state_file(report)


def test_simulate_a_receipt_then_a_sign_in_one_customer_to_inspect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 23 through the commands: the sandbox's receipts for an anonymous customer (``customer_key``),
    then the sign-in: one customer (inspected by the old key) with the receipt's open; a receipt of a
    key nobody has is dropped and counted."""

    def event(eid: str, etype: str, ids: dict[str, str], at: str, **extra: str) -> bytes:
        body = {"event_id": eid, "type": etype, "identifiers": ids, "occurred_at": at, "source": "t"}
        return orjson.dumps({**body, **extra})

    ann, nobody = {"customer_key": "email:ann@x.io"}, {"customer_key": "nobody"}
    sign_in = {"customer_id": "C", "email": "ann@x.io"}
    lines = [
        event("v1", "page.viewed", {"email": "ann@x.io"}, "2025-03-03T09:00:00Z"),
        event("r1", "email.opened", ann, "2025-03-03T09:05:00Z", action_id="a1", campaign="promo"),
        event("r2", "email.opened", nobody, "2025-03-03T09:06:00Z", action_id="a2"),
        event("s1", "account.created", sign_in, "2025-03-03T09:10:00Z"),
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines))
    state, report = tmp_path / "state.json", tmp_path / "report.json"
    argv = ["simulate", "--journeys", str(JOURNEYS / "welcome.yaml"), "--events", str(events)]
    assert _cli(simulate_cli, [*argv, "--state-out", str(state), "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert (
        "identity: 1 merges, 0 erased, 0 events of erased identifiers dropped, 1 events naming an " in printed
    )
    identity = orjson.loads(report.read_bytes())["identity"]
    assert identity == {"merges": 1, "erased": 0, "dropped_erased": 0, "dropped_unknown": 1}
    assert orjson.loads(report.read_bytes())["customers"] == 1
    from orchestrator.cli import main

    assert main(["inspect", "email:ann@x.io", "--from-simulate", str(state), "--json"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["customer_key"] == "C"
    assert shown["aliases"] == ["email:ann@x.io"]
    assert shown["profile"]["engagement"]["email"]["opened"] == 1
    assert "email.opened" in shown["profile"]["campaigns"]["promo"]
    assert shown["identities"] == {"customer_id": ["C"], "email": ["ann@x.io"]}, "a key is no identity"
