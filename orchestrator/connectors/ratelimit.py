"""Send-rate limits per channel: a token bucket per channel, shared by all customers.

Providers behind connectors (an ESP, an SMS gateway, a push service) accept so many messages per second.
That limit is global, not per customer, so it cannot live in the pure per-customer core: the policy file's
``rate_limits`` section is read by the connectors, which take a token before each send (docs/policy.md).

A :class:`TokenBucket` holds up to ``burst`` tokens and refills at ``per_second``; taking a token when
none is left waits for the refill. The clock and the sleep are injected, so tests need no real time.

Several replicas of one connector share a channel's limit without talking to each other:
:func:`replica_share` gives each the part of the limit its share of the action topic's partitions
stands for (docs/connectors.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from orchestrator.core.policy.model import RateLimit

__all__ = ["ChannelLimiter", "TokenBucket", "replica_share"]

_EPSILON = 1e-9


class TokenBucket:
    """``per_second`` tokens a second, at most ``burst`` saved up."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs per_second > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.per_second)
        self._at = now

    def try_take(self) -> float:
        """Take a token if one is there (returns 0.0); else take nothing and return the seconds to wait."""
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:  # float rounding must not leave a token forever 0.99999...
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.per_second

    def take(self) -> float:
        """Take a token, waiting for it when needed; returns the seconds waited."""
        waited = 0.0
        while True:
            wait = self.try_take()
            if wait == 0.0:
                return waited
            self._sleep(wait)
            waited += wait


class ChannelLimiter:
    """One bucket per limited channel; channels without a limit pass at once."""

    def __init__(
        self,
        limits: Mapping[str, RateLimit],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.buckets = {
            ch: TokenBucket(limit.per_second, limit.burst, clock=clock, sleep=sleep)
            for ch, limit in limits.items()
        }
        self.waited_s: dict[str, float] = {}

    def take(self, channel: str) -> float:
        bucket = self.buckets.get(channel)
        if bucket is None:
            return 0.0
        waited = bucket.take()
        if waited:
            self.waited_s[channel] = self.waited_s.get(channel, 0.0) + waited
        return waited


def replica_share(limit: RateLimit | None, assigned: int, total: int) -> RateLimit | None:
    """The part of a channel's ``limit`` a connector replica that owns ``assigned`` of the action topic's
    ``total`` partitions may use: ``per_second`` and ``burst`` times ``assigned / total`` (a burst of
    at least 1). Every partition belongs to one replica, so the replicas' shares add up to the limit,
    however many there are; a rebalance recomputes them. None: no limit, or no partition to send for.

    It assumes the partitions carry about the same traffic (they do: actions are keyed by customer);
    a replica with a busier partition waits while another has tokens to spare, never the reverse.
    """
    if limit is None or assigned <= 0 or total <= 0:
        return None
    part = min(assigned, total) / total
    return RateLimit(limit.channel, limit.per_second * part, max(1, int(limit.burst * part)))
