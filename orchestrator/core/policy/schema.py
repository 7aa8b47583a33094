"""The JSON Schema of policy files (``schemas/policy.schema.json``), for editors.

``orchestrator validate`` checks more than this schema (time zones, unique rule names, engagement
event types); a unit test keeps the schema's fields equal to the loader's.
"""

from __future__ import annotations

from typing import Any

from orchestrator.contracts.events import ENGAGEMENT_TYPES
from orchestrator.core.policy.loader import GROUP_ID_MAX
from orchestrator.core.policy.model import CHANNELS

__all__ = ["policy_schema"]


def policy_schema() -> dict[str, Any]:
    channel = {"enum": list(CHANNELS)}
    channels = {
        "oneOf": [
            {"const": "all"},
            {"type": "array", "items": {"$ref": "#/$defs/channel"}, "minItems": 1, "uniqueItems": True},
            {"$ref": "#/$defs/channel"},
        ]
    }
    duration = {
        "type": "string",
        "pattern": r"^(\d+(ms|s|m|h|d|w))+$",
        "description": "e.g. 24h, 7d, 1h30m",
    }
    local_time = {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$", "description": "HH:MM"}
    name = {"type": "string", "pattern": r"^[a-z][a-z0-9_-]*$"}
    rate = {
        "oneOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {
                "type": "object",
                "properties": {
                    "per_second": {"type": "number", "exclusiveMinimum": 0},
                    "burst": {"type": "integer", "minimum": 1},
                },
                "required": ["per_second"],
                "additionalProperties": False,
            },
        ]
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Cross-channel policy",
        "description": "A policy file (docs/policy.md); `orchestrator validate` checks more than this.",
        "type": "object",
        "properties": {
            "kind": {"const": "policy"},
            "id": {"$ref": "#/$defs/name"},
            "version": {"type": "integer", "minimum": 1},
            "description": {"type": "string"},
            "fallback": {
                "type": "object",
                "properties": {ch: {"$ref": "#/$defs/channel_list"} for ch in CHANNELS},
                "additionalProperties": False,
            },
            "frequency_caps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"$ref": "#/$defs/name"},
                        "channels": {"$ref": "#/$defs/channels"},
                        "max": {"type": "integer", "minimum": 0},
                        "per": {"$ref": "#/$defs/duration"},
                    },
                    "required": ["name", "max", "per"],
                    "additionalProperties": False,
                },
            },
            "quiet_hours": {
                "type": "object",
                "properties": {
                    "start": {"$ref": "#/$defs/local_time"},
                    "end": {"$ref": "#/$defs/local_time"},
                    "channels": {"$ref": "#/$defs/channels"},
                    "action": {"enum": ["hold", "drop"], "default": "hold"},
                    "timezone": {"type": "string", "description": "IANA zone instead of the customer's"},
                    "default_timezone": {
                        "type": "string",
                        "description": "IANA zone for customers whose zone is unknown (else UTC)",
                    },
                },
                "required": ["start", "end"],
                "additionalProperties": False,
            },
            "engagement_suppression": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"$ref": "#/$defs/name"},
                        "channels": {"$ref": "#/$defs/channels"},
                        "events": {
                            "type": "array",
                            "items": {"enum": sorted(ENGAGEMENT_TYPES)},
                            "minItems": 1,
                        },
                        "within": {"$ref": "#/$defs/duration"},
                        "same_campaign": {"type": "boolean", "default": True},
                    },
                    "required": ["name", "channels", "events", "within"],
                    "additionalProperties": False,
                },
            },
            "rate_limits": {
                "type": "object",
                "properties": {ch: {"$ref": "#/$defs/rate"} for ch in CHANNELS},
                "additionalProperties": False,
            },
            "subscription_groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {**name, "maxLength": GROUP_ID_MAX},
                        "channel": {"$ref": "#/$defs/channel"},
                        "default": {
                            "enum": ["opt_in", "opt_out"],
                            "description": "opt_in: only who subscribed; opt_out: everyone with consent "
                            "on the channel unless they unsubscribed",
                        },
                        "description": {"type": "string"},
                    },
                    "required": ["id", "channel", "default"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["kind", "id", "version"],
        "additionalProperties": False,
        "$defs": {
            "name": name,
            "channel": channel,
            "channels": channels,
            "channel_list": {
                "oneOf": [
                    {"$ref": "#/$defs/channel"},
                    {"type": "array", "items": {"$ref": "#/$defs/channel"}, "minItems": 1},
                ]
            },
            "duration": duration,
            "local_time": local_time,
            "rate": rate,
        },
    }
