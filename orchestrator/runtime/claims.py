"""Claims: which known customer an identifier belongs to, for ingest's fast path (issue 17, step (b);
docs/runtime.md, "Design note").

The identity writer publishes a claim when an event it resolves to a known customer carries identifiers
that customer owns (:meth:`~orchestrator.core.identity.IdentityGraph.claims`), and a tombstone for each
when the customer is erased, to a compacted topic. Every ingest worker keeps the topic in a local store
(:mod:`.claims_view`) and sends an event straight to its customer's partition when every identifier of
the event is claimed by that one customer, by a claim made before the event in the order
(:func:`fast_route`); anything else takes the ordered path through the writer.

A claim's topic key is a digest of its token (``customer_id:<id>``, ``email:<address>``, ...), so the
topic and the stores name no identifier in clear; its value is ``[customer key, order time, raw
partition, raw offset, n]``: the customer and the order key of the message that made the claim.

Why a stale view is safe: a known customer keeps its identifiers (only anonymous customers are merged
away), so a claim can only be missing — the event then takes the ordered path — or gone because the
customer was erased: the customer partition finds no record for the customer and drops the event, as
the graph drops an erased customer's events (:class:`~.processor.Processor`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import orjson

from orchestrator.contracts.events import CUSTOMER_KEY
from orchestrator.core.customer import ERASE_EVENT
from orchestrator.core.identity.graph import claim_token

__all__ = ["claim_key", "claim_value", "fast_route", "read_claim"]

Order = Sequence[int]


def claim_key(token: str) -> bytes:
    """The claims topic's key of a claim token: a 128-bit BLAKE2b digest, hex."""
    return hashlib.blake2b(token.encode(), digest_size=16).hexdigest().encode()


def claim_value(customer_key: str, order: Order) -> bytes:
    return orjson.dumps([customer_key, *order])


def read_claim(value: bytes) -> tuple[str, tuple[int, ...]]:
    """A claim's (customer key, order key of the message that made it)."""
    data = orjson.loads(value)
    return str(data[0]), tuple(int(x) for x in data[1:5])


def fast_route(
    identifiers: Sequence[tuple[str, str]],
    event_type: str,
    order: tuple[int, int, int, int],
    lookup: Callable[[bytes], bytes | None],
) -> str | None:
    """The customer an event goes to straight (the fast path), or None: the ordered path.

    ``order``: the event's order key; ``lookup``: a claim's value by :func:`claim_key` (None: none).
    Every identifier must be claimed by one customer with a claim made before the event in the order.

    An event naming its customer by key (``customer_key``: a receipt) goes straight when the key is a
    known customer's: the claim of its customer_id. The writer would resolve it to that key too (a known
    customer is never merged away; only an erasure ends it, and then the customer partition drops the
    event, as the graph would); any other key (an anonymous customer's, one merged away, an unknown one)
    needs the graph's aliases: the ordered path."""
    if event_type == ERASE_EVENT or not identifiers:  # (an erasure goes through the writer)
        return None
    owner: str | None = None
    for kind, value in identifiers:
        if kind == CUSTOMER_KEY:  # (alone) the key is a known customer's when its customer_id is claimed
            kind = "customer_id"
        found = lookup(claim_key(claim_token(kind, value)))
        if found is None:
            return None
        try:
            customer, made = read_claim(found)
        except (ValueError, TypeError, LookupError):  # (not a claim the writer wrote: the ordered path)
            return None
        if (owner is not None and customer != owner) or not made < order:
            return None
        owner = customer
    return owner
