"""The stuck-partition rule: lag and no progress for stuck_after, never an idle partition."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.runtime.stuck import StuckWatch


def test_lag_without_progress_is_stuck_after_the_threshold() -> None:
    w = StuckWatch(stuck_after_ms=30_000)
    w.observe("raw-0", 10, lag=5, wall_ms=0)
    w.observe("raw-0", 10, lag=5, wall_ms=29_999)
    assert w.stuck(29_999) == []
    w.observe("raw-0", 10, lag=7, wall_ms=30_000)
    assert w.stuck(30_000) == ["raw-0"]
    assert w.stalled_ms("raw-0", 31_000) == 31_000


def test_progress_or_no_lag_resets() -> None:
    w = StuckWatch(stuck_after_ms=1000)
    w.observe("p", 1, lag=3, wall_ms=0)
    w.observe("p", 2, lag=3, wall_ms=900)  # progress
    w.observe("p", 2, lag=3, wall_ms=1500)
    assert w.stuck(1500) == []
    w.observe("p", 2, lag=0, wall_ms=5000)  # idle, nothing waiting: never stuck
    w.observe("p", 2, lag=0, wall_ms=90_000)
    assert w.stuck(90_000) == []
    w.observe("p", 2, lag=1, wall_ms=90_500)  # lagging again, counted from the last idle look
    assert w.stuck(90_900) == []
    assert w.stuck(91_000) == ["p"]


def test_forgotten_partitions_are_not_reported() -> None:
    w = StuckWatch(stuck_after_ms=10)
    w.observe("a", 1, lag=1, wall_ms=0)
    w.observe("b", 1, lag=1, wall_ms=0)
    w.keep_only(["b"])
    assert w.stuck(100) == ["b"]
    assert w.watched() == ["b"]


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(1, 2000)), max_size=60))
def test_a_partition_never_lagging_is_never_stuck(steps: list[tuple[int, int, int]]) -> None:
    w = StuckWatch(stuck_after_ms=100)
    now = 0
    for offset, _, dt in steps:
        now += dt
        w.observe("idle", offset, lag=0, wall_ms=now)
        assert w.stuck(now) == []


@given(st.lists(st.integers(1, 500), min_size=1, max_size=50))
def test_a_partition_progressing_at_every_look_is_never_stuck(gaps: list[int]) -> None:
    w = StuckWatch(stuck_after_ms=100)
    now = 0
    for n, dt in enumerate(gaps):
        now += dt
        w.observe("busy", n, lag=10, wall_ms=now)
        assert w.stuck(now) == []
