"""The cross-channel policy as immutable Python objects, ready for the per-customer logic.

A :class:`Policy` is what a policy file (``kind: policy``, docs/policy.md) becomes after loading and
validation: durations in milliseconds, local times as (hour, minute). Frozen dataclasses, read on the
hot path without validation cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CHANNELS",
    "EngagementRule",
    "FrequencyCap",
    "Policy",
    "QuietHours",
    "RateLimit",
    "SubscriptionGroup",
]

CHANNELS = ("email", "sms", "push")


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``max`` marketing sends on ``channels`` in any rolling window of ``window_ms``."""

    name: str
    channels: frozenset[str]
    max: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class QuietHours:
    """No marketing send on ``channels`` between ``start`` and ``end``, local time of the customer.

    ``start > end`` crosses midnight (21:00-08:00). ``action`` hold: the send waits for ``end``;
    drop: it is not sent. ``timezone`` forces a zone instead of the customer's; ``default_timezone`` is
    the zone of customers whose own is unknown (else UTC).
    """

    start: tuple[int, int]
    end: tuple[int, int]
    channels: frozenset[str]
    action: Literal["hold", "drop"] = "hold"
    timezone: str | None = None
    default_timezone: str | None = None

    def contains(self, minute_of_day: int) -> bool:
        start = self.start[0] * 60 + self.start[1]
        end = self.end[0] * 60 + self.end[1]
        if start < end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end


@dataclass(frozen=True, slots=True)
class EngagementRule:
    """Skip a marketing send on ``channels`` when one of ``events`` happened within ``within_ms``.

    With ``same_campaign`` (the default) the engagement must carry the send's campaign.
    """

    name: str
    channels: frozenset[str]
    events: frozenset[str]
    within_ms: int
    same_campaign: bool = True


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Messages per second on one channel, over all customers (enforced by connectors)."""

    channel: str
    per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class SubscriptionGroup:
    """A named list of one channel a customer can be in or out of (a newsletter, product news).

    ``opt_in``: only customers who subscribed are in; ``opt_out``: every customer with consent on the
    channel is in unless they unsubscribed (the rule: :mod:`orchestrator.core.policy.subscriptions`).
    """

    id: str
    channel: str
    default: Literal["opt_in", "opt_out"] = "opt_in"
    description: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """One version of the cross-channel policy."""

    id: str
    version: int
    description: str = ""
    fallback: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Channel -> channels to try, in order, when its address or consent is missing."""
    caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: QuietHours | None = None
    engagement: tuple[EngagementRule, ...] = ()
    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    subscription_groups: dict[str, SubscriptionGroup] = field(default_factory=dict)
    """Group id -> group, in the file's order."""
    source_name: str = "<text>"
    content_hash: str = ""

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def longest_cap_ms(self) -> int:
        """How long sends must be remembered for the caps to count them."""
        return max((c.window_ms for c in self.caps), default=0)

    def channels_to_try(self, channel: str) -> tuple[str, ...]:
        """``channel`` then its fallbacks, each once."""
        return tuple(dict.fromkeys((channel, *self.fallback.get(channel, ()))))
