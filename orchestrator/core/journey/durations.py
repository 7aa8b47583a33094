"""Durations as journey files write them: ``90s``, ``30m``, ``24h``, ``7d``, ``2w``, ``1h30m``, ``500ms``."""

from __future__ import annotations

import re

__all__ = ["DAY_MS", "HOUR_MS", "MINUTE_MS", "format_duration", "parse_duration"]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
_UNITS = {"ms": 1, "s": 1000, "m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS, "w": 7 * DAY_MS}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w))+$")


def parse_duration(text: str) -> int:
    """Milliseconds in ``text``; raises ValueError with a readable message when malformed."""
    compact = text.strip().replace(" ", "")
    if not _WHOLE.match(compact):
        raise ValueError(f"{text!r} is not a duration (write e.g. 30m, 24h, 7d, 1h30m)")
    return sum(int(n) * _UNITS[u] for n, u in _PART.findall(compact))


def format_duration(ms: int) -> str:
    """The shortest readable form: 86400000 -> ``1d``, 5400000 -> ``1h30m``."""
    if ms == 0:
        return "0s"
    out = []
    for unit in ("w", "d", "h", "m", "s", "ms"):
        size = _UNITS[unit]
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)
