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
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.core.campaign.model import CAMPAIGN_STATUSES, CampaignDefinition, CampaignStatus
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS
from orchestrator.exceptions import CampaignValidationError

__all__ = ["MAX_CAMPAIGNS", "CampaignDeployment", "CampaignRegistry"]

MAX_CAMPAIGNS = 200
"""Campaigns a deployment may hold (cancelled and finished ones count: they stay in the timeline)."""


@dataclass(frozen=True, slots=True)
class CampaignDeployment:
    definition: CampaignDefinition
    effective_from_ms: int
    seq: int


class CampaignRegistry:
    """Deployed campaigns; deploy live with :meth:`deploy`, read with :meth:`in_force`."""

    def __init__(
        self,
        deployments: Iterable[tuple[CampaignDefinition, int]] = (),
        *,
        history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
    ) -> None:
        self.history_window_ms = history_window_ms
        self._timeline: dict[str, list[CampaignDeployment]] = {}
        self._starts: dict[str, list[int]] = {}
        self._versions: dict[tuple[str, int], CampaignDefinition] = {}
        self._seq = 0
        self._ids: tuple[str, ...] = ()
        self._latest_start = 0
        self._latest: tuple[CampaignDefinition, ...] = ()
        self._cache: dict[tuple[int, ...], tuple[CampaignDefinition, ...]] = {}
        self.generation = 0
        """Counts deployments: a reader may keep what it derived from :meth:`in_force` while it is equal."""
        for definition, effective_from_ms in deployments:
            self.deploy(definition, effective_from_ms)

    # -- writing --------------------------------------------------------------------------------
    def deploy(self, definition: CampaignDefinition, effective_from_ms: int) -> CampaignDeployment:
        """Make ``definition`` the campaign's deployment from ``effective_from_ms`` on; raises
        CampaignValidationError (file:line: field: ...) when it cannot be."""
        where = f"{definition.source_name}:1"
        known = self._versions.get(definition.key)
        if known is not None and known.content_hash != definition.content_hash:
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
        self._seq += 1
        dep = CampaignDeployment(definition, effective_from_ms, self._seq)
        timeline = self._timeline.setdefault(definition.id, [])
        starts = self._starts.setdefault(definition.id, [])
        at = bisect.bisect_right(starts, effective_from_ms)
        timeline.insert(at, dep)
        starts.insert(at, effective_from_ms)
        self._versions[definition.key] = definition
        self._ids = tuple(sorted(self._timeline))
        self._latest_start = max(s[-1] for s in self._starts.values())
        self._latest = tuple(self._timeline[cid][-1].definition for cid in self._ids)
        self._cache = {}
        self.generation += 1
        return dep

    def set_status(
        self, campaign_id: str, status: CampaignStatus, effective_from_ms: int
    ) -> CampaignDeployment:
        """Pause, cancel or resume the campaign from ``effective_from_ms`` (redeploys its latest version)."""
        if status not in CAMPAIGN_STATUSES:
            raise CampaignValidationError([f"<registry>:1: status: unknown status {status!r}"])
        timeline = self._timeline.get(campaign_id)
        if not timeline:
            raise CampaignValidationError([f"<registry>:1: id: campaign {campaign_id!r} is not deployed"])
        latest = max(timeline, key=lambda d: (d.effective_from_ms, d.seq)).definition
        return self.deploy(dataclasses.replace(latest, status=status), effective_from_ms)

    # -- reading --------------------------------------------------------------------------------
    def in_force(self, at_ms: int) -> tuple[CampaignDefinition, ...]:
        """The definitions effective at ``at_ms`` (paused and cancelled ones too), by id."""
        if at_ms >= self._latest_start:
            return self._latest
        picks = tuple(bisect.bisect_right(self._starts[cid], at_ms) for cid in self._ids)
        found = self._cache.get(picks)
        if found is None:
            found = tuple(
                self._timeline[cid][i - 1].definition for cid, i in zip(self._ids, picks, strict=True) if i
            )
            if len(self._cache) < 1024:
                self._cache[picks] = found
        return found

    def current(self, campaign_id: str, at_ms: int) -> CampaignDefinition | None:
        """The campaign's definition effective at ``at_ms`` (None before its first deployment)."""
        starts = self._starts.get(campaign_id)
        if not starts:
            return None
        i = bisect.bisect_right(starts, at_ms)
        return self._timeline[campaign_id][i - 1].definition if i else None

    def campaign_ids(self) -> list[str]:
        return sorted(self._timeline)

    def deployments(self, campaign_id: str) -> list[CampaignDeployment]:
        return list(self._timeline.get(campaign_id, ()))

    def __len__(self) -> int:
        return len(self._timeline)
