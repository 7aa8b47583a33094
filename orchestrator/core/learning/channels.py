"""Channel optimization: among the channels the policy allows now, the one the customer most likely
answers, by Thompson sampling.

For each allowed channel ``c`` the customer's answer rate has a Beta posterior::

    a = w * p(c) + answered(c)        b = w * (1 - p(c)) + sends(c) - answered(c)

``sends(c)``: the customer's ``c.sent`` receipts (at least ``answered(c)``); ``answered(c)``: opens
(email, push) or clicks (sms, and email when more), at most the sends; ``p(c)``: the model's smoothed
rate for the channel (0.5 without one), ``w`` its ``prior_weight`` (2 without a model: Beta(1, 1)).
One draw per channel from :mod:`.sampler`, seeded from the send's original action id: the highest draw
wins (ties: the order the step lists the channels in). The same send gets the same channel in simulate
and live; across customers the choice follows each channel's chance of being the best.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.learning.model import EngagementModel
from orchestrator.core.learning.sampler import beta_draws

__all__ = ["ChannelChoice", "channel_posterior", "choose_channel"]

_ANSWERS = {"email": ("opened", "clicked"), "sms": ("clicked",), "push": ("opened",)}


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    channel: str
    rates: dict[str, float]
    """Each allowed channel's posterior mean answer rate (what was compared), rounded to 4 decimals."""
    draws: dict[str, float]


def channel_posterior(
    engagement: dict[str, list[int]], channel: str, model: EngagementModel | None
) -> tuple[float, float]:
    """(a, b) of the Beta posterior of the customer's answer rate on ``channel``."""
    answered = max((engagement.get(f"{channel}.{kind}", (0, 0))[0] for kind in _ANSWERS[channel]), default=0)
    sends = max(engagement.get(f"{channel}.sent", (0, 0))[0], answered)
    stats = model.channels.get(channel) if model is not None else None
    weight, rate = (2.0, 0.5) if model is None or stats is None else (model.prior_weight, stats.rate)
    return weight * rate + answered, weight * (1.0 - rate) + (sends - answered)


def choose_channel(
    seed: str, allowed: list[str], engagement: dict[str, list[int]], model: EngagementModel | None
) -> ChannelChoice:
    """The channel to send on (``allowed`` is not empty: the channels the policy lets through now)."""
    params = [(ch, *channel_posterior(engagement, ch, model)) for ch in allowed]
    draws = beta_draws(seed, params)
    best = allowed[0]
    for ch in allowed[1:]:
        if draws[ch] > draws[best]:
            best = ch
    rates = {ch: round(a / (a + b), 4) for ch, a, b in params}
    return ChannelChoice(best, rates, {ch: round(d, 4) for ch, d in draws.items()})
