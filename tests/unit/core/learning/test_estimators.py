"""The run stage's estimators: decayed local hours, the send-time and channel choices, adaptive splits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.journey.model import SplitBranch
from orchestrator.core.learning.channels import channel_posterior, choose_channel
from orchestrator.core.learning.model import BranchStats, ChannelStats, EngagementModel, HourStats
from orchestrator.core.learning.sendtime import candidate_moments, choose_send_time, in_bounds
from orchestrator.core.learning.splits import adaptive_branch
from orchestrator.core.learning.timing import (
    HALF_LIFE_MS,
    decayed_scores,
    local_hour_of_week,
    merge_timing,
    record_engagement,
)

BERLIN = "Europe/Berlin"
H = 3_600_000


def ms(tz: str, *when: int) -> int:
    return int(datetime(*when, tzinfo=ZoneInfo(tz)).timestamp() * 1000)  # type: ignore[misc,arg-type]


def model(**kw: Any) -> EngagementModel:
    fields: dict[str, Any] = {"id": "m", "version": 1, "fitted_from_ms": 0, "fitted_to_ms": 1}
    fields.update(kw)
    return EngagementModel(**fields)


# -- local hour of the week ------------------------------------------------------------------------
def test_the_hour_of_the_week_is_local_on_both_sides_of_dst() -> None:
    winter, summer = ms(BERLIN, 2025, 1, 13, 9, 15), ms(BERLIN, 2025, 7, 14, 9, 15)  # two Mondays 09:15
    assert local_hour_of_week(winter, BERLIN) == local_hour_of_week(summer, BERLIN) == 9
    assert (summer - winter) % (7 * 24 * H) != 0  # an hour apart in UTC: UTC hours would differ
    assert local_hour_of_week(winter, "UTC") != local_hour_of_week(summer, "UTC")


def test_the_dst_days_themselves() -> None:
    # 2025-03-30 (a Sunday, day 6): Berlin's clocks jump from 02:00 to 03:00 (01:00 UTC); 00:30 UTC is
    # 01:30 CET, 01:30 UTC is 03:30 CEST: the hour of 02:00 is skipped
    assert (
        local_hour_of_week(int(datetime(2025, 3, 30, 0, 30, tzinfo=UTC).timestamp() * 1000), BERLIN)
        == 6 * 24 + 1
    )
    assert (
        local_hour_of_week(int(datetime(2025, 3, 30, 1, 30, tzinfo=UTC).timestamp() * 1000), BERLIN)
        == 6 * 24 + 3
    )
    # 2025-10-26 02:00-03:00 Berlin happens twice: both count for hour 2
    first = int(datetime(2025, 10, 26, 0, 30, tzinfo=UTC).timestamp() * 1000)
    assert local_hour_of_week(first, BERLIN) == local_hour_of_week(first + H, BERLIN) == 6 * 24 + 2


def test_an_unknown_zone_counts_in_utc() -> None:
    at = int(datetime(2025, 3, 3, 10, tzinfo=UTC).timestamp() * 1000)  # a Monday
    assert local_hour_of_week(at, "Mars/Olympus") == local_hour_of_week(at, None) == 10


# -- decayed scores --------------------------------------------------------------------------------
def test_scores_halve_every_half_life_and_stay_bounded() -> None:
    timing: dict[str, list[Any]] = {}
    t0 = ms(BERLIN, 2025, 1, 6, 19)
    record_engagement(timing, "email", t0, BERLIN)
    record_engagement(timing, "email", t0 + HALF_LIFE_MS, BERLIN)
    scores = decayed_scores(timing["email"], t0 + HALF_LIFE_MS)
    assert scores == {19: pytest.approx(1.5)}  # (4 weeks later: the same weekday and hour)
    assert sum(decayed_scores(timing["email"], t0 + 2 * HALF_LIFE_MS).values()) == pytest.approx(0.75)
    for i in range(2000):  # every hour of ten weeks: at most 168 scores
        record_engagement(timing, "email", t0 + i * H, BERLIN)
    assert len(timing["email"][1]) <= 168


def test_a_late_event_counts_decayed_to_the_reference_time() -> None:
    timing: dict[str, list[Any]] = {}
    t0 = ms("UTC", 2025, 3, 3, 8)
    record_engagement(timing, "sms", t0, "UTC")
    record_engagement(timing, "sms", t0 - HALF_LIFE_MS, "UTC")
    assert timing["sms"][0] == t0
    assert sum(decayed_scores(timing["sms"], t0).values()) == pytest.approx(1.5)


def test_merging_two_customers_adds_their_decayed_scores() -> None:
    a: dict[str, list[Any]] = {}
    b: dict[str, list[Any]] = {}
    t0 = ms("UTC", 2025, 3, 3, 8)
    record_engagement(a, "email", t0, "UTC")
    record_engagement(b, "email", t0 + HALF_LIFE_MS, "UTC")
    record_engagement(b, "push", t0, "UTC")
    merge_timing(a, b)
    assert a["email"][0] == t0 + HALF_LIFE_MS
    assert sum(decayed_scores(a["email"], t0 + HALF_LIFE_MS).values()) == pytest.approx(1.5)
    assert "push" in a


# -- send time -------------------------------------------------------------------------------------
def test_no_history_and_no_model_sends_now() -> None:
    now = ms(BERLIN, 2025, 3, 3, 7, 12)
    got = choose_send_time(now, 24 * H, history_zone=BERLIN, bounds_zone=BERLIN, between=None, own={},
                           prior=None, prior_weight=10.0)  # fmt: skip
    assert (got.at_ms, got.basis) == (now, "no_data")


def test_the_customer_s_hour_wins_within_the_window() -> None:
    now = ms(BERLIN, 2025, 3, 3, 7, 12)  # Monday 07:12
    own = {local_hour_of_week(ms(BERLIN, 2025, 2, 24, 19), BERLIN): 3.0}  # Mondays at 19:00
    got = choose_send_time(now, 24 * H, history_zone=BERLIN, bounds_zone=BERLIN, between=None, own=own,
                           prior=None, prior_weight=10.0)  # fmt: skip
    assert got.at_ms == ms(BERLIN, 2025, 3, 3, 19)
    assert got.basis == "history"


def test_the_same_hour_on_other_days_counts_too() -> None:
    now = ms(BERLIN, 2025, 3, 6, 7, 0)  # a Thursday; the customer opened at 08:00 Friday to Tuesday
    own = {local_hour_of_week(ms(BERLIN, 2025, 2, d, 8), BERLIN): 1.0 for d in range(21, 26)}
    got = choose_send_time(now, 24 * H, history_zone=BERLIN, bounds_zone=BERLIN, between=None, own=own,
                           prior=None, prior_weight=10.0)  # fmt: skip
    assert got.at_ms == ms(BERLIN, 2025, 3, 6, 8)


def test_the_model_s_prior_alone_picks_the_population_s_hour() -> None:
    now = ms("UTC", 2025, 3, 3, 6)
    sends = tuple(100 for _ in range(168))
    engaged = tuple(40 if h % 24 == 18 else 5 for h in range(168))
    m = model(hours={"email": HourStats(sends, engaged)})
    got = choose_send_time(now, 24 * H, history_zone="UTC", bounds_zone="UTC", between=None, own={},
                           prior=m.hour_prior("email"), prior_weight=m.prior_weight)  # fmt: skip
    assert (got.at_ms, got.basis) == (ms("UTC", 2025, 3, 3, 18), "prior")


def test_dst_the_chosen_local_hour_is_the_same_in_summer() -> None:
    """Opens at 12:15 in New York in February (EST) make the send go at 12:00 local in March (EDT)."""
    own = {local_hour_of_week(ms("America/New_York", 2025, 2, 26, 12, 15), "America/New_York"): 2.0}
    now = ms("America/New_York", 2025, 3, 12, 2, 31)  # a Wednesday, after the switch on March 9
    got = choose_send_time(now, 24 * H, history_zone="America/New_York", bounds_zone="America/New_York",
                           between=None, own=own, prior=None, prior_weight=1.0)  # fmt: skip
    assert got.at_ms == ms("America/New_York", 2025, 3, 12, 12)
    assert datetime.fromtimestamp(got.at_ms / 1000, UTC).hour == 16  # 12:00 EDT


def test_bounds_keep_the_send_inside_local_hours() -> None:
    now = ms(BERLIN, 2025, 3, 3, 7, 12)
    own = {local_hour_of_week(ms(BERLIN, 2025, 2, 24, 23), BERLIN): 5.0, 7 * 24 - 1: 0.0}
    got = choose_send_time(now, 24 * H, history_zone=BERLIN, bounds_zone=BERLIN, between=(8 * 60, 21 * 60),
                           own=own, prior=None, prior_weight=1.0)  # fmt: skip
    assert 8 <= datetime.fromtimestamp(got.at_ms / 1000, ZoneInfo(BERLIN)).hour < 21
    assert not in_bounds(ms(BERLIN, 2025, 3, 3, 23), BERLIN, (8 * 60, 21 * 60))
    assert in_bounds(ms(BERLIN, 2025, 3, 3, 23), BERLIN, (22 * 60, 6 * 60))  # wraps past midnight
    assert in_bounds(ms(BERLIN, 2025, 3, 3, 5), BERLIN, (22 * 60, 6 * 60))


def test_no_hour_within_the_bounds_sends_now() -> None:
    now = ms(BERLIN, 2025, 3, 3, 22)
    got = choose_send_time(now, 2 * H, history_zone=BERLIN, bounds_zone=BERLIN, between=(8 * 60, 9 * 60),
                           own={5: 1.0}, prior=None, prior_weight=1.0)  # fmt: skip
    assert (got.at_ms, got.basis) == (now, "no_hour")


@given(st.integers(min_value=1_600_000_000_000, max_value=1_900_000_000_000), st.integers(1, 168))
def test_candidates_are_now_and_local_hour_starts_inside_the_window(now: int, hours: int) -> None:
    for tz in ("Asia/Kolkata", BERLIN):  # (+05:30: local hours start at half past in UTC)
        moments = candidate_moments(now, hours * H, tz)
        assert moments[0] == now
        assert all(now < m < now + hours * H for m in moments[1:])
        assert all(datetime.fromtimestamp(m / 1000, ZoneInfo(tz)).minute == 0 for m in moments[1:])


# -- channel ---------------------------------------------------------------------------------------
def test_no_data_is_a_uniform_prior_on_every_channel() -> None:
    assert channel_posterior({}, "email", None) == (1.0, 1.0)
    picked = choose_channel("act_1", ["email", "sms"], {}, None)
    assert picked.rates == {"email": 0.5, "sms": 0.5}
    assert picked.channel in ("email", "sms")


def test_the_customer_s_answers_and_the_prior_make_the_rates() -> None:
    engagement = {"sms.sent": [4, 0], "sms.clicked": [3, 0], "email.sent": [6, 0], "email.opened": [0, 0]}
    assert channel_posterior(engagement, "sms", None) == (4.0, 2.0)  # Beta(1,1) + 3 of 4
    m = model(channels={"email": ChannelStats(1000, 200)}, prior_weight=10.0)
    a, b = channel_posterior(engagement, "email", m)
    assert (a, b) == pytest.approx((10 * 201 / 1002, 10 * (1 - 201 / 1002) + 6))
    # a strong customer preference wins nearly always (Thompson sampling, seeded per send)
    wins = sum(
        choose_channel(f"act_{i}", ["email", "sms"], engagement, m).channel == "sms" for i in range(200)
    )
    assert wins > 180


def test_opens_without_recorded_sends_count_as_sends() -> None:
    assert channel_posterior({"push.opened": [3, 0]}, "push", None) == (4.0, 1.0)


def test_the_same_send_gets_the_same_channel() -> None:
    engagement = {"email.sent": [2, 0], "email.opened": [1, 0]}
    picks = {choose_channel("act_x", ["email", "push", "sms"], engagement, None).channel for _ in range(5)}
    assert len(picks) == 1


# -- adaptive splits -------------------------------------------------------------------------------
BRANCHES = (
    SplitBranch("holdout", 1000, None, holdout=True),
    SplitBranch("a", 4500, "x"),
    SplitBranch("b", 4500, "y"),
)


def test_the_holdout_is_decided_by_the_bucket_whatever_the_model() -> None:
    strong = {"a": BranchStats(1000, 10), "b": BranchStats(1000, 400)}
    for bucket in range(0, 1000, 7):
        assert adaptive_branch(BRANCHES, bucket, strong, f"s{bucket}")[0].name == "holdout"
        assert adaptive_branch(BRANCHES, bucket, {}, f"s{bucket}")[0].name == "holdout"
    treated = [
        adaptive_branch(BRANCHES, bucket, strong, f"s{bucket}")[0].name for bucket in range(1000, 10_000)
    ]
    assert "holdout" not in treated
    assert treated.count("b") > 0.95 * len(treated)  # the model says b converts far better


def test_without_counts_the_fixed_shares_apply() -> None:
    assert adaptive_branch(BRANCHES, 2000, {}, "s")[0].name == "a"
    assert adaptive_branch(BRANCHES, 9000, {}, "s") == (BRANCHES[2], None)


def test_equal_counts_share_the_treated_customers() -> None:
    even = {"a": BranchStats(500, 50), "b": BranchStats(500, 50)}
    names = [adaptive_branch(BRANCHES, 5000, even, f"c{i}")[0].name for i in range(2000)]
    assert 0.4 < names.count("a") / len(names) < 0.6
