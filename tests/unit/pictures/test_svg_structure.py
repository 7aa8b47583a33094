"""Every example journey drawn as SVG by Graphviz: a node per entry, step, goal and exit rule, an edge per
move the journey can make, the labels that say what each does; with simulate's counts, the numbers on
the right nodes and edges."""

from __future__ import annotations

from pathlib import Path

import pytest
from picture_helpers import example_counts, example_journeys, needs_dot, read_svg

from orchestrator.core.journey import (
    BranchStep,
    JourneyDefinition,
    SendStep,
    SplitStep,
    WaitStep,
    load_journey_file,
)
from orchestrator.core.journey.graph import edges as step_edges
from orchestrator.pictures import journey_svg
from orchestrator.pictures.graph import duration as format_duration

pytestmark = needs_dot

FILES = example_journeys()


def _flat(text: str) -> str:
    return " ".join(text.split())


def _expected_nodes(d: JourneyDefinition) -> set[str]:
    nodes = {"@entry", *d.steps, *(f"@goal.{g.name}" for g in d.goals), *(f"@exit.{x.name}" for x in d.exits)}
    if any(_ends(s) for s in d.steps.values()):
        nodes.add("@end")
    return nodes


def _ends(step: object) -> bool:
    """A path of this step ends the journey without an exit step."""
    if isinstance(step, SendStep):
        return step.next is None
    if isinstance(step, WaitStep):
        return step.next is None or (step.mode in ("event", "condition") and step.timeout_next is None)
    if isinstance(step, SplitStep):
        return any(b.next is None for b in step.branches)
    return getattr(step, "next", "x") is None


def _expected_edges(d: JourneyDefinition) -> set[str]:
    out = {f"@entry->{d.start}"}
    for sid, step in d.steps.items():
        out |= {f"{sid}->{target}" for _, target in step_edges(step)}
    out |= {f"{sid}->@end" for sid, step in d.steps.items() if _ends(step)}
    return out


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_step_goal_and_exit_rule_is_a_node_and_every_move_an_edge(path: Path) -> None:
    d = load_journey_file(path)
    pic = read_svg(journey_svg(d))
    assert set(pic.nodes) == _expected_nodes(d)
    assert set(pic.edges) == _expected_edges(d)
    assert pic.title[:1] == [d.name]
    for sid, step in d.steps.items():
        assert pic.nodes[sid][0] == f"{step.kind}: {sid}"
        assert pic.classes[sid] == step.kind
    for g in d.goals:
        assert pic.nodes[f"@goal.{g.name}"][0] == f"goal: {g.name}"
    for x in d.exits:
        assert pic.nodes[f"@exit.{x.name}"][0] == f"exit: {x.name}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_the_labels_say_what_each_step_does(path: Path) -> None:
    d = load_journey_file(path)
    pic = read_svg(journey_svg(d))
    entry = pic.node_text("@entry")
    if d.entry.segment:
        assert d.entry.segment in entry
    for event in d.entry.events if not d.entry.segment else ():
        assert event in entry
    if d.entry.condition is not None:
        assert _flat(d.entry.condition.source) in entry
    for sid, step in d.steps.items():
        text = pic.node_text(sid)
        if isinstance(step, SendStep):
            for channel, template in step.templates:
                assert f"{channel}: {template}" in text
            if step.channel == "auto":
                assert "channel auto" in text
            assert ("send_time optimal" in text) == (step.send_time == "optimal")
        elif isinstance(step, WaitStep):
            if step.mode == "duration":
                assert f"for {format_duration(step.duration_ms)}" in text
            if step.mode in ("event", "condition"):
                timeout = f"timeout {format_duration(step.timeout_ms)}"
                assert timeout in text
                if step.timeout_next is not None:
                    assert timeout in pic.edge_text(f"{sid}->{step.timeout_next}")
            if step.mode == "event":
                assert all(e in text for e in step.event_types)
        elif isinstance(step, BranchStep):
            for cond, target in step.branches:
                assert _flat(cond.source) in pic.edge_text(f"{sid}->{target}")
            assert "default" in pic.edge_text(f"{sid}->{step.default}")
        elif isinstance(step, SplitStep):
            assert ("adaptive" in text) == step.adaptive
            for b in step.branches:
                label = pic.edge_text(f"{sid}->{b.next or '@end'}")
                assert f"{b.name} {b.basis_points // 100} %" in label
                if b.holdout:
                    assert "holdout" in label


def test_the_run_stage_journey_shows_auto_channels_optimal_time_adaptive_split_and_holdout() -> None:
    pic = read_svg(journey_svg(load_journey_file(FILES[-1])))
    send = pic.node_text("send_ten_off")
    assert "channel auto, one of:" in send
    assert "email: smart_winback_ten_email" in send
    assert "sms: smart_winback_ten_sms" in send
    assert "send_time optimal within 24h, 08:00-21:00" in send
    assert "adaptive (model weights)" in pic.node_text("offer")
    assert "holdout 10 %, held" in pic.edge_text("offer->@end")


COUNTED = ["welcome", "abandoned_cart", "winback", "post_purchase", "appointment_reminder", "cart_nudge"]


@pytest.mark.parametrize("name", [*COUNTED, "smart_winback"])
def test_simulated_counts_are_on_the_right_nodes_and_edges(name: str) -> None:
    path = FILES[-1] if name == "smart_winback" else Path(f"{FILES[0].parent}/{name}.yaml")
    d = load_journey_file(path)
    counts = example_counts(name)
    assert counts["entered"] > 0
    pic = read_svg(journey_svg(d, counts))
    assert f"{counts['entered']} entered" in pic.nodes["@entry"]
    for step in d.steps:
        assert f"{counts['steps'].get(step, 0)} arrived" in pic.nodes[step]
    for key, n in counts["edges"].items():
        source, target = key.split(">")
        texts = pic.edges[f"{source or '@entry'}->{target}"]
        assert any(str(n) in t or f"{n} in," in t for t in map(" ".join, texts)), (key, texts)
    for step, n in counts["occupancy"].items():
        assert f"now: {n}" in pic.nodes[step]
    for goal in d.goals:
        assert f"{counts['goals'].get(goal.name, 0)} converted" in pic.nodes[f"@goal.{goal.name}"]
    for rule in d.exits:
        assert f"{counts['exits'].get(rule.name, 0)} exited" in pic.nodes[f"@exit.{rule.name}"]
    totals = pic.node_text("@totals")
    assert f"entered {counts['entered']}" in totals
    assert f"converted {counts['converted']}" in totals
    for reason, n in counts["exits"].items():
        assert f"{reason}: {n}" in totals


def test_split_branches_show_entered_converted_and_rate_and_waiting_customers_a_badge() -> None:
    counts = example_counts("smart_winback", until=False)  # (the 14-day wait still holds customers)
    pic = read_svg(journey_svg(load_journey_file(FILES[-1]), counts))
    for branch, target in (("ten_off", "send_ten_off"), ("free_shipping", "send_free_shipping")):
        c = counts["splits"]["offer"][branch]
        rate = f"{100 * c['converted'] / c['entered']:.1f} %"
        assert f"{c['entered']} in, {c['converted']} converted ({rate})" in pic.edge_text(f"offer->{target}")
    assert counts["occupancy"], "some customers still wait at the end of the example"
    for step, n in counts["occupancy"].items():
        assert f"now: {n}" in pic.nodes[step]


def test_without_counts_no_number_is_drawn() -> None:
    pic = read_svg(journey_svg(load_journey_file(FILES[0])))
    assert "@totals" not in pic.nodes
    assert not any("arrived" in t or "now:" in t for texts in pic.nodes.values() for t in texts)


def test_the_end_node_counts_the_exits_no_exit_step_or_rule_shows() -> None:
    counts = example_counts("winback")
    assert counts["exits"].get("holdout_window")
    pic = read_svg(journey_svg(load_journey_file(Path(f"{FILES[0].parent}/winback.yaml")), counts))
    assert f"{counts['exits']['holdout_window']} holdout_window" in pic.nodes["@end"]
    assert not any("no_response" in t for t in pic.nodes["@end"])  # (its exit step shows it)
