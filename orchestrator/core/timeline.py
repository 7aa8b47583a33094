"""Versions of named definitions, each effective from a logical time: the timeline the segment and
campaign registries keep (the journeys' rules: the deployment effective at a time is the latest one at or
before it, of two at the same time the one deployed later).

The registries check what they refuse (content changed under the same version, cycles, limits) and then
:meth:`VersionTimeline.add`; reading is shared: :meth:`current` for one id, :meth:`in_force` for all of
them at a time, in the order the registry set (cached: a stream's events are nearly all after the latest
deployment).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

__all__ = ["Deployed", "VersionTimeline"]


class _Definition(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def key(self) -> tuple[str, int]: ...
    @property
    def content_hash(self) -> str: ...


D = TypeVar("D", bound=_Definition)


@dataclass(frozen=True, slots=True)
class Deployed(Generic[D]):
    definition: D
    effective_from_ms: int
    seq: int
    """Order of deployment; breaks ties between equal effective times."""


class VersionTimeline(Generic[D]):
    def __init__(self) -> None:
        self._timeline: dict[str, list[Deployed[D]]] = {}
        self._starts: dict[str, list[int]] = {}
        self._versions: dict[tuple[str, int], D] = {}
        self._seq = 0
        self._order: tuple[str, ...] = ()
        self._latest_start = 0
        self._latest: tuple[D, ...] = ()
        self._cache: dict[tuple[int, ...], tuple[D, ...]] = {}

    # -- writing --------------------------------------------------------------------------------
    def changes_content(self, definition: D) -> bool:
        """Its version is deployed already with other content (a change needs a new version)."""
        known = self._versions.get(definition.key)
        return known is not None and known.content_hash != definition.content_hash

    def add(self, definition: D, effective_from_ms: int, order: Iterable[str] | None = None) -> Deployed[D]:
        """Deploy ``definition`` from ``effective_from_ms`` on; ``order``: every id in the order
        :meth:`in_force` gives them (default: sorted)."""
        self._seq += 1
        dep = Deployed(definition, effective_from_ms, self._seq)
        timeline = self._timeline.setdefault(definition.id, [])
        starts = self._starts.setdefault(definition.id, [])
        at = bisect.bisect_right(starts, effective_from_ms)
        timeline.insert(at, dep)
        starts.insert(at, effective_from_ms)
        self._versions[definition.key] = definition
        ids = sorted(self._timeline) if order is None else [i for i in order if i in self._timeline]
        self._order = tuple(ids)
        self._latest_start = max(s[-1] for s in self._starts.values())
        self._latest = tuple(self._timeline[i][-1].definition for i in self._order)
        self._cache = {}
        return dep

    # -- reading --------------------------------------------------------------------------------
    def in_force(self, at_ms: int) -> tuple[D, ...]:
        """The definitions effective at ``at_ms``, in the order set by :meth:`add`."""
        if at_ms >= self._latest_start:
            return self._latest
        picks = tuple(bisect.bisect_right(self._starts[i], at_ms) for i in self._order)
        found = self._cache.get(picks)
        if found is None:
            found = tuple(
                self._timeline[i][n - 1].definition for i, n in zip(self._order, picks, strict=True) if n
            )
            if len(self._cache) < 1024:
                self._cache[picks] = found
        return found

    def current(self, ident: str, at_ms: int) -> D | None:
        """The definition of ``ident`` effective at ``at_ms`` (None before its first deployment)."""
        starts = self._starts.get(ident)
        if not starts:
            return None
        n = bisect.bisect_right(starts, at_ms)
        return self._timeline[ident][n - 1].definition if n else None

    def version(self, ident: str, version: int) -> D | None:
        """That version of ``ident`` as deployed (the last deployment of it), whatever is in force."""
        return self._versions.get((ident, version))

    def latest(self, ident: str) -> D | None:
        """The definition deployed last with the latest effective time (what a status change redeploys)."""
        timeline = self._timeline.get(ident)
        if not timeline:
            return None
        return max(timeline, key=lambda d: (d.effective_from_ms, d.seq)).definition

    def deployments(self, ident: str) -> list[Deployed[D]]:
        return list(self._timeline.get(ident, ()))

    def items(self) -> Iterator[tuple[str, list[Deployed[D]]]]:
        return iter(self._timeline.items())

    def ids(self) -> list[str]:
        return sorted(self._timeline)

    def __contains__(self, ident: object) -> bool:
        return ident in self._timeline

    def __len__(self) -> int:
        return len(self._timeline)
