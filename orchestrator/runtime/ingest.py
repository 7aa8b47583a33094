"""Ingestion: raw bytes in, a valid event for the identify stage or a dead letter out.

:func:`route_raw` is the whole decision, free of Faust, so it is unit-tested directly; the Faust
agent in :mod:`orchestrator.runtime.app` only feeds it messages and sends what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from orchestrator.config import TopicNames
from orchestrator.contracts import DeadLetter
from orchestrator.contracts.engine_event import read_event_json
from orchestrator.contracts.events import DEFAULT_LIMITS, EventLimits
from orchestrator.contracts.records import DeadLetterReason
from orchestrator.core.resolution import canonical_key
from orchestrator.exceptions import InvalidEventError

__all__ = ["FastRoute", "Routed", "route_raw"]

FastRoute = Callable[[Sequence[tuple[str, str]], str, tuple[int, int, int, int]], str | None]
"""(identifiers in priority order, event type, order key) -> the customer to send the event to straight."""

_REASONS: dict[str, DeadLetterReason] = {"not_json": "not_json", "over_limit": "over_limit"}


@dataclass(frozen=True, slots=True)
class Routed:
    """Where one raw message goes: ``topic``, ``key`` and ``value`` bytes, and why (``reason``)."""

    topic: str
    key: bytes | None
    value: bytes
    reason: str  # "resolved" or the dead-letter reason
    event_ms: int = 0
    """The resolved event's occurred time (0 for dead letters)."""
    order_ms: int | None = None
    """Its order time (:mod:`.ordering`), when ``route_raw`` was given ``order``."""
    fast: bool = False
    """Sent straight to its customer's partition (the fast path), not through the identity writer."""


def route_raw(
    value: bytes | None,
    key: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    topics: TopicNames,
    at: datetime,
    limits: EventLimits = DEFAULT_LIMITS,
    order: Callable[[int], int] | None = None,
    fast: FastRoute | None = None,
) -> Routed:
    """Resolve one raw message, or turn it into a dead letter naming what is wrong and where.

    ``at`` is only stamped on dead letters (when they were set aside); it never affects resolution.
    ``limits`` bound the event's size and shape (:class:`~orchestrator.contracts.events.EventLimits`).
    ``order``: the order time of a valid event from its occurred time (ms), called once per valid event
    in the raw partition's order (:class:`~.raw_order.RawOrder`); it goes into the message.
    ``fast``: with ``order``, the fast path's decision (:func:`~.claims.fast_route` over the worker's
    claims): the customer the event goes to straight, on the resolved topic, or None — the identity
    writer's ordered path.
    """
    raw = value if value is not None else b""
    try:
        event, event_json = read_event_json(raw, limits)
    except InvalidEventError as exc:
        letter = DeadLetter.of(
            reason=_REASONS.get(exc.reason, "invalid_event"),
            error=f"{topic}[{partition}]@{offset}: {exc.detail}",
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=raw,
            at=at,
        )
        return Routed(topics.dead_letter, DeadLetter.key_of(key), letter.to_json(), letter.reason)
    customer_key = canonical_key(event.identifiers)
    # ResolvedEvent.to_json's bytes (a unit test holds them equal), without the models.
    form: dict[str, object] = {
        "customer_key": customer_key,
        "event": orjson.Fragment(event_json),
        "source_partition": partition,
        "source_offset": offset,
    }
    order_ms = None if order is None else order(event.occurred_ms)
    if order_ms is not None:
        form["order_ms"] = order_ms
        owner = (
            None if fast is None else fast(event.identifiers, event.type, (order_ms, partition, offset, 0))
        )
        if owner is not None:
            form["customer_key"] = owner
            form["via"] = f"r{partition}"  # (its source at the customer partition: this raw partition)
            value = orjson.dumps(form)
            return Routed(
                topics.resolved_events, owner.encode(), value, "resolved", event.occurred_ms, order_ms, True
            )
    resolved = orjson.dumps(form)
    # On to the identify stage, which resolves the canonical customer (the key here is a hint).
    return Routed(topics.identify, customer_key.encode(), resolved, "resolved", event.occurred_ms, order_ms)
