"""Campaigns: one message, or entry into a journey, for everyone in a segment at a time (docs/campaigns.md).

A campaign file (``kind: campaign``) names an audience (a segment, optionally narrowed by a condition),
what each member gets (a send step, or a journey), when (an absolute time, or a local time in each
customer's zone; once or every so many days), a delivery window and a release pace. It is validated and
deployed live, versioned like journeys and segments (:class:`CampaignRegistry`).
"""

from orchestrator.core.campaign.loader import (
    CAMPAIGN_KIND,
    is_campaign_file,
    is_campaign_text,
    load_campaign_file,
    load_campaign_text,
)
from orchestrator.core.campaign.model import (
    CAMPAIGN_STATUSES,
    CampaignDefinition,
    CampaignSchedule,
    CampaignStatus,
    campaign_journey_id,
)
from orchestrator.core.campaign.registry import MAX_CAMPAIGNS, CampaignDeployment, CampaignRegistry

__all__ = [
    "CAMPAIGN_KIND",
    "CAMPAIGN_STATUSES",
    "MAX_CAMPAIGNS",
    "CampaignDefinition",
    "CampaignDeployment",
    "CampaignRegistry",
    "CampaignSchedule",
    "CampaignStatus",
    "campaign_journey_id",
    "is_campaign_file",
    "is_campaign_text",
    "load_campaign_file",
    "load_campaign_text",
]
