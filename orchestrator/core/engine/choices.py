"""The run stage's choices for one send, made before the policy judges it (pure).

A send step with ``channel: auto`` picks its channel among those the policy allows now
(:func:`orchestrator.core.learning.channels.choose_channel`, seeded from the send's action id), one with
``send_time: optimal`` picks its moment (:func:`orchestrator.core.learning.sendtime.choose_send_time`)
and is held until then. Both read the model in force at the send's time (the same one in simulate and
live) and the customer's own history; the decision records what was chosen and compared.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.engine.state import PendingSend
from orchestrator.core.journey.model import SendStep
from orchestrator.core.learning.channels import choose_channel
from orchestrator.core.learning.sendtime import choose_send_time
from orchestrator.core.learning.timing import decayed_scores

if TYPE_CHECKING:
    from orchestrator.core.engine.run import Run

__all__ = ["dispatch"]


def dispatch(
    run: Run, send: PendingSend, step: SendStep, at_ms: int, default_timezone: str | None
) -> tuple[str, str | None]:
    """Choose the channel and the moment of ``send`` as ``step`` asks, then hand it to the policy;
    returns (the action id it goes out under, why it does not go out or None)."""
    if not step.channels and step.send_time != "optimal":
        return run.gate.submit(send, at_ms)
    model = run.models.current(at_ms) if run.models is not None else None
    choice: dict[str, Any] = {"model": model.key if model is not None else None}
    profile = run.state.profile
    if step.channels:
        allowed = [ch for ch, _ in step.channels if run.gate.allows(replace(send, channel=ch), at_ms)]
        if allowed:
            picked = choose_channel(send.action_id, allowed, profile.engagement, model)
            send.channel = picked.channel
            send.template_id = dict(step.channels)[picked.channel]
            choice.update(channel=picked.channel, rates=picked.rates, draws=picked.draws)
        else:  # (none allowed: the first channel is judged, and the decision says why it is refused)
            send.channel, send.template_id = step.channels[0]
            choice.update(channel=send.channel, rates={}, draws={})
    if step.send_time != "optimal":
        return run.gate.submit(send, at_ms, choice=choice)
    bounds_zone = profile.timezone if profile.timezone_known or not default_timezone else default_timezone
    when = choose_send_time(
        at_ms,
        step.within_ms,
        history_zone=profile.timezone,
        bounds_zone=bounds_zone,
        between=step.between,
        own=decayed_scores(profile.timing.get(send.channel), at_ms),
        prior=model.hour_prior(send.channel) if model is not None else None,
        prior_weight=model.prior_weight if model is not None else 1.0,
    )
    choice.update(
        send_at=iso_from_ms(when.at_ms), hour_of_week=when.hour_of_week, basis=when.basis, score=when.score
    )
    if when.at_ms <= at_ms:
        return run.gate.submit(send, at_ms, choice=choice)
    return run.gate.schedule(send, when.at_ms, at_ms, choice)
