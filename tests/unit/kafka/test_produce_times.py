"""`orchestrator produce`: the lines' times against a worker's clock, in words (issue 18, trap 2)."""

from __future__ import annotations

from orchestrator.cli.produce import time_report
from orchestrator.kafka.produce import TimeCheck

H = 3_600_000
NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z


def test_lines_older_than_the_window_are_late_and_later_than_now_are_future() -> None:
    check = TimeCheck(clock_ms=NOW, lateness_ms=24 * H, now_ms=NOW, source="the worker's clock")
    for at in (NOW - 72 * H, NOW - 25 * H, NOW - 23 * H, NOW, NOW + 4_000, NOW + 60_000):
        check.see(at)
    assert (check.late, check.future) == (2, 1)
    assert (check.oldest_ms, check.newest_ms) == (NOW - 72 * H, NOW + 60_000)
    late, future, span = time_report(check)
    assert late.startswith("2 line(s) are older than the lateness window (24 h before the worker's clock, ")
    assert "2025-11-24T16:00:00Z" in late
    assert "starts no journey for them" in late
    assert "orchestrator simulate" in late
    assert future.startswith(
        "1 line(s) are ahead of the worker's clock (2025-11-24T16:00:00Z) by more than 5 s"
    )
    assert span == "the lines' times run from 2025-11-21T16:00:00Z to 2025-11-24T16:01:00Z"


def test_nothing_is_said_when_every_line_is_on_time_or_lateness_is_off() -> None:
    check = TimeCheck(clock_ms=NOW, lateness_ms=None, now_ms=NOW)
    check.see(NOW - 1_000 * H)
    assert check.late == 0
    assert time_report(check) == []
