"""Telling operators about events not applied at their own time: one log line per partition and reason
when the first arrives, then at most one a minute with how many came and how fast.

``late``: older than ``lateness_hours`` behind the partition's clock: the profile and the running
journeys take it, no journey starts. ``future``: later than the worker's clock (more than the allowed
skew ahead of the wall clock): applied now, at the clock. Both are counted by the metric
``orchestrator_events_out_of_time{reason}`` and per customer in its state (``orchestrator inspect``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from orchestrator.core.engine.state import TIMING_MEANING

__all__ = ["OutOfTimeLog"]


@dataclass(slots=True)
class _Seen:
    count: int = 0
    """Since the last line."""
    since_s: float = 0.0
    """When the last line was written (wall seconds)."""


@dataclass
class OutOfTimeLog:
    """Which log lines to write; the caller writes them (pure but for the wall time it is given)."""

    every_s: float = 60.0
    seen: dict[tuple[int, str], _Seen] = field(default_factory=dict)

    def note(
        self,
        partition: int,
        reason: str,
        *,
        where: str,
        occurred_ms: int,
        clock_ms: int | None,
        wall_s: float,
    ) -> str | None:
        """One event of ``reason`` on ``partition`` (``where``: topic[partition]@offset): the line to log
        now, or None."""
        key = (partition, reason)
        seen = self.seen.get(key)
        if seen is None:
            self.seen[key] = _Seen(0, wall_s)
            clock = "" if clock_ms is None else f", the partition's clock is at {_iso(clock_ms)}"
            return (
                f"{where}: an event of {_iso(occurred_ms)} is {reason}{clock}; {reason} events are "
                f"{TIMING_MEANING.get(reason, reason)} (counted by orchestrator_events_out_of_time; a line a "
                f"minute at most from now on)"
            )
        seen.count += 1
        elapsed = wall_s - seen.since_s
        if elapsed < self.every_s:
            return None
        line = (
            f"partition {partition}: {seen.count} {reason} events in the last {elapsed:.0f} s "
            f"({seen.count / elapsed:.1f}/s), the last at {where} of {_iso(occurred_ms)}"
        )
        seen.count, seen.since_s = 0, wall_s
        return line


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
