"""Send-time optimization: the hour within the next ``within`` when the customer most likely engages.

For a customer and a channel, each candidate moment is the current hour (send now) or the start of one
of the following local hours within the window (and within the step's local ``between`` bounds, when
given). Its score is the smoothed share of the customer's engagement in that local hour of the week::

    score(h) = (own(h) + w * prior(h)) / (N + w)
    own(h)   = (week(h) + day(h) / 7) / 2

``week(h)``: the customer's decayed opens and clicks in local hour of the week ``h`` (:mod:`.timing`);
``day(h)``: those at the same hour of the day on any day of the week (a customer who opens at 08:00 on
weekdays is likely to on a weekday they have not opened on yet); ``N``: the sum of ``own``;
``prior(h)``: the model's population share of answered sends in hour ``h`` (uniform without a model);
``w``: the model's ``prior_weight``. The best score wins; ties go to the earliest moment. No history and
no model: send now (nothing to go on).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.core.engine.clock import utc_from_ms, zone
from orchestrator.core.learning.model import HOURS_OF_WEEK
from orchestrator.core.learning.timing import local_hour_of_week

__all__ = ["SendTimeChoice", "candidate_moments", "choose_send_time", "in_bounds", "smoothed"]

_HOUR_MS = 3_600_000
_UNIFORM = 1.0 / HOURS_OF_WEEK


@dataclass(frozen=True, slots=True)
class SendTimeChoice:
    at_ms: int
    """When to send (``now`` when sending at once)."""
    hour_of_week: int
    """The chosen local hour of the week (0 = Monday 00:00 local)."""
    basis: str
    """``history`` (the customer's own), ``prior`` (the model's only), ``no_data`` (sent now: nothing to
    go on), ``no_hour`` (sent now: no hour of the window is within the bounds)."""
    score: float = 0.0
    candidates: int = 0


def in_bounds(at_ms: int, tz_name: str | None, between: tuple[int, int] | None) -> bool:
    """Is the local time of ``at_ms`` in ``[start, end)`` (minutes of the day; ``end`` < ``start`` wraps
    past midnight)?"""
    if between is None:
        return True
    local = utc_from_ms(at_ms).astimezone(zone(tz_name))
    minute = local.hour * 60 + local.minute
    start, end = between
    return start <= minute < end if start <= end else minute >= start or minute < end


def smoothed(week: dict[int, float]) -> dict[int, float]:
    """Half the hour of the week, half the same hour of the day averaged over the week."""
    if not week:
        return {}
    day = [0.0] * 24
    for h, score in week.items():
        day[h % 24] += score
    return {
        h: (week.get(h, 0.0) + day[h % 24] / 7.0) / 2.0 for h in range(HOURS_OF_WEEK) if day[h % 24] > 0.0
    }


def candidate_moments(now_ms: int, within_ms: int, tz_name: str | None) -> list[int]:
    """Now, then the start of every following local hour before ``now + within``."""
    local = utc_from_ms(now_ms).astimezone(zone(tz_name))
    into = (local.minute * 60 + local.second) * 1000 + local.microsecond // 1000
    first = now_ms - into + _HOUR_MS
    out = [now_ms]
    at = first
    while at < now_ms + within_ms:
        out.append(at)
        at += _HOUR_MS
    return out


def choose_send_time(
    now_ms: int,
    within_ms: int,
    *,
    history_zone: str | None,
    bounds_zone: str | None,
    between: tuple[int, int] | None,
    own: dict[int, float],
    prior: tuple[float, ...] | None,
    prior_weight: float,
) -> SendTimeChoice:
    """The moment to send (see the module's docs). ``own``: decayed scores by local hour of the week in
    ``history_zone`` (the zone they were recorded in); ``between`` is checked in ``bounds_zone``."""
    own = smoothed(own)
    total = sum(own.values())
    if total <= 0.0 and prior is None:
        return SendTimeChoice(now_ms, local_hour_of_week(now_ms, history_zone), "no_data")
    moments = [
        m for m in candidate_moments(now_ms, within_ms, history_zone) if in_bounds(m, bounds_zone, between)
    ]
    if not moments:
        return SendTimeChoice(now_ms, local_hour_of_week(now_ms, history_zone), "no_hour")
    weight = prior_weight if prior is not None else 1.0
    best: tuple[float, int, int] | None = None
    for at in moments:
        how = local_hour_of_week(at, history_zone)
        share = prior[how] if prior is not None else _UNIFORM
        score = (own.get(how, 0.0) + weight * share) / (total + weight)
        if best is None or score > best[0]:
            best = (score, at, how)
    assert best is not None
    return SendTimeChoice(
        best[1], best[2], "history" if total > 0.0 else "prior", round(best[0], 6), len(moments)
    )
