"""The JSON Schema of segment files (``schemas/segment.schema.json``), for editors.

``orchestrator validate`` checks more than this schema (the CEL condition, what it may read, cycles); a
unit test keeps the schema's fields equal to the loader's.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.segment.model import SEGMENT_STATUSES

__all__ = ["segment_schema"]


def segment_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Segment",
        "description": "A live audience: the customers for whom a CEL condition over the profile and the "
        "event history holds (docs/segments.md).",
        "type": "object",
        "properties": {
            "kind": {"const": "segment"},
            "id": {
                "type": "string",
                "pattern": r"^[a-z][a-z0-9_]{0,63}$",
                "description": "Conditions read membership as profile.segments.<id>.",
            },
            "version": {"type": "integer", "minimum": 1},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "status": {"enum": list(SEGMENT_STATUSES), "default": "active"},
            "condition": {
                "type": "string",
                "description": "CEL over profile and history (seen()/count() with a window); not event, "
                "journey or now alone.",
            },
        },
        "required": ["kind", "id", "version", "condition"],
        "additionalProperties": False,
    }
