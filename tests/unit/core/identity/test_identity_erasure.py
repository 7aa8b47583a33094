"""Erasure: nothing of the customer is left, no later action names them, a late event does not revive them."""

from __future__ import annotations

import orjson
from identity_helpers import CART, T0, WELCOME, H, M, event, line, registry

from orchestrator.contracts import ChannelAction
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.state import CustomerState
from orchestrator.simulate import Simulator

ANN = {"customer_id": "C", "email": "ann@example.com", "phone": "+15550001"}


def test_erased_event_deletes_the_state_and_ends_every_instance() -> None:
    logic = CustomerLogic(registry(CART, WELCOME))
    state = logic.on_event("C", None, event("cart.updated", T0, ANN, {"item_count": 1}), T0).state
    state = logic.on_event("C", state, event("account.created", T0 + M, ANN), T0 + M).state
    assert state is not None
    assert len(state.instances) == 2
    out = logic.on_event("C", state, event("customer.erased", T0 + 2 * M, {"customer_id": "C"}), T0 + 2 * M)
    assert out.state is None
    assert out.actions == []
    assert out.next_wakeup_ms is None
    assert sorted((t.journey_id, t.kind, t.reason) for t in out.transitions) == [
        ("cart", "exited", "erased"),
        ("welcome", "exited", "erased"),
    ]


def test_erasure_through_simulate_leaves_nothing_and_late_events_do_not_revive() -> None:
    actions: list[ChannelAction] = []
    sim = Simulator(registry(CART, WELCOME), on_action=actions.append)
    lines = [
        line("page.viewed", T0 - 10 * M, {"anonymous_id": "a1"}),
        line("account.created", T0 - 5 * M, {**ANN, "anonymous_id": "a1"}),
        line("cart.updated", T0, {"customer_id": "C"}, {"item_count": 1}),
        line("profile.updated", T0 + M, {"customer_id": "B", "email": "bob@example.com"}),
        line("customer.erased", T0 + 30 * M, {"customer_id": "C"}),
        # late: happened before the erasure, arrives after it, under every identifier the customer had
        line("email.opened", T0 + 20 * M, {"email": "ann@example.com"}),
        line("page.viewed", T0 + 25 * M, {"anonymous_id": "a1"}),
        line("cart.updated", T0 + 2 * H, {"customer_id": "C"}, {"item_count": 3}),
        line("sms.clicked", T0 + 3 * H, {"phone": "+15550001"}),
    ]
    for n, raw in enumerate(lines, 1):
        sim.feed_line(n, raw)
    result = sim.finish(T0 + 3 * 86_400_000)
    assert actions == []
    assert set(sim.states) == {"B"}
    assert sim.pending_timers() == 0
    assert (result.erased, result.dropped_erased, result.merges) == (1, 4, 1)
    assert sim.graph.identities("C") == {}
    assert sim.graph.forward("anonymous_id:a1") == "anonymous_id:a1"
    stored = orjson.dumps(
        {"states": {k: s.to_dict() for k, s in sim.states.items()}, "graph": sim.graph.to_dict()}
    )
    for personal in (b"ann@example.com", b"+15550001", b'"C"', b'"a1"', b"anonymous_id"):
        assert personal not in stored
    assert result.funnel.journeys["welcome"].to_dict()["exits"] == {"erased": 1}


def test_erasure_of_an_unknown_customer_is_harmless() -> None:
    sim = Simulator(registry(CART))
    sim.feed_line(1, line("customer.erased", T0, {"customer_id": "nobody"}))
    assert sim.states == {}
    assert sim.graph.identities("nobody") == {}
    assert CustomerState.new("x").to_dict()["p"]["customer_key"] == "x"
