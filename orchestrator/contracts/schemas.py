"""JSON Schema files of the contracts, checked in under schemas/.

``orchestrator schemas`` rewrites them; ``orchestrator schemas --check`` (and a unit test) fails when
a checked-in file differs from the models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestrator.contracts.actions import ChannelAction
from orchestrator.contracts.decision import Decision
from orchestrator.contracts.events import CustomerEvent
from orchestrator.contracts.records import DeadLetter, JourneyDeployment, ResolvedEvent

__all__ = ["SCHEMA_SOURCES", "render_schemas", "stale_schemas", "write_schemas"]

_ID_BASE = "https://journey-orchestrator.dev/schemas/"


def _model(model: type[BaseModel], title: str) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        schema = model.model_json_schema(mode="validation")
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}

    return build


SCHEMA_SOURCES: dict[str, Callable[[], dict[str, Any]]] = {
    "customer-event.schema.json": _model(CustomerEvent, "Customer event"),
    "channel-action.schema.json": _model(ChannelAction, "Channel action"),
    "resolved-event.schema.json": _model(ResolvedEvent, "Resolved event"),
    "dead-letter.schema.json": _model(DeadLetter, "Dead letter"),
    "journey-deployment.schema.json": _model(JourneyDeployment, "Journey deployment"),
    "decision.schema.json": _model(Decision, "Policy decision"),
}
"""File name -> a function building its schema. Other packages add theirs (journey, decision)."""


def _policy_schema() -> dict[str, Any]:
    from orchestrator.core.policy.schema import policy_schema  # the core imports the contracts

    return policy_schema()


SCHEMA_SOURCES["policy.schema.json"] = _policy_schema


def _segment_schema() -> dict[str, Any]:
    from orchestrator.core.segment.schema import segment_schema

    return segment_schema()


SCHEMA_SOURCES["segment.schema.json"] = _segment_schema


def _campaign_schema() -> dict[str, Any]:
    from orchestrator.core.campaign.schema import campaign_schema

    return campaign_schema()


SCHEMA_SOURCES["campaign.schema.json"] = _campaign_schema


def _template_schema() -> dict[str, Any]:
    from orchestrator.core.template.schema import template_schema

    return template_schema()


SCHEMA_SOURCES["template.schema.json"] = _template_schema


def render_schemas() -> dict[str, str]:
    out = {}
    for name, build in SCHEMA_SOURCES.items():
        schema = build()
        schema = {"$id": _ID_BASE + name, **schema}
        out[name] = json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(directory: Path) -> list[str]:
    """Names of schema files in ``directory`` that are missing or differ from the models."""
    stale = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale
