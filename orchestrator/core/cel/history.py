"""seen() and count(): the events of the customer's history in a window, by type (and fields).

The history comes as records (``history``: mappings with ``type`` and ``at_ms``, oldest first) or as the
profile's stored rows (``history_rows``: lists in :data:`HISTORY_ROW_FIELDS` order, oldest first), read
without a record made per event. Each call also knows when its events next change by time alone
(:func:`history_call`'s second function): the oldest counted event leaving its window, or a later one
entering it, which a segment's timer is set to.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .errors import CelEvaluationError
from .ops import cel_eq, no_overload
from .values import Timestamp

__all__ = ["HISTORY_ROW_FIELDS", "history_call", "now_ms"]

Fn = Callable[[Mapping[str, Any]], Any]
_MISSING = object()
_NS_PER_MS = 1_000_000


def now_ms(act: Mapping[str, Any]) -> int:
    """The evaluation time in epoch milliseconds: ``now_ms`` (int) or else ``now`` (aware datetime)."""
    v = act.get("now_ms")
    if type(v) is int:
        return v
    v = act.get("now")
    if isinstance(v, datetime):
        return Timestamp.from_datetime(v).ns // _NS_PER_MS
    if type(v) is Timestamp:
        return v.ns // _NS_PER_MS
    raise CelEvaluationError(
        "the activation gives no time: set 'now_ms' (epoch ms) or 'now' (aware datetime)"
    )


def _fields_match(rec: Mapping[str, Any], required: list[tuple[str, Any]]) -> bool:
    """A history record has each of the ``required`` field values (seen()/count()'s third argument)."""
    for k, v in required:
        got = rec.get(k, _MISSING)
        if got is _MISSING:
            return False
        if not (got == v if type(got) is str and type(v) is str else cel_eq(got, v)):
            return False
    return True


HISTORY_ROW_FIELDS = ("type", "at_ms", "campaign", "action_id", "journey", "channel")
"""The fields of a stored history row, in order (``history_rows`` of an activation: the profile's rows,
oldest first, read by seen()/count() without a record made per event)."""
_ROW_INDEX = {name: i for i, name in enumerate(HISTORY_ROW_FIELDS)}


def _row_filter(required: list[tuple[str, Any]]) -> list[tuple[int, Any]] | None:
    """seen()/count()'s field filter by row position (None: no filter); a field rows do not have
    matches no row (as a record without it)."""
    if not required:
        return None
    return [(_ROW_INDEX.get(k, -1), v) for k, v in required]


def _row_matches(row: list[Any], by_index: list[tuple[int, Any]]) -> bool:
    for i, v in by_index:
        if i < 0:
            return False
        got = row[i]
        if not (got == v if type(got) is str and type(v) is str else cel_eq(got, v)):
            return False
    return True


def _rows_next_change(
    rows: list[list[Any]],
    wanted: Any,
    by_index: list[tuple[int, Any]] | None,
    start: int,
    end: int,
    window_ms: int,
) -> int | None:
    """The soonest of: the oldest counted row leaving the window, the first later row entering it."""
    first = bisect.bisect_left(rows, start, key=_at)
    soonest: int | None = None
    for i in range(first, len(rows)):
        row = rows[i]
        if (wanted is not None and row[0] != wanted) or (by_index and not _row_matches(row, by_index)):
            continue
        at = int(row[1])
        if at > end:  # (no counted row: the first later one, rows being in time order)
            return at
        soonest = at + window_ms + 1  # the oldest counted row: the first to leave
        for j in range(bisect.bisect_right(rows, end, key=_at), len(rows)):
            row = rows[j]
            if (wanted is None or row[0] == wanted) and (not by_index or _row_matches(row, by_index)):
                return min(soonest, int(row[1]))
        return soonest
    return soonest


def _at(row: list[Any]) -> int:
    return int(row[1])


def history_call(
    name: str, type_fn: Fn, where: tuple[tuple[str, Fn], ...], window_ms: int
) -> tuple[Fn, Callable[[Mapping[str, Any]], int | None]]:
    """(the call's value: seen() a bool, count() an int; when its events next change by time alone)."""
    counting = name == "count"

    def history(act: Mapping[str, Any]) -> Any:
        wanted = type_fn(act)
        if type(wanted) is not str:
            raise no_overload(name, wanted)
        end = now_ms(act)
        start = end - window_ms
        required = [(k, f(act)) for k, f in where]
        n = 0
        rows = act.get("history_rows")
        if rows is not None:  # the stored rows (HISTORY_ROW_FIELDS): no record made per event
            by_index = _row_filter(required)
            for row in reversed(rows):
                at = row[1]
                if at > end:
                    continue
                if at < start:
                    break
                if row[0] != wanted or (by_index and not _row_matches(row, by_index)):
                    continue
                if not counting:
                    return True
                n += 1
            return n if counting else False
        records = act.get("history")
        if not isinstance(records, Sequence):
            raise CelEvaluationError("the activation's 'history' is missing or not a sequence")
        for rec in reversed(records):
            at = rec.get("at_ms")
            if type(at) is not int:
                raise CelEvaluationError("a history record has no integer 'at_ms'")
            if at > end:
                continue
            if at < start:
                break
            if rec.get("type") != wanted or not _fields_match(rec, required):
                continue
            if not counting:
                return True
            n += 1
        return n if counting else False

    def next_change(act: Mapping[str, Any]) -> int | None:
        """The earliest time after ``now`` at which this call's events change by time alone: one it
        counts leaves its window (1 ms after its time plus the window) or one later than now enters
        it; None when none would. A filter that cannot be evaluated here (it reads a macro's
        variable) counts every event of the type (a check too many, never one too few)."""
        try:
            wanted = type_fn(act)
            required = [(k, f(act)) for k, f in where]
        except Exception:
            wanted, required = None, []
        end = now_ms(act)
        start = end - window_ms
        rows = act.get("history_rows")
        if rows is not None:
            return _rows_next_change(rows, wanted, _row_filter(required), start, end, window_ms)
        soonest: int | None = None
        for rec in act.get("history") or ():
            at = rec.get("at_ms")
            if type(at) is not int or at < start:
                continue
            if wanted is not None and rec.get("type") != wanted:
                continue
            if not _fields_match(rec, required):
                continue
            change = at if at > end else at + window_ms + 1
            if soonest is None or change < soonest:
                soonest = change
        return soonest

    return history, next_change
