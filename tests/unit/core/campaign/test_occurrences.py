"""Campaign occurrences: each customer's send time (absolute, or a local time in its zone across DST),
the release window over every zone, and which occurrences are open at a time (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.campaign.model import CampaignDefinition, CampaignSchedule
from orchestrator.core.campaign.occurrences import open_occurrences, release_window, send_time_ms

H = 3_600_000
DAY = 24 * H


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def campaign(schedule: CampaignSchedule, within: int = 2 * H) -> CampaignDefinition:
    return CampaignDefinition("c", 1, "c", "", "seg", schedule, deliver_within_ms=within)


LOCAL = CampaignSchedule(
    local_day=epoch_day(date(2025, 3, 12)), local_time=(10, 0), every_days=7, occurrences=4
)


def test_a_local_time_is_each_zones_own_and_keeps_its_meaning_across_dst() -> None:
    assert send_time_ms(LOCAL, 0, "Europe/Berlin") == ms(2025, 3, 12, 9)  # UTC+1
    assert send_time_ms(LOCAL, 0, "America/New_York") == ms(2025, 3, 12, 14)  # EDT since 9 March: UTC-4
    assert send_time_ms(LOCAL, 0, None) == ms(2025, 3, 12, 10)  # (no zone: UTC)
    assert send_time_ms(LOCAL, 3, "Europe/Berlin") == ms(2025, 4, 2, 8)  # CEST from 30 March: UTC+2


def test_an_absolute_time_is_the_same_instant_for_everyone() -> None:
    at = CampaignSchedule(at_ms=ms(2025, 3, 12, 10), every_days=1, occurrences=3)
    assert {send_time_ms(at, 1, z) for z in ("Asia/Tokyo", "UTC", None)} == {ms(2025, 3, 13, 10)}
    assert release_window(campaign(at), 2) == (ms(2025, 3, 14, 10), ms(2025, 3, 14, 12))


def test_the_release_window_spans_every_zone_plus_the_delivery_window() -> None:
    start, end = release_window(campaign(LOCAL), 0)
    assert start == ms(2025, 3, 11, 20)  # 10:00 at UTC+14
    assert end == ms(2025, 3, 12, 22) + 2 * H  # 10:00 at UTC-12, plus 2 h
    for zone_name in ("Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kolkata", "America/Los_Angeles"):
        assert start <= send_time_ms(LOCAL, 0, zone_name) < end


def test_no_occurrence_is_open_before_the_first_or_after_the_last() -> None:
    c = campaign(LOCAL)
    assert open_occurrences(c, ms(2025, 3, 11, 19)) == []
    assert open_occurrences(c, ms(2025, 3, 12, 0)) == [0]
    assert open_occurrences(c, ms(2025, 3, 15, 0)) == []
    assert open_occurrences(c, ms(2025, 4, 2, 12)) == [3]
    assert open_occurrences(c, ms(2025, 4, 9, 12)) == []  # (four occurrences only)


@given(
    every=st.integers(1, 10),
    count=st.integers(1, 30),
    within_h=st.integers(1, 168),
    at=st.integers(ms(2025, 1, 1), ms(2025, 12, 31)),
)
def test_open_occurrences_are_exactly_those_whose_window_holds_the_time(
    every: int, count: int, within_h: int, at: int
) -> None:
    schedule = CampaignSchedule(
        local_day=epoch_day(date(2025, 3, 1)), local_time=(9, 30), every_days=every, occurrences=count
    )
    c = campaign(schedule, within=within_h * H)
    expected = [n for n in range(count) if release_window(c, n)[0] <= at < release_window(c, n)[1]]
    assert open_occurrences(c, at) == expected
