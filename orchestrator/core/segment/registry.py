"""The deployed segments: several versions each, each effective from a logical time (the journeys' rules:
the deployment effective at a time is the latest one at or before it; the same version may be deployed
again only with the same content, as a status change).

A deployment is refused when it would make segments read each other in a cycle, when its condition looks
back further than the history the engine keeps, or past :data:`MAX_SEGMENTS` segments (each is a gauge
label and a key in every member's profile). :meth:`SegmentRegistry.in_force` gives the segments effective
at a time in the order they are checked: a segment after the segments it reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS
from orchestrator.core.segment.model import SEGMENT_STATUSES, SegmentDefinition, SegmentStatus
from orchestrator.core.timeline import Deployed, VersionTimeline
from orchestrator.exceptions import SegmentValidationError

__all__ = ["MAX_SEGMENTS", "SegmentDeployment", "SegmentRegistry"]

MAX_SEGMENTS = 200
"""Segments a deployment may hold (archived ones count: they stay in the timeline)."""


SegmentDeployment = Deployed[SegmentDefinition]


class SegmentRegistry:
    """Deployed segments; deploy live with :meth:`deploy`, read with :meth:`in_force`."""

    def __init__(
        self,
        deployments: Iterable[tuple[SegmentDefinition, int]] = (),
        *,
        history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
    ) -> None:
        self.history_window_ms = history_window_ms
        self._timeline: VersionTimeline[SegmentDefinition] = VersionTimeline()
        """Every segment's versions; :meth:`in_force` gives each after the ids it reads."""
        self._by_time: dict[int, tuple[tuple[SegmentDefinition, ...], tuple[SegmentDefinition, ...]]] = {}
        self._reads_of: dict[
            int, tuple[tuple[SegmentDefinition, ...], tuple[frozenset[str] | None, bool]]
        ] = {}
        self.generation = 0
        for definition, effective_from_ms in deployments:
            self.deploy(definition, effective_from_ms)

    # -- writing --------------------------------------------------------------------------------
    def deploy(self, definition: SegmentDefinition, effective_from_ms: int) -> SegmentDeployment:
        """Make ``definition`` the segment's deployment from ``effective_from_ms`` on; raises
        SegmentValidationError (file:line: field: ...) when it cannot be."""
        where = f"{definition.source_name}:1"
        if self._timeline.changes_content(definition):
            raise SegmentValidationError(
                [
                    f"{where}: version: segment {definition.id} version {definition.version} is already "
                    "deployed with different content; give the changed segment a new version number"
                ]
            )
        if definition.max_lookback_ms > self.history_window_ms:
            raise SegmentValidationError(
                [
                    f"{where}: condition: looks back {definition.max_lookback_ms} ms but the engine keeps "
                    f"{self.history_window_ms} ms of history"
                ]
            )
        if definition.id not in self._timeline and len(self._timeline) >= MAX_SEGMENTS:
            raise SegmentValidationError(
                [f"{where}: id: {MAX_SEGMENTS} segments are deployed already, the most a worker keeps"]
            )
        reads = self._reads()
        reads.setdefault(definition.id, set()).update(definition.depends_on)
        order, cycle = _ordered(reads)
        if cycle:
            raise SegmentValidationError(
                [f"{where}: condition: segments would read each other in a cycle: {' -> '.join(cycle)}"]
            )
        dep = self._timeline.add(definition, effective_from_ms, order)
        self._by_time = {}
        self._reads_of = {}
        self.generation += 1
        return dep

    def set_status(self, segment_id: str, status: SegmentStatus, effective_from_ms: int) -> SegmentDeployment:
        """Archive or reactivate the segment from ``effective_from_ms`` (redeploys its latest version)."""
        if status not in SEGMENT_STATUSES:
            raise SegmentValidationError([f"<registry>:1: status: unknown status {status!r}"])
        latest = self._timeline.latest(segment_id)
        if latest is None:
            raise SegmentValidationError([f"<registry>:1: id: segment {segment_id!r} is not deployed"])
        return self.deploy(dataclasses.replace(latest, status=status), effective_from_ms)

    def _reads(self) -> dict[str, set[str]]:
        """Segment id -> the segments any of its versions reads."""
        return {
            sid: {d for dep in timeline for d in dep.definition.depends_on}
            for sid, timeline in self._timeline.items()
        }

    # -- reading --------------------------------------------------------------------------------
    def in_force(self, at_ms: int) -> tuple[SegmentDefinition, ...]:
        """The definitions effective at ``at_ms`` (archived ones too: their members leave), each after the
        segments it reads."""
        return self._timeline.in_force(at_ms)

    def changed_by_time(self, at_ms: int) -> tuple[SegmentDefinition, ...]:
        """Of :meth:`in_force`, the segments time alone can change: those counting events in windows and
        those that read them (directly or not), in the same order. A check with no event needs no other:
        nothing else they read changed."""
        defs = self.in_force(at_ms)
        kept = self._by_time.get(id(defs))
        if kept is not None and kept[0] is defs:
            return kept[1]
        moving: set[str] = set()
        for d in defs:  # (in order: a segment after those it reads)
            if d.status == "active" and (d.time_dependent or d.depends_on & moving):
                moving.add(d.id)
        found = tuple(d for d in defs if d.id in moving)
        if len(self._by_time) < 1024:
            self._by_time[id(defs)] = (defs, found)
        return found

    def reads(self, defs: tuple[SegmentDefinition, ...]) -> tuple[frozenset[str] | None, bool]:
        """What checking ``defs`` reads: the profile's fields (None: any) and whether a condition uses
        the history's records themselves (not only through seen()/count())."""
        kept = self._reads_of.get(id(defs))
        if kept is not None and kept[0] is defs:
            return kept[1]
        fields: set[str] | None = set()
        records = False
        for d in defs:
            compiled = d.condition.compiled
            read = compiled.fields_read("profile") if "profile" in compiled.referenced else frozenset()
            fields = None if fields is None or read is None else fields | read
            records = records or compiled.reads_history_records
        found = (None if fields is None else frozenset(fields), records)
        if len(self._reads_of) < 1024:
            self._reads_of[id(defs)] = (defs, found)
        return found

    def current(self, segment_id: str, at_ms: int) -> SegmentDefinition | None:
        return self._timeline.current(segment_id, at_ms)

    def segment_ids(self) -> list[str]:
        return self._timeline.ids()

    def deployments(self, segment_id: str) -> list[SegmentDeployment]:
        return self._timeline.deployments(segment_id)

    def __len__(self) -> int:
        return len(self._timeline)


def _ordered(reads: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """(every id, each after those it reads; a cycle as ``[a, b, a]`` or ``[]``). Ids read but not
    deployed come first (they have no members)."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the path, 2: placed
    path: list[str] = []

    def visit(sid: str) -> list[str]:
        mark = state.get(sid)
        if mark == 2:
            return []
        if mark == 1:
            return [*path[path.index(sid) :], sid]
        state[sid] = 1
        path.append(sid)
        for dep in sorted(reads.get(sid, ())):
            cycle = visit(dep)
            if cycle:
                return cycle
        path.pop()
        state[sid] = 2
        order.append(sid)
        return []

    for sid in sorted(reads):
        cycle = visit(sid)
        if cycle:
            return order, cycle
    return order, []
