"""The identity graph: customer_id authoritative, anonymous visitors merge, aliases forward, determinism."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.contracts.events import Identifiers
from orchestrator.core.identity import (
    ERASED_TTL_MS,
    MAX_IDENTIFIERS,
    IdentityGraph,
    Merge,
    PagedMap,
    claim_token,
    key_id,
)
from orchestrator.core.resolution import canonical_key

T = 1_000_000
KEY = b"k" * 32


def ids(**kw: str) -> Identifiers:
    return Identifiers(**kw)


def test_customer_id_alone_resolves_to_itself() -> None:
    g = IdentityGraph(KEY)
    r = g.resolve(ids(customer_id="C1"), T)
    assert (r.customer_key, r.merges, r.erased) == ("C1", (), False)


def test_weak_identifiers_attach_to_the_customer_id_they_come_with() -> None:
    g = IdentityGraph(KEY)
    g.resolve(ids(customer_id="C1", email="Ann@Example.com", phone="+1"), T)
    assert g.resolve(ids(email="ann@example.com"), T + 1).customer_key == "C1"
    assert g.resolve(ids(phone="+1"), T + 2).customer_key == "C1"
    assert g.identities("C1") == {"customer_id": ["C1"], "email": ["ann@example.com"], "phone": ["+1"]}


def test_anonymous_visitor_who_signs_in_is_merged_and_forwarded() -> None:
    g = IdentityGraph(KEY)
    assert g.resolve(ids(anonymous_id="a1"), T).customer_key == "anonymous_id:a1"
    assert g.resolve(ids(anonymous_id="a1", device_id="d1"), T + 1).customer_key == "anonymous_id:a1"
    r = g.resolve(ids(customer_id="C1", anonymous_id="a1"), T + 2)
    assert r.customer_key == "C1"
    assert r.merges == (Merge("anonymous_id:a1", "C1"),)
    assert g.forward("anonymous_id:a1") == "C1"
    assert g.aliases("C1") == ["anonymous_id:a1"]
    assert g.resolve(ids(device_id="d1"), T + 3).customer_key == "C1"
    assert g.resolve(ids(anonymous_id="a1"), T + 4) == g.resolve(ids(customer_id="C1"), T + 5)
    assert "anonymous_id:a1" not in g


def test_two_customer_ids_sharing_a_device_or_household_email_stay_apart() -> None:
    g = IdentityGraph(KEY)
    g.resolve(ids(customer_id="C1", device_id="tablet", email="family@example.com"), T)
    r = g.resolve(ids(customer_id="C2", device_id="tablet", email="family@example.com"), T + 1)
    assert (r.customer_key, r.merges) == ("C2", ())
    assert g.resolve(ids(customer_id="C2"), T + 2).customer_key == "C2"
    assert g.resolve(ids(customer_id="C1"), T + 2).customer_key == "C1"
    # the shared identifiers stay with their first owner: an anonymous event on the device goes there
    assert g.resolve(ids(device_id="tablet"), T + 3).customer_key == "C1"
    assert "device_id" not in g.identities("C2")


def test_anonymous_event_linking_a_known_and_an_anonymous_customer_merges_the_anonymous_one() -> None:
    g = IdentityGraph(KEY)
    g.resolve(ids(customer_id="C1", email="a@x.io"), T)
    g.resolve(ids(device_id="d9"), T + 1)
    r = g.resolve(ids(email="a@x.io", device_id="d9"), T + 2)
    assert (r.customer_key, r.merges) == ("C1", (Merge("device_id:d9", "C1"),))


def test_two_anonymous_customers_seen_together_become_one() -> None:
    g = IdentityGraph(KEY)
    g.resolve(ids(device_id="d1"), T)
    g.resolve(ids(anonymous_id="a1"), T + 1)
    r = g.resolve(ids(device_id="d1", anonymous_id="a1"), T + 2)
    assert (r.customer_key, r.merges) == ("device_id:d1", (Merge("anonymous_id:a1", "device_id:d1"),))
    # later merged into a known customer: both old keys forward to it
    g.resolve(ids(customer_id="C", device_id="d1"), T + 3)
    assert g.forward("anonymous_id:a1") == g.forward("device_id:d1") == "C"


def test_identifiers_per_customer_are_bounded() -> None:
    g = IdentityGraph(KEY)
    for i in range(MAX_IDENTIFIERS + 10):
        assert g.resolve(ids(customer_id="C", device_id=f"d{i}"), T + i).customer_key == "C"
    assert len(g.identities("C")["device_id"]) == MAX_IDENTIFIERS


def test_erasure_forgets_and_blocks_late_events_for_a_bounded_time() -> None:
    g = IdentityGraph(KEY)
    g.resolve(ids(anonymous_id="a1"), T)
    g.resolve(ids(customer_id="C1", anonymous_id="a1", email="ann@example.com"), T + 1)
    erased = g.erase("C1", T + 10)
    assert (erased.customer_key, erased.aliases, erased.identifiers) == ("C1", ("anonymous_id:a1",), 3)
    assert "C1" not in g
    assert g.identities("C1") == {}
    assert g.forward("anonymous_id:a1") == "anonymous_id:a1"
    stored = orjson.dumps(g.to_dict())
    assert b"ann@example.com" not in stored
    assert b"C1" not in stored
    assert g.to_dict()["n"] == {}
    assert all(len(d) == 32 and int(d, 16) >= 0 for d in g.to_dict()["x"])  # only digests remain
    assert g.resolve(ids(email="ANN@example.com"), T + 5).erased  # late (before the erasure)
    assert g.resolve(ids(customer_id="C1"), T + 20).erased
    assert g.resolve(ids(anonymous_id="a1", device_id="new"), T + 20).erased
    # another customer carrying an erased weak identifier is not dropped, but it is not attached
    r = g.resolve(ids(customer_id="C2", email="ann@example.com"), T + 20)
    assert (r.customer_key, r.erased) == ("C2", False)
    assert "email" not in g.identities("C2")
    # after the marker's time the identifiers are free again
    assert not g.resolve(ids(customer_id="C1"), T + 10 + ERASED_TTL_MS).erased


def test_graph_round_trips_through_its_dict() -> None:
    g = IdentityGraph(KEY)
    g.resolve(ids(anonymous_id="a1"), T)
    g.resolve(ids(customer_id="C1", anonymous_id="a1", email="e@x"), T + 1)
    g.resolve(ids(customer_id="C9"), T + 1)
    g.erase("C9", T + 2)
    again = IdentityGraph.from_dict(orjson.loads(orjson.dumps(g.to_dict())), KEY)
    assert again.to_dict() == g.to_dict()
    assert again.forward("anonymous_id:a1") == "C1"
    assert again.resolve(ids(email="e@x"), T + 3).customer_key == "C1"
    assert again.resolve(ids(customer_id="C9"), T + 3).erased


_KINDS = ("customer_id", "email", "phone", "device_id", "anonymous_id")
_identifier_sets = st.dictionaries(
    st.sampled_from(_KINDS), st.sampled_from(["1", "2", "3"]), min_size=1, max_size=3
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_identifier_sets, min_size=1, max_size=25), st.integers(0, 24))
def test_resolution_is_deterministic_and_survives_a_restart(events: list[dict[str, str]], cut: int) -> None:
    a, b = IdentityGraph(KEY), IdentityGraph(KEY)
    results_a = [a.resolve(Identifiers(**e), T + i) for i, e in enumerate(events)]
    results_b = []
    for i, e in enumerate(events):
        if i == cut:
            b = IdentityGraph.from_dict(orjson.loads(orjson.dumps(b.to_dict())), KEY)
        results_b.append(b.resolve(Identifiers(**e), T + i))
    assert results_a == results_b
    assert a.to_dict() == b.to_dict()
    for e, r in zip(events, results_a, strict=True):
        if "customer_id" in e:
            assert r.customer_key == e["customer_id"]  # authoritative, exactly as before
        assert all(
            m.into_key == a.forward(m.into_key) or m.into_key in a.aliases(a.forward(m.into_key))
            for m in r.merges
        )
    # two customer_ids never merge: no known key is ever merged away
    known = {e["customer_id"] for e in events if "customer_id" in e}
    merged_away = {m.from_key for r in results_a for m in r.merges}
    assert not known & merged_away


@given(_identifier_sets)
def test_first_sighting_resolves_like_the_foundation_rule(identifiers: dict[str, str]) -> None:
    value = Identifiers(**identifiers)
    assert IdentityGraph(KEY).resolve(value, T).customer_key == canonical_key(value)


def test_resolve_needs_an_identifier() -> None:
    with pytest.raises(ValueError, match="identifier"):
        IdentityGraph(KEY).resolve([], T)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(_identifier_sets, st.sampled_from(["erase:1", "erase:2", "erase:email:1"])),
        min_size=1,
        max_size=30,
    )
)
def test_row_changes_rebuild_the_same_graph(steps: list[dict[str, str] | str]) -> None:
    g = IdentityGraph(KEY)
    table: dict[str, object] = {}
    for i, step in enumerate(steps):
        if isinstance(step, str):
            g.erase(step.removeprefix("erase:"), T + i)
        else:
            g.resolve(Identifiers(**step), T + i)
        for row, value in g.changes().items():
            if value is None:
                table.pop(row, None)
            else:
                table[row] = value
        again = IdentityGraph.from_rows(table.items(), KEY)
        assert again.to_dict() == g.to_dict()
    assert g.changes() == {}
    probe = Identifiers(email="1", device_id="2")
    assert IdentityGraph.from_rows(table.items(), KEY).resolve(probe, T + 99) == g.resolve(probe, T + 99)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(_identifier_sets, st.sampled_from(["erase:1", "erase:2", "erase:email:1"])),
        min_size=1,
        max_size=40,
    ),
    st.integers(min_value=1, max_value=3),
)
def test_a_paged_graph_with_a_tiny_cache_resolves_like_the_whole_one(
    steps: list[dict[str, str] | str], cache: int
) -> None:
    whole = IdentityGraph(KEY)
    table: dict[str, object] = {}
    paged = IdentityGraph.paged(table.get, 0, cache, (), KEY)
    for i, step in enumerate(steps):
        if isinstance(step, str):
            key = step.removeprefix("erase:")
            assert paged.erase(key, T + i) == whole.erase(key, T + i)
        else:
            assert paged.resolve(Identifiers(**step), T + i) == whole.resolve(Identifiers(**step), T + i)
        rows = paged.changes()
        assert rows == whole.changes()
        for row, value in rows.items():
            if value is None:
                table.pop(row, None)
            else:
                table[row] = value
        assert len(paged) == len(whole)
    assert IdentityGraph.from_rows(table.items(), KEY).to_dict() == whole.to_dict()
    for name in ("1", "2", "email:1", "phone:2", "device_id:1", "anonymous_id:2", "customer_id:1"):
        assert paged.lookup(name) == whole.lookup(name)
        assert paged.identities(name) == whole.identities(name)
        assert paged.aliases(name) == whole.aliases(name)


def test_a_paged_graph_keeps_at_most_its_cache_in_memory() -> None:
    table: dict[str, object] = {}
    graph = IdentityGraph.paged(table.get, 0, 10, (), KEY)
    for n in range(100):
        graph.resolve(ids(customer_id=f"C{n}", email=f"c{n}@x.io"), T + n)
        table.update(graph.changes())
    assert len(graph) == 100
    nodes = graph._nodes
    assert isinstance(nodes, PagedMap)
    assert nodes.cached() <= 10
    before = graph.cache_misses()
    assert graph.resolve(ids(email="c3@x.io"), T + 200).customer_key == "C3"  # read back from the table
    assert graph.cache_misses() > before


def test_a_look_up_before_the_rows_are_written_sees_them() -> None:
    table: dict[str, object] = {}
    graph = IdentityGraph.paged(table.get, 0, 1, (), KEY)
    graph.resolve(ids(anonymous_id="a1", device_id="d1"), T)
    table.update(graph.changes())
    graph.resolve(ids(customer_id="C1", anonymous_id="a1", email="c@x.io"), T + 1)
    rows = graph.changes()  # given, not written yet (the shell is still writing them)
    assert graph.lookup("device_id:d1") == "C1"
    assert graph.lookup("anonymous_id:a1") == "C1"
    assert graph.identities("C1")["email"] == ["c@x.io"]
    table.update({k: v for k, v in rows.items() if v is not None})
    for gone in [k for k, v in rows.items() if v is None]:
        table.pop(gone, None)
    graph.resolve(ids(customer_id="C2"), T + 2)
    graph.changes()
    assert graph.resolve(ids(device_id="d1"), T + 3).customer_key == "C1"


def test_an_older_table_gets_its_owner_and_alias_rows_once() -> None:
    whole = IdentityGraph(KEY)
    whole.resolve(ids(anonymous_id="a1"), T)
    whole.resolve(ids(customer_id="C1", anonymous_id="a1", email="ann@example.com"), T + 1)
    old_layout = {row: v for row, v in whole.changes().items() if v is not None and row.startswith("n:")}
    staged: dict[str, object] = {}
    for row, value in old_layout.items():
        staged.update(IdentityGraph.index_rows(row[2:], value))
    graph = IdentityGraph.paged(old_layout.get, 1, 4, (), KEY, staged=staged)
    assert graph.resolve(ids(email="ann@example.com"), T + 2).customer_key == "C1"
    assert graph.forward("anonymous_id:a1") == "C1"
    assert graph.changes() == staged
    assert graph.changes() == {}


def test_erasure_leaves_only_tombstones_and_digests_in_the_rows() -> None:
    g = IdentityGraph(KEY)
    g.resolve(ids(anonymous_id="a1"), T)
    g.resolve(ids(customer_id="C1", anonymous_id="a1", email="ann@example.com"), T + 1)
    assert g.changes() == {
        "n:C1": [1, ["email:ann@example.com", "anonymous_id:a1"], ["anonymous_id:a1"]],
        "n:anonymous_id:a1": None,
        "i:anonymous_id:a1": "C1",
        "i:email:ann@example.com": "C1",
        "a:anonymous_id:a1": "C1",
    }
    g.erase("C1", T + 2)
    rows = g.changes()
    for gone in ("n:C1", "i:anonymous_id:a1", "i:email:ann@example.com", "a:anonymous_id:a1"):
        assert rows.pop(gone) is None
    assert len(rows) == 3
    assert all(row.startswith("h:") and value == [T + 2, key_id(KEY)] for row, value in rows.items())


_KINDS = ("customer_id", "email", "phone", "anonymous_id")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(
                st.sampled_from(_KINDS), st.sampled_from(["1", "2", "3"]), min_size=1, max_size=3
            ),
            st.sampled_from(["", "", "erase", "receipt"]),
        ),
        max_size=25,
    )
)
def test_an_event_whose_identifiers_one_known_customer_claims_resolves_to_it_and_changes_nothing(
    events: list[tuple[dict[str, str], str]],
) -> None:
    """The fast path's ground (docs/runtime.md): what :meth:`IdentityGraph.claims` published so far — less
    what erasures took back — routes an event exactly as the graph would, with nothing to write. Receipts
    too: a ``customer_key`` goes by the claim of a customer_id of that name (:func:`fast_route`)."""
    g = IdentityGraph(KEY)
    claims: dict[str, str] = {}
    for n, (pairs, what) in enumerate(events):
        if what == "receipt":  # naming the key these identifiers would make: a customer_id or kind:value
            pairs = {"customer_key": canonical_key(Identifiers(**pairs))}
        identifiers = Identifiers(**pairs)
        items = identifiers.items()
        owners = {claims.get(claim_token("customer_id" if k == "customer_key" else k, v)) for k, v in items}
        g.changes()
        resolution = g.resolve(identifiers, T + n)
        if len(owners) == 1 and None not in owners:
            assert (resolution.customer_key, resolution.merges, resolution.erased) == (
                owners.pop(),
                (),
                False,
            )
            assert g.changes() == {}
        if resolution.erased:
            continue
        for token in g.claims(items, resolution.customer_key):
            claims[token] = resolution.customer_key
        if what == "erase" and resolution.customer_key in g:
            for token in g.erase(resolution.customer_key, T + n).claims:
                claims.pop(token, None)  # (some were never claimed: a tombstone for them is harmless)


def test_an_anonymous_customer_claims_nothing_and_a_known_one_its_own_identifiers() -> None:
    g = IdentityGraph(KEY)
    visitor = g.resolve(ids(anonymous_id="a1", email="x@y.io"), T)
    assert g.claims(ids(anonymous_id="a1", email="x@y.io").items(), visitor.customer_key) == []
    g.resolve(ids(customer_id="C2", phone="+2"), T + 1)
    known = ids(customer_id="C1", anonymous_id="a1", phone="+2")
    resolved = g.resolve(known, T + 2)  # a1 merges into C1; +2 stays C2's
    assert g.claims(known.items(), resolved.customer_key) == ["customer_id:C1", "anonymous_id:a1"]
    assert g.erase("C1", T + 3).claims == ("customer_id:C1", "email:x@y.io", "anonymous_id:a1")
