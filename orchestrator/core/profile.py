"""The per-customer profile and how events change it (pure).

The profile is a plain dataclass, serialised to JSON-compatible dicts for the state stores.
Logical time is epoch milliseconds passed in by the caller; the wall clock is never read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.contracts.events import CustomerEvent

__all__ = ["DEFAULT_TIMEZONE", "Profile", "apply_event"]

DEFAULT_TIMEZONE = "UTC"
"""Time zone assumed when a profile has none (profile.updated with properties.timezone sets it)."""


@dataclass(slots=True)
class Profile:
    """What the orchestrator knows about one customer."""

    customer_key: str
    identities: dict[str, list[str]] = field(default_factory=dict)
    """Identifiers seen, by kind (customer_id, email, phone, device_id, anonymous_id)."""
    attributes: dict[str, Any] = field(default_factory=dict)
    timezone: str = DEFAULT_TIMEZONE
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    counts_by_type: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_key": self.customer_key,
            "identities": self.identities,
            "attributes": self.attributes,
            "timezone": self.timezone,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "counts_by_type": self.counts_by_type,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(
            customer_key=data["customer_key"],
            identities={k: list(v) for k, v in data.get("identities", {}).items()},
            attributes=dict(data.get("attributes", {})),
            timezone=data.get("timezone", DEFAULT_TIMEZONE),
            first_seen_ms=data.get("first_seen_ms"),
            last_seen_ms=data.get("last_seen_ms"),
            counts_by_type=dict(data.get("counts_by_type", {})),
        )


def apply_event(profile: Profile, event: CustomerEvent) -> Profile:
    """Fold one event into the profile (in place, returned for chaining)."""
    for kind, value in event.identifiers.items():
        seen = profile.identities.setdefault(kind, [])
        if value not in seen:
            seen.append(value)
    at = event.occurred_ms
    if profile.first_seen_ms is None or at < profile.first_seen_ms:
        profile.first_seen_ms = at
    if profile.last_seen_ms is None or at > profile.last_seen_ms:
        profile.last_seen_ms = at
    profile.counts_by_type[event.type] = profile.counts_by_type.get(event.type, 0) + 1
    if event.type == "profile.updated":
        attrs = event.properties.get("attributes", event.properties)
        if isinstance(attrs, dict):
            for key, value in attrs.items():
                if key == "timezone" and isinstance(value, str):
                    profile.timezone = value
                elif value is None:
                    profile.attributes.pop(key, None)
                else:
                    profile.attributes[key] = value
    return profile
