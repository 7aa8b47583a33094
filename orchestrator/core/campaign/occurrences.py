"""When a campaign's occurrences happen (pure calendar arithmetic on logical time, never the wall clock).

Occurrence ``n`` (0, 1, ...) of a schedule is sent at:

- an absolute schedule: ``at_ms + n * every_days`` days, the same instant for everyone;
- a local schedule: ``local_time`` on the local day ``local_day + n * every_days`` in the customer's zone
  (a spring-forward gap moves the time past the jump, as local-time waits do).

Its **release window** is when a customer may be scheduled for it: from the earliest send time over
every zone (UTC+14 for a local schedule) to the latest (UTC-12) plus the delivery window. A customer who
enters the audience within the window is scheduled then; one whose own send time plus the delivery window
is past is skipped (``late``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from orchestrator.core.campaign.model import DAY_MS, CampaignDefinition, CampaignSchedule
from orchestrator.core.engine.clock import zone

__all__ = ["EARLIEST_OFFSET_MS", "LATEST_OFFSET_MS", "open_occurrences", "release_window", "send_time_ms"]

EARLIEST_OFFSET_MS = 14 * 3_600_000
"""The furthest ahead of UTC a zone is (Pacific/Kiritimati, UTC+14)."""
LATEST_OFFSET_MS = 12 * 3_600_000
"""The furthest behind (Etc/GMT+12, UTC-12)."""
_EPOCH = date(1970, 1, 1)


def _utc_ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def send_time_ms(schedule: CampaignSchedule, n: int, zone_name: str | None) -> int:
    """When occurrence ``n`` is sent to a customer in ``zone_name`` (ignored for an absolute schedule)."""
    step = n * (schedule.every_days or 0)
    if schedule.at_ms is not None:
        return schedule.at_ms + step * DAY_MS
    assert schedule.local_day is not None
    assert schedule.local_time is not None
    day = _EPOCH + timedelta(days=schedule.local_day + step)
    tz = zone(zone_name)
    hour, minute = schedule.local_time
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    return _utc_ms(local)


def _floating_ms(schedule: CampaignSchedule, n: int) -> int:
    """Occurrence ``n``'s local day and time read as if they were UTC."""
    assert schedule.local_day is not None
    assert schedule.local_time is not None
    hour, minute = schedule.local_time
    day = schedule.local_day + n * (schedule.every_days or 0)
    return day * DAY_MS + (hour * 60 + minute) * 60_000


def release_window(campaign: CampaignDefinition, n: int) -> tuple[int, int]:
    """[start, end) of occurrence ``n``'s release: from its earliest send time over every zone to its
    latest plus the delivery window."""
    schedule = campaign.schedule
    if schedule.at_ms is not None:
        start = send_time_ms(schedule, n, None)
        return start, start + campaign.deliver_within_ms
    floating = _floating_ms(schedule, n)
    return floating - EARLIEST_OFFSET_MS, floating + LATEST_OFFSET_MS + campaign.deliver_within_ms


def open_occurrences(campaign: CampaignDefinition, at_ms: int) -> list[int]:
    """The occurrences whose release window holds ``at_ms``, oldest first."""
    schedule = campaign.schedule
    count = schedule.occurrences if schedule.every_days else 1
    first_start, first_end = release_window(campaign, 0)
    if at_ms < first_start:
        return []
    span = first_end - first_start
    if not schedule.every_days:
        return [0] if at_ms < first_end else []
    period = schedule.every_days * DAY_MS
    # occurrences n with start(n) <= at < start(n) + span, start(n) ~ first_start + n * period (DST moves a
    # local time by an hour at most: the exact window of each candidate is checked)
    low = max(0, (at_ms - first_start - span) // period - 1)
    high = min(count - 1, (at_ms - first_start) // period + 1)
    found = []
    for n in range(int(low), int(high) + 1):
        start, end = release_window(campaign, n)
        if start <= at_ms < end:
            found.append(n)
    return found
