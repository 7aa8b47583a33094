"""The run stage's model: population priors fitted from what happened (``kind: model``).

A model is what ``orchestrator fit`` learned from recorded events, actions and decisions over a time
range (docs/optimization.md): per channel, how often a send was answered (opened or clicked); per
channel and **local hour of the week** (0 = Monday 00:00-01:00 in the customer's zone), sends and sends
answered; per split branch of a journey, customers who entered it and converted. It is deployed like a
journey or the policy, effective from a time: live and simulate pick the same model by event time.

The engine reads it as priors: a customer's own history counts first, and where it is thin the
population's rates fill in, weighted by :attr:`EngagementModel.prior_weight` (pseudo-observations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "HOURS_OF_WEEK",
    "MODEL_CHANNELS",
    "BranchStats",
    "ChannelStats",
    "EngagementModel",
    "HourStats",
]

HOURS_OF_WEEK = 168
MODEL_CHANNELS: tuple[Literal["email", "sms", "push"], ...] = ("email", "sms", "push")


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """Sends on one channel and how many were answered (opened or clicked: each send counted once)."""

    sends: int
    engaged: int
    opened: int = 0
    clicked: int = 0

    @property
    def rate(self) -> float:
        """Answered sends per send, with one pseudo-send each way (0.5 with no sends)."""
        return (self.engaged + 1) / (self.sends + 2)


@dataclass(frozen=True, slots=True)
class HourStats:
    """Per local hour of the week (168 entries): sends made then, and those answered."""

    sends: tuple[int, ...]
    engaged: tuple[int, ...]

    def rates(self) -> tuple[float, ...]:
        """Answered per send by hour, with one pseudo-send each way."""
        return tuple((e + 1) / (s + 2) for s, e in zip(self.sends, self.engaged, strict=True))


@dataclass(frozen=True, slots=True)
class BranchStats:
    """Customers who entered one split branch, and those who then converted (reached a goal)."""

    entered: int
    converted: int

    @property
    def rate(self) -> float:
        return (self.converted + 1) / (self.entered + 2)


@dataclass(frozen=True, slots=True)
class EngagementModel:
    """One version of the model, loaded and checked."""

    id: str
    version: int
    fitted_from_ms: int
    fitted_to_ms: int
    counts: dict[str, int] = field(default_factory=dict)
    """What the fit read: events, actions, decisions, customers."""
    prior_weight: float = 10.0
    """How many of a customer's own observations the population prior is worth."""
    channels: dict[str, ChannelStats] = field(default_factory=dict)
    hours: dict[str, HourStats] = field(default_factory=dict)
    splits: dict[str, dict[str, dict[str, BranchStats]]] = field(default_factory=dict)
    """Journey id -> split step id -> branch name -> entered and converted."""
    name: str = ""
    description: str = ""
    source_name: str = "<text>"
    content_hash: str = ""
    _hour_priors: dict[str, tuple[float, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    def hour_prior(self, channel: str) -> tuple[float, ...] | None:
        """The population's share of answered sends by local hour of the week on ``channel`` (sums to
        1), from the per-send rates; None when the model has no hours for the channel."""
        kept = self._hour_priors.get(channel)
        if kept is not None:
            return kept
        stats = self.hours.get(channel)
        if stats is None or not any(stats.sends):
            return None
        rates = stats.rates()
        total = sum(rates)
        prior = tuple(r / total for r in rates)
        self._hour_priors[channel] = prior
        return prior

    def branch_stats(self, journey_id: str, step_id: str) -> dict[str, BranchStats]:
        return self.splits.get(journey_id, {}).get(step_id, {})
