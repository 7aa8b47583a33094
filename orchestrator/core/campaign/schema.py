"""The JSON Schema of campaign files (``schemas/campaign.schema.json``), for editors.

``orchestrator validate`` checks more than this schema (the CEL condition and what it may read, time
zones, whole-day recurrences, that ``send`` and ``journey`` are not both given); a unit test keeps the
schema's fields equal to the loader's.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.campaign.loader import (
    DEFAULT_DELIVER_WITHIN_MS,
    MAX_OCCURRENCES,
    MAX_PACE_PER_SECOND,
)
from orchestrator.core.campaign.model import CAMPAIGN_STATUSES
from orchestrator.core.journey.durations import format_duration
from orchestrator.core.journey.model import CHANNEL_CHOICES

__all__ = ["campaign_schema"]


def campaign_schema() -> dict[str, Any]:
    duration = {"type": "string", "pattern": r"^(\d+(ms|s|m|h|d|w))+$", "description": "e.g. 2h, 7d, 1h30m"}
    name = {"type": "string", "pattern": r"^[a-z][a-z0-9_-]*$"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Campaign",
        "description": "One message, or entry into a journey, for everyone in a segment at a time: an "
        "absolute time or a local time in each customer's zone, once or recurring (docs/campaigns.md).",
        "type": "object",
        "properties": {
            "kind": {"const": "campaign"},
            "id": name,
            "version": {"type": "integer", "minimum": 1},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "status": {"enum": list(CAMPAIGN_STATUSES), "default": "active"},
            "audience": {
                "type": "object",
                "properties": {
                    "segment": {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,63}$"},
                    "condition": {
                        "type": "string",
                        "description": "CEL over profile and history, narrowing the segment; not event, "
                        "journey or now alone.",
                    },
                },
                "required": ["segment"],
                "additionalProperties": False,
            },
            "send": {
                "type": "object",
                "description": "The message each member gets (a journey's send step, without next).",
                "properties": {
                    "channel": {
                        "enum": [*CHANNEL_CHOICES, "auto"],
                        "description": "auto: one of `channels` per member (docs/optimization.md)",
                    },
                    "channels": {
                        "type": "array",
                        "minItems": 2,
                        "uniqueItems": True,
                        "items": {"enum": list(CHANNEL_CHOICES)},
                    },
                    "template": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "object", "additionalProperties": {"type": "string"}},
                        ],
                        "description": "a template id; with channel: auto, one per channel",
                    },
                    "send_time": {"enum": ["immediate", "optimal"], "default": "immediate"},
                    "within": duration,
                    "between": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "string"}},
                    "category": {"enum": ["marketing", "transactional"], "default": "marketing"},
                    "subscription_group": name,
                    "personalization": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "name: CEL expression",
                    },
                    "on_unsent": {"enum": ["continue", "exit"], "default": "continue"},
                },
                "required": ["channel", "template"],
                "additionalProperties": False,
            },
            "journey": {**name, "description": "The journey each member enters (instead of send)."},
            "schedule": {
                "type": "object",
                "properties": {
                    "at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "One instant for everyone, with a zone: 2025-03-12T10:00:00Z.",
                    },
                    "date": {"type": "string", "format": "date", "description": "With local_time."},
                    "local_time": {
                        "type": "string",
                        "pattern": r"^([01]\d|2[0-3]):[0-5]\d$",
                        "description": "HH:MM in each customer's zone, on date.",
                    },
                    "default_timezone": {
                        "type": "string",
                        "description": "With local_time: the zone of customers whose zone is unknown.",
                    },
                    "every": {**duration, "description": "Whole days: 1d, 7d, 14d."},
                    "occurrences": {"type": "integer", "minimum": 1, "maximum": MAX_OCCURRENCES},
                },
                "oneOf": [{"required": ["at"]}, {"required": ["date", "local_time"]}],
                "dependentRequired": {"every": ["occurrences"], "occurrences": ["every"]},
                "additionalProperties": False,
            },
            "deliver_within": {**duration, "default": format_duration(DEFAULT_DELIVER_WITHIN_MS)},
            "pace": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_PACE_PER_SECOND},
        },
        "required": ["kind", "id", "version", "audience", "schedule"],
        "oneOf": [{"required": ["send"]}, {"required": ["journey"]}],
        "additionalProperties": False,
    }
