"""The deployed campaigns: several versions each, each effective from a logical time (the journeys' and
the segments' rules: the deployment effective at a time is the latest one at or before it; the same
version may be deployed again only with the same content, as a status change).

A deployment is refused when its conditions look back further than the history the engine keeps, or past
:data:`MAX_CAMPAIGNS` campaigns (each is a metric label and a row of ``orchestrator campaigns``).
:meth:`CampaignRegistry.in_force` gives the campaigns effective at a time, by id.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Container, Iterable
from typing import NamedTuple

from orchestrator.core.campaign.model import CAMPAIGN_STATUSES, CampaignDefinition, CampaignStatus
from orchestrator.core.campaign.occurrences import release_window
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS
from orchestrator.core.timeline import Deployed, VersionTimeline
from orchestrator.exceptions import CampaignValidationError

__all__ = ["MAX_CAMPAIGNS", "CampaignDeployment", "CampaignRegistry", "Release"]

MAX_CAMPAIGNS = 200
"""Campaigns a deployment may hold (cancelled and finished ones count: they stay in the timeline)."""


CampaignDeployment = Deployed[CampaignDefinition]


class Release(NamedTuple):
    """A moment every customer is looked at for a campaign: an occurrence's release starts (or a
    deployment of the campaign takes effect within an occurrence's release window)."""

    at_ms: int
    campaign: str
    version: int
    occurrence: int
    segment: str
    """The audience's segment (the workers look only at its members: :mod:`orchestrator.runtime.releases`)."""

    @property
    def key(self) -> str:
        """Names the release in the workers' progress: ``<campaign>@<version>#<occurrence>@<at_ms>``."""
        return f"{self.campaign}@{self.version}#{self.occurrence}@{self.at_ms}"


class CampaignRegistry:
    """Deployed campaigns; deploy live with :meth:`deploy`, read with :meth:`in_force`."""

    def __init__(
        self,
        deployments: Iterable[tuple[CampaignDefinition, int]] = (),
        *,
        history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
    ) -> None:
        self.history_window_ms = history_window_ms
        self._timeline: VersionTimeline[CampaignDefinition] = VersionTimeline()
        self.generation = 0
        """Counts deployments: a reader may keep what it derived from :meth:`in_force` while it is equal."""
        self._releases: tuple[int, list[Release], list[int], list[int]] = (-1, [], [], [])
        for definition, effective_from_ms in deployments:
            self.deploy(definition, effective_from_ms)

    # -- writing --------------------------------------------------------------------------------
    def deploy(self, definition: CampaignDefinition, effective_from_ms: int) -> CampaignDeployment:
        """Make ``definition`` the campaign's deployment from ``effective_from_ms`` on; raises
        CampaignValidationError (file:line: field: ...) when it cannot be."""
        where = f"{definition.source_name}:1"
        if self._timeline.changes_content(definition):
            raise CampaignValidationError(
                [
                    f"{where}: version: campaign {definition.id} version {definition.version} is already "
                    "deployed with different content; give the changed campaign a new version number"
                ]
            )
        if definition.max_lookback_ms > self.history_window_ms:
            condition = definition.condition
            field = (
                "audience.condition"
                if condition is not None
                and (condition.compiled.max_lookback_ms or 0) == definition.max_lookback_ms
                else "send.personalization"
            )
            raise CampaignValidationError(
                [
                    f"{where}: {field}: looks back {definition.max_lookback_ms} ms but the engine keeps "
                    f"{self.history_window_ms} ms of history"
                ]
            )
        if definition.id not in self._timeline and len(self._timeline) >= MAX_CAMPAIGNS:
            raise CampaignValidationError(
                [f"{where}: id: {MAX_CAMPAIGNS} campaigns are deployed already, the most a worker keeps"]
            )
        dep = self._timeline.add(definition, effective_from_ms)
        self.generation += 1
        return dep

    def set_status(
        self, campaign_id: str, status: CampaignStatus, effective_from_ms: int
    ) -> CampaignDeployment:
        """Pause, cancel or resume the campaign from ``effective_from_ms`` (redeploys its latest version)."""
        if status not in CAMPAIGN_STATUSES:
            raise CampaignValidationError([f"<registry>:1: status: unknown status {status!r}"])
        latest = self._timeline.latest(campaign_id)
        if latest is None:
            raise CampaignValidationError([f"<registry>:1: id: campaign {campaign_id!r} is not deployed"])
        return self.deploy(dataclasses.replace(latest, status=status), effective_from_ms)

    # -- reading --------------------------------------------------------------------------------
    def in_force(self, at_ms: int) -> tuple[CampaignDefinition, ...]:
        """The definitions effective at ``at_ms`` (paused and cancelled ones too), by id."""
        return self._timeline.in_force(at_ms)

    def current(self, campaign_id: str, at_ms: int) -> CampaignDefinition | None:
        """The campaign's definition effective at ``at_ms`` (None before its first deployment)."""
        return self._timeline.current(campaign_id, at_ms)

    def releases(self) -> list[Release]:
        """Every release of every deployment, in time order (cached until the next deployment).

        A customer is looked at for a campaign at each of these times (its own logic does it before
        anything later happens to it, and the workers wake up the members at it): the start of each
        occurrence's release window, or a deployment's effective time within the window (a version or
        status deployed while the occurrence is being released)."""
        return self._cached_releases()[1]

    def releases_between(self, from_ms: int, until_ms: int) -> list[Release]:
        """The :meth:`releases` in ``[from_ms, until_ms]``, in time order."""
        ordered, starts = self._cached_releases()[1], self._cached_releases()[3]
        return ordered[bisect.bisect_left(starts, from_ms) : bisect.bisect_right(starts, until_ms)]

    def next_release_for(self, segments: Container[str], after_ms: int, look: int = 1000) -> int | None:
        """The time of the first release after ``after_ms`` whose campaign's audience is one of
        ``segments`` (looking at ``look`` releases at most: None past them)."""
        _, ordered, _, starts = self._cached_releases()
        first = bisect.bisect_right(starts, after_ms)
        for release in ordered[first : first + look]:
            if release.segment in segments:
                return release.at_ms
        return None

    def release_times(self, after_ms: int, until_ms: int) -> list[int]:
        """The times of :meth:`releases` in ``(after_ms, until_ms]``, oldest first (no repeats)."""
        times = self._cached_releases()[2]
        return times[bisect.bisect_right(times, after_ms) : bisect.bisect_right(times, until_ms)]

    def _cached_releases(self) -> tuple[int, list[Release], list[int], list[int]]:
        """(generation, releases in time order, their distinct times, each one's time)."""
        if self._releases[0] != self.generation:
            found: set[Release] = set()
            for cid in self._timeline.ids():
                for dep in self._timeline.deployments(cid):
                    d = dep.definition
                    count = d.schedule.occurrences if d.schedule.every_days else 1
                    for n in range(count):
                        start, end = release_window(d, n)
                        at = max(start, dep.effective_from_ms)
                        current = self._timeline.current(cid, at)
                        if end > at and current is not None and current.key == d.key:  # (not superseded)
                            found.add(Release(at, cid, d.version, n, d.segment))
            ordered = sorted(found)
            starts = [r.at_ms for r in ordered]
            self._releases = (self.generation, ordered, sorted(set(starts)), starts)
        return self._releases

    def campaign_ids(self) -> list[str]:
        return self._timeline.ids()

    def deployments(self, campaign_id: str) -> list[CampaignDeployment]:
        return self._timeline.deployments(campaign_id)

    def __len__(self) -> int:
        return len(self._timeline)
