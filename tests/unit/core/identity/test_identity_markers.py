"""Erased-identifier markers: keyed (HMAC-SHA256), versioned by key, legacy unsalted ones honoured until
they expire, rows that rebuild the same graph."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.contracts.events import Identifiers
from orchestrator.core.identity import ERASED_TTL_MS, IdentityGraph, key_id
from orchestrator.core.identity.markers import keyed_digest, legacy_digest

T = 1_000_000
KEY = b"first secret key of the tests...."
OTHER = b"second secret key of the tests..."
ANN = {"customer_id": "C1", "email": "ann@example.com", "phone": "+15550001"}


def _erased_graph(key: bytes) -> tuple[IdentityGraph, dict[str, Any]]:
    g = IdentityGraph(key)
    g.resolve(Identifiers(**ANN), T)
    g.changes()
    g.erase("C1", T + 10)
    return g, g.changes()


def _plain(kind: str, token: str) -> str:
    return hashlib.sha256(f"{kind}\x00{token}".encode()).hexdigest()


def test_markers_are_keyed_not_the_plain_sha256_of_the_identifier() -> None:
    _, rows = _erased_graph(KEY)
    markers = {row[2:] for row, value in rows.items() if row.startswith("h:")}
    assert len(markers) == 3
    plain = {_plain(k, t) for k, t in [("customer_id", "C1"), ("email", "email:ann@example.com"),
                                       ("phone", "phone:+15550001")]}  # fmt: skip
    assert not {m for m in markers if any(p.startswith(m) for p in plain)}
    assert markers == {
        keyed_digest(KEY, "customer_id", "C1"),
        keyed_digest(KEY, "email", "email:ann@example.com"),
        keyed_digest(KEY, "phone", "phone:+15550001"),
    }
    assert rows["n:C1"] is None
    text = orjson.dumps({r: v for r, v in rows.items() if r.startswith("h:")})
    for personal in (b"ann@example.com", b"+15550001", b"C1"):
        assert personal not in text
    assert not [row for row in rows if row.startswith("x:")], "no unkeyed marker is ever written"


def test_two_keys_give_different_markers_and_a_key_id_each() -> None:
    _, a = _erased_graph(KEY)
    _, b = _erased_graph(OTHER)
    assert len(set(a) | set(b)) == 9, "only the tombstones (n:C1 and its identifiers' i: rows) are common"
    assert {r for r in a if not r.startswith("h:")} == {
        "n:C1",
        "i:email:ann@example.com",
        "i:phone:+15550001",
    }
    assert all(a[r] is None for r in a if not r.startswith("h:"))
    assert key_id(KEY) != key_id(OTHER)
    assert {v[1] for r, v in a.items() if r.startswith("h:")} == {key_id(KEY)}


def test_erasing_needs_a_key() -> None:
    g = IdentityGraph()
    g.resolve(Identifiers(customer_id="C1"), T)
    with pytest.raises(ValueError, match="erasure key"):
        g.erase("C1", T + 1)
    assert "C1" in g, "nothing was forgotten half-way"


def test_a_rotated_key_leaves_old_markers_unrecognised_unless_given_as_previous() -> None:
    _, rows = _erased_graph(KEY)
    stored = [(r, v) for r, v in rows.items() if v is not None]
    rotated = IdentityGraph.from_rows(stored, OTHER)
    assert rotated.markers.unrecognised() == 3
    assert not rotated.resolve(Identifiers(email="ann@example.com"), T + 20).erased
    both = IdentityGraph.from_rows(stored, OTHER, previous_keys=[KEY])
    assert both.markers.unrecognised() == 0
    assert both.resolve(Identifiers(email="ann@example.com"), T + 20).erased
    assert both.resolve(Identifiers(customer_id="C1"), T + 20).erased
    # new markers are made with the current key
    both.resolve(Identifiers(customer_id="C2", email="bob@example.com"), T + 30)
    both.erase("C2", T + 40)
    assert both.markers.by_key() == {key_id(KEY): 3, key_id(OTHER): 2}
    # a graph with only a previous key checks markers but cannot make new ones
    reader = IdentityGraph.from_rows(stored, None, previous_keys=[KEY])
    assert reader.resolve(Identifiers(phone="+15550001"), T + 20).erased


def test_legacy_unkeyed_markers_are_honoured_until_they_expire_then_swept() -> None:
    legacy_rows = [
        (f"x:{legacy_digest('email', 'email:old@example.com')}", T),
        (f"x:{legacy_digest('customer_id', 'OLD')}", T),
    ]
    g = IdentityGraph.from_rows(legacy_rows, KEY)
    assert g.markers.legacy() == 2
    assert g.resolve(Identifiers(email="Old@example.com "), T + 5).erased
    assert g.resolve(Identifiers(customer_id="OLD"), T + ERASED_TTL_MS - 1).erased
    assert not g.resolve(Identifiers(customer_id="OLD"), T + ERASED_TTL_MS).erased
    assert g.to_dict()["x"] == {r[2:]: v for r, v in legacy_rows}
    g.changes()
    # an erasure after they expired sweeps them: their rows are deleted, no new one is written
    g.resolve(Identifiers(customer_id="NEW"), T + ERASED_TTL_MS + 1)
    g.erase("NEW", T + ERASED_TTL_MS + 2)
    rows = g.changes()
    assert {r: v for r, v in rows.items() if r.startswith("x:")} == {r: None for r, _ in legacy_rows}
    assert g.markers.legacy() == 0


def test_markers_expire_and_are_swept() -> None:
    g, _ = _erased_graph(KEY)
    assert g.resolve(Identifiers(phone="+15550001"), T + 10 + ERASED_TTL_MS - 1).erased
    g.resolve(Identifiers(customer_id="C2"), T + 2 * ERASED_TTL_MS)
    g.erase("C2", T + 2 * ERASED_TTL_MS)
    rows = g.changes()
    assert sum(1 for v in rows.values() if v is None) == 4  # C2's node row and C1's three markers
    assert len(g.markers) == 1


_KINDS = ("customer_id", "email", "phone", "device_id", "anonymous_id")
_ids = st.dictionaries(st.sampled_from(_KINDS), st.sampled_from(["1", "2", "3"]), min_size=1, max_size=3)


@settings(max_examples=100, deadline=None)
@given(
    st.binary(min_size=1, max_size=64),
    st.lists(st.one_of(_ids, st.sampled_from(["erase:1", "erase:2", "erase:email:1"])), max_size=25),
)
def test_rows_round_trip_with_any_key(key: bytes, steps: list[dict[str, str] | str]) -> None:
    g = IdentityGraph(key)
    table: dict[str, Any] = {}
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
    stored = orjson.loads(orjson.dumps(table))
    again = IdentityGraph.from_rows(stored.items(), key)
    assert again.to_dict() == g.to_dict()
    assert again.markers.unrecognised() == 0
    for probe in ({"customer_id": "1"}, {"email": "1"}, {"device_id": "2", "phone": "3"}):
        assert again.resolve(Identifiers(**probe), T + 50) == g.resolve(Identifiers(**probe), T + 50)
    dumped = IdentityGraph.from_dict(orjson.loads(orjson.dumps(g.to_dict())), key)
    assert dumped.to_dict() == g.to_dict()
