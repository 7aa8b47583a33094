"""Keeping one customer's segment memberships: checked on each of the customer's events, and again when
an event a time-dependent segment counts leaves its window (the customer's own timer, with no event).

:func:`recheck` evaluates the segments in force at a time, in the order the registry gives (a segment
after those it reads, which see the memberships just computed), records who entered (since when) and who
left in the profile, and sets the state's ``segment_due_ms``: the soonest time one of the counted events
leaves its window. A customer none of whose events a time-dependent segment counts has no segment timer.
An archived segment has no members; a condition that fails at run time (a missing field) counts as false.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.contracts.events import SEGMENT_ENTERED, SEGMENT_LEFT
from orchestrator.core.engine.run import Run
from orchestrator.core.segment.model import SegmentDefinition
from orchestrator.core.segment.registry import SegmentRegistry
from orchestrator.exceptions import ConditionError

__all__ = ["SegmentChange", "recheck", "segment_event_view"]


@dataclass(frozen=True, slots=True)
class SegmentChange:
    segment: str
    entered: bool
    """True: the customer entered the segment; False: left it."""
    at_ms: int


def recheck(
    run: Run, segments: SegmentRegistry | None, at_ms: int, *, time_only: bool = False
) -> list[SegmentChange]:
    """Check the customer's memberships at ``at_ms``; the changes, in the order they happened.
    ``time_only``: nothing but time changed since the last check (a segment timer): only the segments
    time can change are checked (:meth:`SegmentRegistry.changed_by_time`). Members of a segment archived
    or no longer in force leave at any check."""
    state = run.state
    members = state.profile.segments
    if segments is None:
        defs: tuple[SegmentDefinition, ...] = ()
    else:
        defs = segments.changed_by_time(at_ms) if time_only else segments.in_force(at_ms)
    if not defs and not members:
        state.segment_due_ms = None
        return []
    changes: list[SegmentChange] = []
    due: int | None = None
    act: dict[str, Any] | None = None
    checked: set[str] = set()
    for definition in defs:
        sid = definition.id
        checked.add(sid)
        member = False
        if definition.status == "active":
            if act is None:
                assert segments is not None
                act = run.state_activation(at_ms, *segments.reads(defs))
            compiled = definition.condition.compiled
            try:
                member = compiled.test(act)
            except ConditionError:
                member = False
            if compiled.time_dependent:
                change = compiled.next_change_ms(act)
                if change is not None and (due is None or change < due):
                    due = change
        if member and sid not in members:
            members[sid] = at_ms
            changes.append(SegmentChange(sid, True, at_ms))
        elif not member and sid in members:
            del members[sid]
            changes.append(SegmentChange(sid, False, at_ms))
    for sid in [s for s in members if s not in checked and not _active(segments, s, at_ms)]:
        del members[sid]
        changes.append(SegmentChange(sid, False, at_ms))
    state.segment_due_ms = due
    return changes


def _active(segments: SegmentRegistry | None, segment_id: str, at_ms: int) -> bool:
    """The segment is in force and active at ``at_ms`` (a member not checked now stays one)."""
    found = segments.current(segment_id, at_ms) if segments is not None else None
    return found is not None and found.status == "active"


def segment_event_view(change: SegmentChange) -> dict[str, Any]:
    """The ``event`` of journey conditions for a segment change (``entry: {segment: ...}``,
    ``exit_when: [{left_segment: ...}]``): type ``orchestrator.segment.entered`` or ``.left``, the
    segment in ``properties.segment``."""
    kind = SEGMENT_ENTERED if change.entered else SEGMENT_LEFT
    return {
        "id": f"{kind}:{change.segment}:{change.at_ms}",
        "type": kind,
        "at_ms": change.at_ms,
        "source": "orchestrator",
        "properties": {"segment": change.segment},
        "campaign": "",
        "action_id": "",
        "journey": "",
    }
