"""How long a connector waits before it tries an action again: exponential backoff with full jitter.

The n-th retry waits a random time in ``[0, min(cap, base * 2**(n-1))]`` ("full jitter": replicas and
partitions that failed together do not come back together and hammer a provider that is recovering).
A provider that says when to come back (``retry_after``: SMTP servers rarely do, HTTP ones with
``Retry-After``) is waited for at least that long, but never longer than ``cap``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    """Provider calls of one action that the provider refused for now, before its dead letter."""
    base_s: float = 1.0
    """The ceiling of the first retry's wait."""
    cap_s: float = 300.0
    """The longest wait."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_s <= 0 or self.cap_s <= 0:
            raise ValueError("a retry policy needs max_attempts >= 1, base_s > 0 and cap_s > 0")

    def ceiling(self, retry: int) -> float:
        """The longest wait before the ``retry``-th retry (1 for the first)."""
        if retry < 1:
            raise ValueError("retries count from 1")
        # 2**63 would overflow a float multiplication long after the cap is reached: stop doubling there
        return min(self.cap_s, self.base_s * 2.0 ** min(retry - 1, 62))

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """The wait before the ``retry``-th retry: uniform in ``[0, ceiling]``, at least ``retry_after``
        (capped)."""
        jittered = rng.uniform(0.0, self.ceiling(retry))
        if retry_after is not None and retry_after > 0:
            return min(self.cap_s, max(jittered, retry_after))
        return jittered

    def exhausted(self, attempts: int) -> bool:
        """True when ``attempts`` refused-for-now calls of one action are all it gets."""
        return attempts >= self.max_attempts
