"""The fast path's decision (:func:`orchestrator.runtime.claims.fast_route`) and ingest's copy of the
claims (:class:`orchestrator.runtime.claims_view.ClaimsView`, on a real RocksDB database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import Settings
from orchestrator.runtime.claims import claim_key, claim_value, fast_route, read_claim
from orchestrator.runtime.claims_view import ClaimsView
from orchestrator.runtime.ingest import route_raw
from orchestrator.runtime.rocksdb_budget import RocksDBBudget

T = 1_741_600_800_000


def _claims(**tokens: tuple[str, tuple[int, int, int, int]]) -> dict[bytes, bytes]:
    return {claim_key(t.replace("__", ":")): claim_value(c, o) for t, (c, o) in tokens.items()}


def test_an_event_goes_straight_when_one_customer_claimed_all_its_identifiers_before_it() -> None:
    claims = _claims(customer_id__c1=("c1", (T, 0, 5, 0)), email__a_x=("c1", (T, 0, 5, 0)))
    ids = (("customer_id", "c1"), ("email", "a_x"))
    assert fast_route(ids, "cart.updated", (T + 1, 1, 0, 0), claims.get) == "c1"
    assert fast_route(ids[1:], "cart.updated", (T + 1, 1, 0, 0), claims.get) == "c1"
    # at the claim's own time, a later offset of the same raw partition: after it
    assert fast_route(ids, "cart.updated", (T, 0, 6, 0), claims.get) == "c1"
    # not before the claim was made
    assert fast_route(ids, "cart.updated", (T, 0, 5, 0), claims.get) is None
    assert fast_route(ids, "cart.updated", (T - 1, 3, 0, 0), claims.get) is None
    # an identifier nobody claimed (a first sighting: the writer attaches it)
    assert fast_route((*ids, ("phone", "+1")), "cart.updated", (T + 1, 1, 0, 0), claims.get) is None
    # an erasure always goes through the writer
    assert fast_route(ids, "customer.erased", (T + 1, 1, 0, 0), claims.get) is None


def test_identifiers_of_two_customers_take_the_ordered_path() -> None:
    claims = _claims(customer_id__c1=("c1", (T, 0, 1, 0)), device_id__d=("c2", (T, 0, 2, 0)))
    ids = (("customer_id", "c1"), ("device_id", "d"))
    assert fast_route(ids, "page.viewed", (T + 5, 0, 9, 0), claims.get) is None


def test_a_receipt_naming_a_known_customers_key_goes_straight_any_other_key_through_the_writer() -> None:
    """A receipt (``customer_key``) goes straight when its key is a known customer's, by the claim of its
    customer_id: the writer would resolve it to that key (a known customer is never merged away). The key
    of an anonymous customer (never claimed), one merged away or one nobody has needs the graph."""
    claims = _claims(customer_id__c1=("c1", (T, 0, 5, 0)), email__ann_x=("c1", (T, 0, 5, 0)))
    order = (T + 1, 1, 0, 0)
    assert fast_route((("customer_key", "c1"),), "email.opened", order, claims.get) == "c1"
    assert fast_route((("customer_key", "c1"),), "email.opened", (T, 0, 5, 0), claims.get) is None
    # an identifier's claim is not a customer key's: "email:ann_x" names a visitor merged into c1
    assert fast_route((("customer_key", "email:ann_x"),), "email.opened", order, claims.get) is None
    assert fast_route((("customer_key", "c9"),), "email.opened", order, claims.get) is None


def test_route_raw_sends_a_claimed_customers_event_to_the_resolved_topic_with_its_source() -> None:
    settings = Settings()
    claims = _claims(customer_id__c1=("c1", (T, 0, 1, 0)))
    raw = b'{"event_id":"e1","type":"page.viewed","source":"t","occurred_at":"2025-03-10T11:00:00Z",'
    raw += b'"identifiers":{"customer_id":"c1"}}'

    def fast(ids, event_type, order):  # type: ignore[no-untyped-def]
        return fast_route(ids, event_type, order, claims.get)

    routed = route_raw(
        raw, None, topic="raw", partition=2, offset=7, topics=settings.topics, at=None,  # type: ignore[arg-type]
        order=lambda ms: ms, fast=fast,
    )  # fmt: skip
    assert routed.fast
    assert routed.topic == settings.topics.resolved_events
    assert routed.key == b"c1"
    assert b'"via":"r2"' in routed.value
    assert b'"source_partition":2' in routed.value
    unclaimed = route_raw(
        raw.replace(b"c1", b"c9"), None, topic="raw", partition=2, offset=8, topics=settings.topics,
        at=None, order=lambda ms: ms, fast=fast,  # type: ignore[arg-type]
    )  # fmt: skip
    assert not unclaimed.fast
    assert unclaimed.topic == settings.topics.identify


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_view_applies_claims_and_tombstones_and_goes_on_from_where_it_left_off(
    tmp_path: Path, on_disk: bool
) -> None:
    settings = Settings(data_dir=tmp_path)
    path = tmp_path / "claims" if on_disk else None
    budget = RocksDBBudget(8) if on_disk else None
    view = ClaimsView(settings, path, budget)
    assert view.get(claim_key("customer_id:c1")) is None  # (on disk: not open yet)
    view.open()
    assert view.position(0) is None
    one = claim_value("c1", (T, 0, 1, 0))
    view.apply(0, [(0, claim_key("customer_id:c1"), one), (1, claim_key("email:a@x.io"), one)])
    view.apply(0, [(3, claim_key("email:a@x.io"), None), (4, None, b"junk")])
    assert view.get(claim_key("customer_id:c1")) == one
    assert read_claim(one) == ("c1", (T, 0, 1, 0))
    assert view.get(claim_key("email:a@x.io")) is None
    assert view.position(0) == 5
    assert view.applied == 3
    if on_disk:
        view.close()
        again = ClaimsView(settings, path, budget)
        again.open()
        assert again.position(0) == 5  # a restart reads on from there
        assert again.get(claim_key("customer_id:c1")) == one
        again.close()


def test_an_erased_customers_claims_leave_the_views_files(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    view = ClaimsView(settings, tmp_path / "claims", RocksDBBudget(8))
    view.open()
    secret = b"cust-erased-4711"
    view.apply(0, [(0, claim_key("customer_id:x"), claim_value(secret.decode(), (T, 0, 1, 0)))])
    view.apply(0, [(1, claim_key("customer_id:x"), None)])  # the erasure's tombstone
    assert view.compactions.due is not None  # compacted soon (the worker's loop runs it in a thread)

    def files_naming() -> list[str]:
        return [f.name for f in (tmp_path / "claims").iterdir() if f.is_file() and secret in f.read_bytes()]

    assert files_naming(), "(the write-ahead log holds it until then)"
    view.compact()
    try:
        assert files_naming() == [], "the erased customer's key is still on disk"
    finally:
        view.close()


def test_a_claim_that_does_not_read_takes_the_ordered_path() -> None:
    claims = {claim_key("customer_id:c1"): b'{"not": "a claim"}'}
    assert fast_route((("customer_id", "c1"),), "page.viewed", (T, 0, 1, 0), claims.get) is None
