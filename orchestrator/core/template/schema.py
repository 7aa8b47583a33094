"""The JSON Schema of template files (``schemas/template.schema.json``), for editors.

``orchestrator validate`` checks more than this schema (each part compiles in the sandbox, reads only
declared variables, stays within its channel's limits); a unit test keeps the schema's fields equal to
the loader's.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.template.loader import (
    DATA_KEY_RE,
    MAX_DATA_KEYS,
    MAX_DEFAULT_CHARS,
    MAX_ID_CHARS,
    MAX_VARIABLES,
    VARIABLE_RE,
)
from orchestrator.core.template.model import PART_LIMITS, PARTS

__all__ = ["template_schema"]


def _text(channel: str, part: str, what: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": PART_LIMITS[(channel, part)][0],
        "description": f"{what} (Jinja2, sandboxed).",
    }


def template_schema() -> dict[str, Any]:
    variable = {
        "type": "object",
        "properties": {
            "required": {"type": "boolean", "description": "true: a message without it is not sent."},
            "default": {
                "description": f"Used when the send gives none (at most {MAX_DEFAULT_CHARS} characters as "
                "JSON): text, a number, true/false, a list or a map.",
                "not": {"type": "null"},
            },
            "description": {"type": "string"},
        },
        "oneOf": [
            {
                "required": ["required"],
                "properties": {"required": {"const": True}},
                "not": {"required": ["default"]},
            },
            {"required": ["default"], "properties": {"required": {"const": False}}},
        ],
        "additionalProperties": False,
    }

    def channel(name: str, then: dict[str, Any]) -> dict[str, Any]:
        others = sorted({p for parts in PARTS.values() for p in parts} - set(PARTS[name]))
        return {
            "if": {"properties": {"channel": {"const": name}}, "required": ["channel"]},
            "then": {**then, "not": {"anyOf": [{"required": [p]} for p in others]}},
        }

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Template",
        "description": "A message's text per channel, rendered with Jinja2's sandbox from the action's "
        "personalization values and the customer's profile (docs/templates.md).",
        "type": "object",
        "properties": {
            "kind": {"const": "template"},
            "id": {
                "type": "string",
                "pattern": r"^[a-z][a-z0-9_-]*$",
                "maxLength": MAX_ID_CHARS,
                "description": "What a send step's `template:` names.",
            },
            "version": {"type": "integer", "minimum": 1},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "channel": {"enum": list(PARTS)},
            "variables": {
                "type": "object",
                "maxProperties": MAX_VARIABLES,
                "propertyNames": {"pattern": VARIABLE_RE.pattern},
                "additionalProperties": variable,
            },
            "subject": _text("email", "subject", "An email's subject (one line)"),
            "html": _text("email", "html", "An email's HTML part (values escaped)"),
            "text": _text("email", "text", "An email's text part"),
            "body": {
                "type": "string",
                "minLength": 1,
                "description": "An SMS's body or a push's body (Jinja2, sandboxed).",
            },
            "title": _text("push", "title", "A push's title (one line)"),
            "data": {
                "type": "object",
                "maxProperties": MAX_DATA_KEYS,
                "propertyNames": {"pattern": DATA_KEY_RE.pattern},
                "additionalProperties": _text("push", "data", "A push data value"),
            },
        },
        "required": ["kind", "id", "version", "channel"],
        "allOf": [
            channel(
                "email", {"required": ["subject"], "anyOf": [{"required": ["text"]}, {"required": ["html"]}]}
            ),
            channel("sms", {"required": ["body"]}),
            channel("push", {"required": ["body"]}),
        ],
        "additionalProperties": False,
    }
