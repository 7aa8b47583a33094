"""Property tests (hypothesis): determinism, everyone who entered is somewhere or has left, no action
without an entry, state serialisation and wake-up timing change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from conftest import T0, H, make_event
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.contracts import CustomerEvent
from orchestrator.core.customer import CustomerLogic, Outcome
from orchestrator.core.engine.ids import action_id
from orchestrator.core.engine.state import CustomerState
from orchestrator.simulate import load_registry

JOURNEYS = Path(__file__).resolve().parents[4] / "journeys"
REGISTRY = load_registry(JOURNEYS)
KEY = "prop"

_kinds = st.sampled_from(
    [
        ("account.created", {}, {}),
        ("email.opened", {}, {"campaign": "welcome"}),
        ("email.opened", {}, {"campaign": "other"}),
        ("email.clicked", {}, {"campaign": "cart_reminder"}),
        ("order.completed", {"order_id": "o", "total": 20}, {}),
        ("cart.updated", {"item_count": 2, "total": 150.0}, {}),
        ("cart.updated", {"item_count": 0, "total": 0.0}, {}),
        ("segment.entered", {"segment": "lapsed_90d"}, {}),
        ("review.submitted", {}, {}),
        ("consent.changed", {"channel": "sms", "granted": True}, {}),
        ("consent.changed", {"channel": "sms", "granted": False}, {}),
        ("profile.updated", {"timezone": "Europe/Paris", "push_token": "tok"}, {}),
        ("page.viewed", {}, {}),
    ]
)
_gaps = st.sampled_from([0, 1, 60_000, H - 1, H, 24 * H - 1, 24 * H, 24 * H + 1, 3 * 24 * H, 8 * 24 * H])


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[int, CustomerEvent]]:
    """(wake-up fraction, event) pairs in time order; the fraction places an optional wake-up before it."""
    n = draw(st.integers(1, 25))
    at = T0
    out = []
    for i in range(n):
        typ, props, extra = draw(_kinds)
        at += draw(_gaps)
        ev = make_event(typ, at, KEY, props, event_id=f"p{i}", email="p@x.io", phone="+1", **extra)
        out.append((draw(st.integers(0, 4)), ev))
    return out


def run(
    script: list[tuple[int, CustomerEvent]], *, wake: bool = False, roundtrip: bool = False
) -> dict[str, Any]:
    logic = CustomerLogic(REGISTRY)
    state: CustomerState | None = None
    outs: list[Outcome] = []
    prev = T0
    for frac, ev in script:
        if wake and frac and ev.occurred_ms > prev:
            w = prev + (ev.occurred_ms - prev) * frac // 5
            if w < ev.occurred_ms:
                outs.append(logic.on_wakeup(KEY, state, w))
                state = outs[-1].state
        out = logic.on_event(KEY, state, ev, ev.occurred_ms)
        outs.append(out)
        state = out.state
        if roundtrip and state is not None:
            state = CustomerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
        prev = ev.occurred_ms
    outs.append(logic.on_wakeup(KEY, state, prev + 60 * 24 * H))
    state = outs[-1].state
    return {
        "actions": [a.model_dump(mode="json") for o in outs for a in o.actions],
        "transitions": [t.to_dict() for o in outs for t in o.transitions],
        "state": state.to_dict() if state else None,
    }


@given(scripts())
def test_same_inputs_same_outputs(script: list[tuple[int, CustomerEvent]]) -> None:
    assert run(script) == run(script)


@given(scripts())
def test_serialising_the_state_between_calls_changes_nothing(script: list[tuple[int, CustomerEvent]]) -> None:
    assert run(script) == run(script, roundtrip=True)


@given(scripts())
def test_when_wakeups_come_does_not_change_the_result(script: list[tuple[int, CustomerEvent]]) -> None:
    plain, woken = run(script), run(script, wake=True)
    assert plain["actions"] == woken["actions"]
    assert plain["state"] == woken["state"]


@given(scripts())
def test_everyone_who_entered_is_somewhere_or_has_left(script: list[tuple[int, CustomerEvent]]) -> None:
    result = run(script)
    entered = {(t["journey_id"], t["entry_seq"]) for t in result["transitions"] if t["kind"] == "entered"}
    left = [
        (t["journey_id"], t["entry_seq"]) for t in result["transitions"] if t["kind"] in ("goal", "exited")
    ]
    assert len(left) == len(set(left)), "nobody leaves twice"
    inside = {(i["j"], i["e"]) for i in (result["state"] or {}).get("i", [])}
    assert inside.isdisjoint(left)
    assert entered == inside | set(left)


@given(scripts())
def test_no_action_without_an_entry(script: list[tuple[int, CustomerEvent]]) -> None:
    result = run(script)
    entries = {
        (t["journey_id"], t["version"], t["entry_seq"])
        for t in result["transitions"]
        if t["kind"] == "entered"
    }
    for a in result["actions"]:
        possible = {
            action_id(KEY, j, v, seq, a["step_id"], visit)
            for j, v, seq in entries
            if j == a["journey_id"]
            for visit in range(1, 20)
        }
        assert a["action_id"] in possible
    assert len({a["action_id"] for a in result["actions"]}) == len(result["actions"])
