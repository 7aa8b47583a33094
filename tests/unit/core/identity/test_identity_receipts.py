"""Receipts (issue 23): an event that names its customer by key (``customer_key``, what connectors send
for an action) resolves to that customer as it is now and changes nothing in the identity graph, so a
visitor's receipts never keep the visitor from merging when they sign in, and never bring an erased
customer back."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from identity_helpers import T0, D, M, line, raw, registry
from pydantic import ValidationError

from orchestrator.contracts import Identifiers, parse_event
from orchestrator.core.identity import ERASED_TTL_MS, MAX_ALIASES, IdentityGraph, Merge, Resolution
from orchestrator.exceptions import InvalidEventError
from orchestrator.simulate import Simulator

KEY = b"k" * 32
ANN = "email:ann@x.io"
SIGN_IN = {"customer_id": "C", "email": "ann@x.io"}


def named(key: str) -> Identifiers:
    return Identifiers(customer_key=key)


def receipt(type_: str, at_ms: int, key: str, action: str = "act_1") -> bytes:
    """What a connector reports for an action of customer ``key`` (the sandbox's form)."""
    return orjson.dumps(
        {**raw(type_, at_ms, {"customer_key": key}), "action_id": action, "campaign": "welcome"}
    )


def test_a_receipt_changes_nothing_and_the_visitor_still_merges_at_sign_in() -> None:
    g = IdentityGraph(KEY)
    assert g.resolve(Identifiers(email="ann@x.io"), T0).customer_key == ANN
    g.changes()
    assert g.resolve(named(ANN), T0 + 1) == Resolution(ANN)
    assert g.changes() == {}, "no row written: no customer made, nothing attached, nothing made known"
    assert g.claims(named(ANN).items(), ANN) == []
    assert g.identities(ANN) == {"email": ["ann@x.io"]}, "still anonymous"
    signed_in = g.resolve(Identifiers(**SIGN_IN), T0 + 2)
    assert signed_in == Resolution("C", (Merge(ANN, "C"),))
    assert g.resolve(named(ANN), T0 + 3) == Resolution("C"), "merged away: the survivor"
    assert g.resolve(named("C"), T0 + 3) == Resolution("C")


def test_why_a_receipt_may_not_name_the_key_as_a_customer_id() -> None:
    # what the sandbox sent before: the anonymous key became a known customer, and the sign-in could
    # no longer merge it (known customers are never merged away): two profiles
    g = IdentityGraph(KEY)
    g.resolve(Identifiers(email="ann@x.io"), T0)
    g.resolve(Identifiers(customer_id=ANN), T0 + 1)
    assert g.resolve(Identifiers(**SIGN_IN), T0 + 2).merges == ()


def test_a_key_merged_away_resolves_to_the_survivor_even_once_its_alias_is_forgotten() -> None:
    g = IdentityGraph(KEY)
    g.resolve(Identifiers(anonymous_id="a1"), T0)
    g.resolve(Identifiers(anonymous_id="a2"), T0 + 1)
    g.resolve(Identifiers(device_id="d", anonymous_id="a1"), T0 + 2)
    g.resolve(Identifiers(device_id="d", anonymous_id="a2"), T0 + 3)  # one device: a2 merges into a1
    assert g.resolve(named("anonymous_id:a2"), T0 + 4) == Resolution("anonymous_id:a1")
    g.resolve(Identifiers(customer_id="C", anonymous_id="a1"), T0 + 5)  # the sign-in: a1 (and a2) into C
    for key in ("anonymous_id:a1", "anonymous_id:a2"):
        assert g.resolve(named(key), T0 + 6) == Resolution("C"), key
    for n in range(MAX_ALIASES):  # more visitors sign in as C: the oldest aliases are forgotten
        g.resolve(Identifiers(anonymous_id=f"v{n}"), T0 + 10 + 2 * n)
        g.resolve(Identifiers(customer_id="C", anonymous_id=f"v{n}"), T0 + 11 + 2 * n)
    assert g.forward("anonymous_id:a1") == "anonymous_id:a1", "the alias is forgotten"
    g.changes()
    # the identifier an anonymous key is named after moved with the merge: still the survivor
    for key in ("anonymous_id:a1", "anonymous_id:a2"):
        assert g.resolve(named(key), T0 + 999) == Resolution("C"), key
    assert g.changes() == {}


def test_an_unknown_key_is_dropped_and_never_made() -> None:
    g = IdentityGraph(KEY)
    g.resolve(Identifiers(customer_id="B"), T0)
    g.changes()
    for key in ("nobody", ANN, "anonymous_id:zz", "customer_id:B"):
        assert g.resolve(named(key), T0 + 1) == Resolution(key, unknown=True)
    assert (len(g), g.changes(), g.lookup(ANN)) == (1, {}, None)
    sim = Simulator(registry())
    sim.feed_line(1, line("page.viewed", T0, {"customer_id": "B"}))
    sim.feed_line(2, receipt("email.sent", T0, ANN))
    result = sim.finish()
    assert (result.dropped_unknown, result.events_applied, set(sim.states)) == (1, 1, {"B"})
    assert "dropped_unknown" in result.report()["identity"]


def test_an_erased_customers_receipts_are_dropped_and_do_not_bring_it_back() -> None:
    g = IdentityGraph(KEY)
    g.resolve(Identifiers(email="ann@x.io"), T0)
    g.resolve(Identifiers(**SIGN_IN, anonymous_id="a1"), T0 + 1)
    g.resolve(Identifiers(email="eve@x.io"), T0 + 2)  # an anonymous customer, erased too
    g.erase("C", T0 + 3)
    g.erase("email:eve@x.io", T0 + 3)
    g.changes()
    for key in ("C", ANN, "anonymous_id:a1", "email:eve@x.io"):
        assert g.resolve(named(key), T0 + 4) == Resolution(key, erased=True), key
        # the markers expire: then the key is merely unknown — still dropped, still not made
        assert g.resolve(named(key), T0 + 4 + ERASED_TTL_MS) == Resolution(key, unknown=True), key
    assert (len(g), g.changes()) == (0, {})


def test_through_simulate_a_receipt_then_a_sign_in_make_one_profile_with_the_engagement() -> None:
    sim = Simulator(registry())
    lines = [
        line("page.viewed", T0, {"email": "ann@x.io"}),  # an anonymous customer keyed email:ann@x.io
        receipt("email.sent", T0 + M, ANN),
        receipt("email.delivered", T0 + M + 1000, ANN),
        receipt("email.opened", T0 + 2 * M, ANN),
        line("account.created", T0 + 10 * M, SIGN_IN),
        receipt("email.clicked", T0 + 11 * M, ANN),  # after the merge: the survivor
        receipt("email.opened", T0 + 12 * M, "email:gone@x.io"),  # nobody's
    ]
    for n, raw_line in enumerate(lines, 1):
        sim.feed_line(n, raw_line)
    result = sim.finish()
    assert set(sim.states) == {"C"}, "one profile"
    assert (result.merges, result.dropped_unknown, result.events_applied) == (1, 1, 6)
    profile = sim.states["C"].profile
    assert profile.engagement["email.opened"] == [1, T0 + 2 * M]
    assert profile.engagement["email.clicked"][0] == 1
    assert set(profile.campaign_engagement["welcome"]) >= {"email.opened", "email.clicked"}
    assert profile.identities == {"email": ["ann@x.io"], "customer_id": ["C"]}, "a key is no identity"
    assert sim.graph.aliases("C") == [ANN]


def test_a_customer_key_comes_alone() -> None:
    with pytest.raises(ValidationError, match="names the customer alone"):
        Identifiers(customer_key="C", email="ann@x.io")
    with pytest.raises(InvalidEventError, match="customer_key names the customer alone"):
        parse_event(orjson.dumps(raw("email.opened", T0, {"customer_key": "C", "customer_id": "C"})))
    with pytest.raises(ValueError, match="alone"):
        IdentityGraph(KEY).resolve([("email", "a@x.io"), ("customer_key", "C")], T0)
    assert named("C").items() == [("customer_key", "C")]


_KINDS = ("customer_id", "email", "anonymous_id")
_steps = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from(_KINDS), st.sampled_from(["1", "2"]), min_size=1, max_size=2),
        st.sampled_from(["erase:1", "erase:email:1", "erase:anonymous_id:2"]),
        st.sampled_from(["key:1", "key:2", "key:email:1", "key:email:2", "key:anonymous_id:1", "key:nobody"]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(_steps, st.integers(min_value=1, max_value=3))
def test_receipts_never_change_the_graph_and_resolve_alike_paged_or_whole(
    steps: list[dict[str, str] | str], cache: int
) -> None:
    whole = IdentityGraph(KEY)
    table: dict[str, Any] = {}
    paged = IdentityGraph.paged(table.get, 0, cache, (), KEY)
    for i, step in enumerate(steps):
        at = T0 + i * D
        if isinstance(step, str) and step.startswith("key:"):
            key = step.removeprefix("key:")
            size = len(whole)
            found = whole.resolve(named(key), at)
            assert paged.resolve(named(key), at) == found
            assert (whole.changes(), paged.changes(), len(whole)) == ({}, {}, size)
            assert found.merges == ()
            assert found.customer_key == (whole.current(key) or key)
            assert found.unknown or found.erased or found.customer_key in whole
            continue
        if isinstance(step, str):
            target = whole.current(step.removeprefix("erase:"))  # (as an erasure event resolves)
            if target is None:
                continue
            assert paged.erase(target, at) == whole.erase(target, at)
        else:
            assert paged.resolve(Identifiers(**step), at) == whole.resolve(Identifiers(**step), at)
        rows = paged.changes()
        assert rows == whole.changes()
        for row, value in rows.items():
            if value is None:
                table.pop(row, None)
            else:
                table[row] = value
