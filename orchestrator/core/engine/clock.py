"""Calendar arithmetic on logical time (epoch ms): time zones, local times of day. Never the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["WEEKDAYS", "iso_from_ms", "next_local_time", "utc_from_ms", "zone"]


@lru_cache(maxsize=1024)
def _load(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone(name: str | None, *, strict: bool = False) -> ZoneInfo | None:
    """The IANA zone ``name``; unknown names give UTC (or None when ``strict``)."""
    found = _load(name) if name else None
    if found is None and not strict:
        return _load("UTC")
    return found


def utc_from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def iso_from_ms(ms: int) -> str:
    """``2025-03-30T01:00:00.000Z`` (milliseconds, UTC)."""
    return utc_from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names as journey files write them (``datetime.weekday()`` order)."""


def next_local_time(
    now_ms: int, zone_name: str | None, hour: int, minute: int, weekdays: frozenset[int] | None = None
) -> int:
    """The first instant at or after ``now_ms`` whose wall-clock time in the zone is ``hour:minute``,
    on one of ``weekdays`` (0 = Monday; None: any day).

    Across a DST change the local time keeps its meaning: 09:00 is 09:00 local on both sides. A local
    time that does not exist on a spring-forward day (02:30) is taken as the instant the clock jumps
    past it (fold=0 rule of zoneinfo), so the wait still ends that day.
    """
    tz = zone(zone_name)
    assert tz is not None
    local = utc_from_ms(now_ms).astimezone(tz)
    day = local.date()
    for offset in range(10):
        d = day + timedelta(days=offset)
        if weekdays is not None and d.weekday() not in weekdays:
            continue
        candidate = datetime(d.year, d.month, d.day, hour, minute, tzinfo=tz)
        at = _ms(candidate)
        if at >= now_ms:
            return at
    raise AssertionError("unreachable: a local time on a given weekday recurs within ten days")


def _ms(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
