"""A customer's own engagement by local hour of the week, decayed by event time (pure).

The profile keeps, per channel, ``[reference time ms, {hour of week: score}]``: each open or click adds
1 to the **local** hour of the week it happened in (0 = Monday 00:00-01:00 in the customer's zone, UTC
when unknown), and every score halves every :data:`HALF_LIFE_MS` of event time (scores are stored in
the units of the reference time: :data:`RESCALE_AFTER_MS`). Local hours keep their
meaning across a DST change: an open at 09:00 in January and one at 09:00 in July count for the same
hour, though they are an hour apart in UTC. Bounded: at most 168 scores per channel, and scores that
decay below :data:`MIN_SCORE` are let go. Scores are rounded to 4 decimals, so the stored state is the
same text in every process.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "HALF_LIFE_MS",
    "MIN_SCORE",
    "RESCALE_AFTER_MS",
    "decayed_scores",
    "local_hour_of_week",
    "merge_timing",
    "record_engagement",
]

HALF_LIFE_MS = 28 * 86_400_000
"""An engagement counts half as much four weeks later."""
MIN_SCORE = 0.001
_DIGITS = 4


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=512)
def _zone(name: str | None) -> ZoneInfo:
    # (the engine's clock module has the same rule; not imported: the profile imports this module, and
    # the engine package imports the profile)
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def local_hour_of_week(at_ms: int, tz_name: str | None) -> int:
    """0 for Monday 00:00-01:00 local ... 167 for Sunday 23:00-24:00 local, in the zone ``tz_name``
    (unknown zones: UTC)."""
    return _hour_of_quarter(tz_name, at_ms // _QUARTER_MS)


_QUARTER_MS = 900_000


@lru_cache(maxsize=4096)
def _hour_of_quarter(tz_name: str | None, quarter: int) -> int:
    # (exact per quarter hour of UTC time: every zone's offsets and changes fall on quarter hours)
    local = (_EPOCH + timedelta(milliseconds=quarter * _QUARTER_MS)).astimezone(_zone(tz_name))
    return local.weekday() * 24 + local.hour


def _decay(age_ms: int) -> float:
    return float(0.5 ** (age_ms / HALF_LIFE_MS))


RESCALE_AFTER_MS = 8 * HALF_LIFE_MS
"""Scores are kept in the units of their reference time: an event ``d`` after it adds ``2**(d / half
life)``, so that one event costs one addition (no pass over the 168 hours). Past this many half-lives
after the reference, the scores are brought to the event's time (and those under :data:`MIN_SCORE`
let go): the numbers stay within 256 times a count."""


def record_engagement(timing: dict[str, list[Any]], channel: str, at_ms: int, tz_name: str | None) -> None:
    """Count an open or click on ``channel`` at ``at_ms`` (the zone of the customer then)."""
    how = str(local_hour_of_week(at_ms, tz_name))
    entry = timing.get(channel)
    if entry is None:
        timing[channel] = [at_ms, {how: 1.0}]
        return
    ref, scores = entry
    if at_ms - ref > RESCALE_AFTER_MS:
        factor = _decay(at_ms - ref)
        scores = {h: d for h, sc in scores.items() if (d := round(sc * factor, _DIGITS)) >= MIN_SCORE}
        entry[0] = at_ms
        entry[1] = scores
        add = 1.0
    else:  # (an event before the reference adds less than one: its weight decayed to the reference)
        add = 1.0 / _decay(at_ms - ref)
    scores[how] = round(scores.get(how, 0.0) + add, _DIGITS)


def decayed_scores(entry: list[Any] | None, at_ms: int) -> dict[int, float]:
    """The scores of one channel (``timing[channel]``) decayed to ``at_ms``, by hour of week."""
    if not entry:
        return {}
    ref, scores = entry
    factor = _decay(at_ms - ref)
    return {int(h): sc * factor for h, sc in scores.items()}


def merge_timing(canonical: dict[str, list[Any]], other: dict[str, list[Any]]) -> None:
    """Fold ``other``'s scores into ``canonical`` (an identity merge): both decayed to the later
    reference time, then added."""
    for channel, entry in other.items():
        mine = canonical.get(channel)
        if mine is None:
            canonical[channel] = [entry[0], dict(entry[1])]
            continue
        ref = max(mine[0], entry[0])
        merged: dict[str, float] = {}
        for e in (mine, entry):
            factor = _decay(ref - e[0])
            for h, s in e[1].items():
                merged[h] = merged.get(h, 0.0) + s * factor
        canonical[channel] = [ref, {h: round(s, _DIGITS) for h, s in merged.items() if s >= MIN_SCORE}]
