"""Deterministic identities: action ids and split buckets. Never from offsets or the wall clock."""

from __future__ import annotations

import hashlib

from orchestrator.contracts.actions import make_action_id

__all__ = ["BUCKETS", "action_id", "split_bucket"]

BUCKETS = 10_000
"""Split buckets: one per 1/100 of a percent."""


def action_id(
    customer_key: str,
    journey_id: str,
    version: int,
    entry_seq: int,
    step_id: str,
    visit: int,
    key: str | None = None,
) -> str:
    """The idempotency key of one send: a loop or a re-entry sends again, a replay gives the same id.
    A keyed journey's key is a part of it; the ids of unkeyed journeys are as they always were."""
    if key is None:
        return make_action_id(customer_key, journey_id, version, entry_seq, step_id, visit)
    return make_action_id(customer_key, journey_id, version, entry_seq, step_id, visit, "key", key)


def split_bucket(customer_key: str, journey_id: str, step_id: str, salt: str = "") -> int:
    """A bucket in ``[0, BUCKETS)``, the same for a customer and split on every run and every version."""
    raw = "\x1f".join((customer_key, journey_id, step_id, salt)).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") % BUCKETS
