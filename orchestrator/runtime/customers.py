"""Per-customer state held by the worker's table, and how one resolved event updates it.

:func:`apply_resolved` is pure (bytes in, bytes out) so the Faust agent stays a thin loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from orchestrator.contracts import ResolvedEvent
from orchestrator.core.profile import Profile, apply_event

__all__ = ["Applied", "apply_resolved", "decode_record"]


@dataclass(frozen=True, slots=True)
class Applied:
    record: bytes
    duplicate: bool


def decode_record(raw: bytes | None, customer_key: str) -> dict[str, Any]:
    if raw is None:
        return {"profile": Profile(customer_key).to_dict(), "seen": {}}
    data: dict[str, Any] = orjson.loads(raw)
    return data


def apply_resolved(raw_state: bytes | None, resolved: ResolvedEvent, dedupe_window_ms: int) -> Applied:
    """Fold one resolved event into a customer's stored record.

    A repeated event_id within ``dedupe_window_ms`` (of the newest event time seen) is recognised
    and leaves the record unchanged.
    """
    record = decode_record(raw_state, resolved.customer_key)
    seen: dict[str, int] = record["seen"]
    event = resolved.event
    if event.event_id in seen:
        return Applied(raw_state or orjson.dumps(record), duplicate=True)
    at = event.occurred_ms
    seen[event.event_id] = at
    newest = max(seen.values())
    if len(seen) > 64:
        record["seen"] = {k: v for k, v in seen.items() if v >= newest - dedupe_window_ms}
    profile = apply_event(Profile.from_dict(record["profile"]), event)
    record["profile"] = profile.to_dict()
    return Applied(orjson.dumps(record), duplicate=False)
