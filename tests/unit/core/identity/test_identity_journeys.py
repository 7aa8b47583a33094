"""Identity stitching with journeys: sign-in mid-journey, shared devices, consent, determinism.

Each scenario runs through the core directly (IdentityGraph + CustomerLogic, as a shell does) and
through the offline simulator.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from identity_helpers import CART, T0, WELCOME, H, M, event, line, registry

from orchestrator.contracts import ChannelAction
from orchestrator.core.customer import CustomerLogic, Transition
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.identity import IdentityGraph
from orchestrator.simulate import Simulator

KNOWN = {"customer_id": "C", "email": "known@example.com"}


def simulate(
    reg_texts: tuple[str, ...], lines: list[bytes], until: int
) -> tuple[Simulator, list[ChannelAction]]:
    actions: list[ChannelAction] = []
    sim = Simulator(registry(*reg_texts), on_action=actions.append)
    for n, raw in enumerate(lines, 1):
        sim.feed_line(n, raw)
    sim.finish(until)
    return sim, actions


def sign_in_lines(*, known_in_cart: bool) -> list[bytes]:
    out = [line("profile.updated", T0 - H, KNOWN, {"first_name": "Ann"})]
    if known_in_cart:
        out.append(line("cart.updated", T0 - 30 * M, {"customer_id": "C"}, {"item_count": 1}))
    out += [
        line("page.viewed", T0 - 5 * M, {"anonymous_id": "a1"}),
        line("cart.updated", T0, {"anonymous_id": "a1", "email": "typo@exmaple.com"}, {"item_count": 2}),
        line("account.login", T0 + 10 * M, {"customer_id": "C", "anonymous_id": "a1"}),
    ]
    return out


def test_anonymous_cart_then_sign_in_mid_journey_through_the_core() -> None:
    logic = CustomerLogic(registry(CART))
    graph = IdentityGraph()
    states: dict[str, CustomerState | None] = {}
    transitions: list[Transition] = []
    actions: list[ChannelAction] = []

    def feed(type_: str, at: int, ids: dict[str, str], props: dict[str, Any] | None = None) -> str:
        r = graph.resolve(event(type_, at, ids).identifiers, at)
        for m in r.merges:
            out = logic.on_merge(m.into_key, states.get(m.into_key), states.pop(m.from_key, None), at)
            states[m.into_key] = out.state
            transitions.extend(out.transitions)
        out = logic.on_event(r.customer_key, states.get(r.customer_key), event(type_, at, ids, props), at)
        states[r.customer_key] = out.state
        actions.extend(out.actions)
        return r.customer_key

    feed("profile.updated", T0 - H, KNOWN)
    assert feed("cart.updated", T0, {"anonymous_id": "a1"}, {"item_count": 2}) == "anonymous_id:a1"
    assert feed("account.login", T0 + 10 * M, {"customer_id": "C", "anonymous_id": "a1"}) == "C"
    assert set(states) == {"C"}
    state = states["C"]
    assert state is not None
    assert [(i.journey, i.step, i.due_ms) for i in state.instances] == [("cart", "wait_1h", T0 + H)]
    assert state.profile.identities["anonymous_id"] == ["a1"]
    assert state.profile.counts_by_type["cart.updated"] == 1
    woke = logic.on_wakeup("C", state, T0 + H)
    (action,) = woke.actions
    assert (action.customer_id, action.recipient) == ("C", "known@example.com")
    assert not transitions


def test_anonymous_cart_then_sign_in_through_simulate_sends_once_to_the_known_address() -> None:
    sim, actions = simulate((CART,), sign_in_lines(known_in_cart=False), T0 + 2 * H)
    assert [(a.customer_id, a.recipient) for a in actions] == [("C", "known@example.com")]
    assert set(sim.states) == {"C"}
    assert sim.result.merges == 1
    assert sim.result.funnel.journeys["cart"].to_dict()["entered"] == 1


def test_when_both_sides_run_the_journey_the_canonical_instance_goes_on_and_the_other_exits_merged() -> None:
    sim, actions = simulate((CART,), sign_in_lines(known_in_cart=True), T0 + 2 * H)
    assert len(actions) == 1
    assert actions[0].created_at.timestamp() * 1000 == T0 + 30 * M  # the known side's timer
    funnel = sim.result.funnel.journeys["cart"].to_dict()
    assert funnel["exits"] == {"merged": 1, "completed": 1}  # the known side sent, then completed


def test_two_customer_ids_sharing_a_device_stay_apart_in_simulate() -> None:
    lines = [
        line("cart.updated", T0, {"customer_id": "C1", "device_id": "tablet"}, {"item_count": 1}),
        line("cart.updated", T0 + M, {"customer_id": "C2", "device_id": "tablet"}, {"item_count": 1}),
        line("profile.updated", T0 + 2 * M, {"customer_id": "C1", "email": "c1@x.io"}),
        line("profile.updated", T0 + 2 * M, {"customer_id": "C2", "email": "c2@x.io"}),
    ]
    sim, actions = simulate((CART,), lines, T0 + 2 * H)
    assert sorted((a.customer_id, a.recipient) for a in actions) == [("C1", "c1@x.io"), ("C2", "c2@x.io")]
    assert set(sim.states) == {"C1", "C2"}
    assert sim.result.merges == 0


def welcome_lines(*, revoke: bool, anonymous_revoke: bool = False) -> list[bytes]:
    grant = {"channel": "sms", "category": "marketing", "granted": True}
    out = [line("consent.changed", T0 - M, {"customer_id": "C", "phone": "+15550001"}, grant)]
    if anonymous_revoke:
        out = [
            line("consent.changed", T0 - 2 * M, {"phone": "+15550001"}, {**grant, "granted": False}),
            line("consent.changed", T0 - M, {"customer_id": "C"}, grant),
            line("account.login", T0 - M, {"customer_id": "C", "phone": "+15550001"}),
        ]
    out.append(line("account.created", T0, {"customer_id": "C"}))
    if revoke:
        out.append(line("consent.changed", T0 + 2 * H, {"customer_id": "C"}, {**grant, "granted": False}))
    return out


def test_consent_change_is_seen_by_a_running_journey() -> None:
    _, sent = simulate((WELCOME,), welcome_lines(revoke=False), T0 + 48 * H)
    assert [a.channel for a in sent] == ["sms"]
    sim, sent = simulate((WELCOME,), welcome_lines(revoke=True), T0 + 48 * H)
    assert sent == []
    assert sim.result.funnel.journeys["welcome"].to_dict()["exits"] == {"no_sms_consent": 1}


def test_on_merge_the_stricter_consent_wins() -> None:
    sim, sent = simulate((WELCOME,), welcome_lines(revoke=False, anonymous_revoke=True), T0 + 48 * H)
    assert sim.result.merges == 1
    assert sim.states["C"].profile.consent == {"sms": {"marketing": False}}
    assert sent == []


_steps = st.lists(
    st.tuples(
        st.sampled_from(["cart.updated", "page.viewed", "order.completed", "account.login"]),
        st.dictionaries(
            st.sampled_from(["customer_id", "anonymous_id", "device_id", "email"]),
            st.sampled_from(["1", "2"]),
            min_size=1,
            max_size=3,
        ),
    ),
    min_size=1,
    max_size=15,
)


@settings(max_examples=40, deadline=None)
@given(_steps)
def test_simulate_with_stitching_is_deterministic(steps: list[tuple[str, dict[str, str]]]) -> None:
    lines = [line(t, T0 + i * 7 * M, ids, {"item_count": 1}) for i, (t, ids) in enumerate(steps)]
    runs = [simulate((CART, WELCOME), lines, T0 + 5 * H) for _ in range(2)]
    (sim_a, acts_a), (sim_b, acts_b) = runs
    assert [a.to_json() for a in acts_a] == [a.to_json() for a in acts_b]
    assert {k: s.to_dict() for k, s in sim_a.states.items()} == {
        k: s.to_dict() for k, s in sim_b.states.items()
    }
    assert sim_a.graph.to_dict() == sim_b.graph.to_dict()
    # every state is kept under a canonical key, and merged keys hold no state
    assert all(sim_a.graph.forward(k) == k for k in sim_a.states)
    # at most one running cart instance per canonical customer (max_concurrent 1 survives merges)
    assert all(sum(i.journey == "cart" for i in s.instances) <= 1 for s in sim_a.states.values())
