"""The deployed journeys: several versions each, each effective from a logical time.

Rules (the same in the runtime and in ``orchestrator simulate``):

- an entry uses the deployment effective at the event's time (the latest one whose
  ``effective_from_ms`` is at or before it; of two with the same time, the one deployed later);
- customers in flight keep their version unless the deployment effective now says ``migrate: true``;
- ``paused``: no new entries, instances in flight go on; ``archived``: no new entries, instances in
  flight exit with reason ``archived``.

Deploying the same version again is allowed only with the same content (a status change); a
changed journey needs a new version number. The registry indexes journeys by the event types
that can start them, so the cost of an event grows with the journeys it can match.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.core.journey.entry_index import EntryIndex, required_text
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS
from orchestrator.core.journey.model import STATUSES, JourneyDefinition, Status
from orchestrator.exceptions import JourneyValidationError

__all__ = ["Deployment", "JourneyRegistry"]


@dataclass(frozen=True, slots=True)
class Deployment:
    definition: JourneyDefinition
    effective_from_ms: int
    seq: int
    """Order of deployment; breaks ties between equal effective times."""


class JourneyRegistry:
    """Deployed journeys; deploy live with :meth:`deploy`, read with :meth:`current` and :meth:`version`."""

    def __init__(
        self,
        deployments: Iterable[tuple[JourneyDefinition, int]] = (),
        *,
        history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
    ) -> None:
        self.history_window_ms = history_window_ms
        self._timeline: dict[str, list[Deployment]] = {}
        self._starts: dict[str, list[int]] = {}
        self._versions: dict[tuple[str, int], JourneyDefinition] = {}
        self._by_entry_event: dict[str, tuple[str, ...]] = {}
        self._entry_index: dict[str, EntryIndex] = {}
        self._condition_entry: tuple[str, ...] = ()
        self._seq = 0
        self.generation = 0
        """Grows with every deploy; callers may cache what they derive from the registry."""
        for definition, effective_from_ms in deployments:
            self.deploy(definition, effective_from_ms)

    # -- writing --------------------------------------------------------------------------------
    def deploy(self, definition: JourneyDefinition, effective_from_ms: int) -> Deployment:
        """Make ``definition`` the journey's deployment from ``effective_from_ms`` on.

        Raises JourneyValidationError when the same version was deployed with other content or
        when a condition looks back further than the history the engine keeps.
        """
        where = f"{definition.source_name}:1: version"
        known = self._versions.get(definition.key)
        if known is not None and known.content_hash != definition.content_hash:
            raise JourneyValidationError(
                [
                    f"{where}: {definition.id} version {definition.version} is already deployed with "
                    "different content; give the changed journey a new version number"
                ]
            )
        if definition.max_lookback_ms > self.history_window_ms:
            raise JourneyValidationError(
                [
                    f"{definition.source_name}:1: (root): conditions look back "
                    f"{definition.max_lookback_ms} ms but the engine keeps "
                    f"{self.history_window_ms} ms of history"
                ]
            )
        self._seq += 1
        dep = Deployment(definition=definition, effective_from_ms=effective_from_ms, seq=self._seq)
        timeline = self._timeline.setdefault(definition.id, [])
        starts = self._starts.setdefault(definition.id, [])
        at = bisect.bisect_right(starts, effective_from_ms)
        timeline.insert(at, dep)
        starts.insert(at, effective_from_ms)
        self._versions[definition.key] = definition
        self._reindex()
        return dep

    def set_status(self, journey_id: str, status: Status, effective_from_ms: int) -> Deployment:
        """Pause, archive or reactivate the journey from ``effective_from_ms`` (redeploys its latest)."""
        if status not in STATUSES:
            raise JourneyValidationError([f"<registry>:1: status: unknown status {status!r}"])
        timeline = self._timeline.get(journey_id)
        if not timeline:
            raise JourneyValidationError([f"<registry>:1: id: journey {journey_id!r} is not deployed"])
        latest = max(timeline, key=lambda d: (d.effective_from_ms, d.seq)).definition
        return self.deploy(dataclasses.replace(latest, status=status), effective_from_ms)

    def _reindex(self) -> None:
        by_event: dict[str, list[str]] = {}
        condition: list[str] = []
        for jid, timeline in sorted(self._timeline.items()):
            types: set[str] = set()
            has_condition = False
            for dep in timeline:
                types |= dep.definition.entry.events
                has_condition |= dep.definition.entry.becomes_true is not None
            for t in types:
                by_event.setdefault(t, []).append(jid)
            if has_condition:
                condition.append(jid)
        self._by_entry_event = {t: tuple(ids) for t, ids in by_event.items()}
        self._condition_entry = tuple(condition)
        self._entry_index = {}
        for t, ids in self._by_entry_event.items():
            needs: dict[str, list[tuple[tuple[str, ...], str] | None]] = {}
            for jid in ids:
                for dep in self._timeline[jid]:
                    entry = dep.definition.entry
                    if t in entry.events or jid in condition:  # (condition entries: every event)
                        cond = entry.condition
                        needs.setdefault(jid, []).append(None if cond is None else required_text(cond.source))
            self._entry_index[t] = EntryIndex.build(ids, needs)
        self.generation += 1

    # -- reading --------------------------------------------------------------------------------
    def current(self, journey_id: str, at_ms: int) -> JourneyDefinition | None:
        """The definition effective at ``at_ms`` (None before the first deployment)."""
        starts = self._starts.get(journey_id)
        if not starts:
            return None
        i = bisect.bisect_right(starts, at_ms)
        return self._timeline[journey_id][i - 1].definition if i else None

    def version(self, journey_id: str, version: int) -> JourneyDefinition | None:
        """The definition of one version (what instances in flight on it run)."""
        return self._versions.get((journey_id, version))

    def entered_by(self, event_type: str) -> tuple[str, ...]:
        """Ids of journeys (any version) an event of this type can start."""
        return self._by_entry_event.get(event_type, ())

    def entry_candidates(self, event_type: str, event: dict[str, Any]) -> tuple[str, ...] | list[str]:
        """Of :meth:`entered_by`, the journeys whose entry condition ``event`` (the condition view of
        an event of that type) may satisfy, in the same order (:mod:`.entry_index`)."""
        index = self._entry_index.get(event_type)
        return () if index is None else index.candidates(event)

    def condition_entries(self) -> tuple[str, ...]:
        """Ids of journeys (any version) entered when a condition becomes true: checked on every event."""
        return self._condition_entry

    def journey_ids(self) -> list[str]:
        return sorted(self._timeline)

    def deployments(self, journey_id: str) -> list[Deployment]:
        return list(self._timeline.get(journey_id, ()))

    def __len__(self) -> int:
        return len(self._timeline)
