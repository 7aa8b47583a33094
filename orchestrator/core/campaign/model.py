"""A campaign as an immutable Python object, ready for the per-customer logic.

A :class:`CampaignDefinition` is what a campaign file (``kind: campaign``, docs/campaigns.md) becomes
after loading and validation: everyone in an audience (a segment, optionally narrowed by a condition)
gets one message, or enters a journey, at a time — an absolute time, or a local time in each customer's
time zone — once or on every occurrence of a recurrence, within a delivery window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator.core.journey.model import Condition, SendStep

__all__ = [
    "CAMPAIGN_STATUSES",
    "CampaignDefinition",
    "CampaignSchedule",
    "CampaignStatus",
    "campaign_journey_id",
]

CampaignStatus = Literal["active", "paused", "cancelled"]
CAMPAIGN_STATUSES: tuple[CampaignStatus, ...] = ("active", "paused", "cancelled")
DAY_MS = 86_400_000


def campaign_journey_id(campaign_id: str) -> str:
    """The ``journey_id`` of a campaign's actions and decisions: ``campaign:<id>``."""
    return f"campaign:{campaign_id}"


@dataclass(frozen=True, slots=True)
class CampaignSchedule:
    """When the occurrences are. Either ``at_ms`` (an absolute time: every customer at the same instant)
    or ``local_day`` + ``local_time`` (a calendar day and a wall-clock time in each customer's zone; a
    customer whose zone is unknown gets ``default_timezone``, else UTC). ``every_days``: one occurrence
    every so many days after the first; ``occurrences``: how many in all (1 without ``every_days``)."""

    at_ms: int | None = None
    local_day: int | None = None
    """Epoch day (days since 1970-01-01) of the first occurrence's local date."""
    local_time: tuple[int, int] | None = None
    default_timezone: str | None = None
    every_days: int | None = None
    occurrences: int = 1

    @property
    def local(self) -> bool:
        return self.local_time is not None


@dataclass(frozen=True, slots=True)
class CampaignDefinition:
    """One version of one campaign."""

    id: str
    version: int
    name: str
    description: str
    segment: str
    """The audience: the members of this segment at each one's send time."""
    schedule: CampaignSchedule
    condition: Condition | None = None
    """Narrows the audience (CEL over ``profile`` and ``history``, as a segment's condition)."""
    send: SendStep | None = None
    """The message each member gets (its ``campaign`` is the campaign's id); or ``journey``."""
    journey: str | None = None
    """The journey each member enters instead of a message (its re-entry rules apply)."""
    deliver_within_ms: int = 2 * 3_600_000
    """A member whose send time is further back than this when it can be sent is skipped (``late``)."""
    pace_per_second: float | None = None
    """Sends released per second over the cluster (the runtime spreads a burst); None: as fast as due."""
    status: CampaignStatus = "active"
    """``paused``: members not yet released wait (released when active again, within the window);
    ``cancelled``: members not yet released never are."""
    max_lookback_ms: int = 0
    source_name: str = "<text>"
    content_hash: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.version)

    @property
    def journey_id(self) -> str:
        return campaign_journey_id(self.id)
