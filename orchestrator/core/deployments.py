"""Accepting deployment records: the one rule that `orchestrator deploy` and every worker apply.

A record of the journeys topic is accepted when it is within :data:`MAX_RECORD_BYTES`, is a valid
:class:`~orchestrator.contracts.JourneyDeployment`, its YAML loads as a journey, policy, segment, campaign,
template or model whose id and version match the record's, and the registries take it (a version already
deployed with other content is refused; a segment that would make segments read each other in a cycle is
refused).
:meth:`DeploymentBook.apply` never raises: a refused record is kept with its reason (for ``/journeys/``,
the logs and ``orchestrator deploy``) and the last good version stays in force.

``orchestrator deploy`` reads the topic into a book of its own, then offers it the new records with the
same method: what a worker would refuse is refused before it is published.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from orchestrator.contracts import JourneyDeployment
from orchestrator.core.campaign import CampaignRegistry, load_campaign_text
from orchestrator.core.journey import JourneyRegistry, load_journey_text
from orchestrator.core.learning.loader import load_model_text
from orchestrator.core.learning.registry import ModelRegistry
from orchestrator.core.policy import PolicyRegistry, load_policy_text
from orchestrator.core.segment import SegmentRegistry, load_segment_text
from orchestrator.core.template import TemplateRegistry, load_template_text
from orchestrator.exceptions import (
    CampaignValidationError,
    JourneyValidationError,
    ModelValidationError,
    PolicyValidationError,
    SegmentValidationError,
    TemplateValidationError,
)

__all__ = ["MAX_RECORD_BYTES", "DeploymentBook", "Refusal"]

MAX_RECORD_BYTES = 900_000
"""Largest deployment record: under Kafka's default 1 MB message limit with key and headers."""
_REFUSED = (
    JourneyValidationError,
    PolicyValidationError,
    SegmentValidationError,
    CampaignValidationError,
    TemplateValidationError,
    ModelValidationError,
)
"""What a file or a registry raises for a record it refuses (its problems are the refusal's)."""
KEPT_REFUSALS = 50
"""Refusals kept for ``/journeys/`` (the oldest go first)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record that was not applied: where it is, its key, and every problem (file:line: field: ...)."""

    where: str
    key: str
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, str]:
        return {"where": self.where, "key": self.key, "error": "; ".join(self.problems)}


@dataclass
class DeploymentBook:
    """The journey, policy, segment, campaign, template and model registries, plus what was refused."""

    registry: JourneyRegistry
    policies: PolicyRegistry = field(default_factory=PolicyRegistry)
    segments: SegmentRegistry | None = None
    """The segment timeline (made with the journeys' history window when not given)."""
    campaigns: CampaignRegistry | None = None
    """The campaign timeline (made with the journeys' history window when not given)."""
    templates: TemplateRegistry = field(default_factory=TemplateRegistry)
    """The template timeline (what connectors render actions with)."""
    models: ModelRegistry = field(default_factory=ModelRegistry)
    """The model timeline (the run stage's priors: docs/optimization.md)."""
    refusals: list[Refusal] = field(default_factory=list)
    applied: int = 0
    last_applied: str = ""
    """A short description of the last record applied (for the log)."""

    def __post_init__(self) -> None:
        if self.segments is None:
            self.segments = SegmentRegistry(history_window_ms=self.registry.history_window_ms)
        if self.campaigns is None:
            self.campaigns = CampaignRegistry(history_window_ms=self.registry.history_window_ms)

    @property
    def segment_registry(self) -> SegmentRegistry:
        assert self.segments is not None
        return self.segments

    @property
    def campaign_registry(self) -> CampaignRegistry:
        assert self.campaigns is not None
        return self.campaigns

    @property
    def problems(self) -> list[dict[str, str]]:
        """The kept refusals as ``/journeys/`` shows them."""
        return [r.to_dict() for r in self.refusals]

    def apply(self, key: bytes | None, value: bytes | None, *, where: str) -> Refusal | None:
        """Apply one record; None when applied, else the :class:`Refusal` (also kept). Never raises."""
        if value is None:
            return None  # a tombstone: deployments are never removed from the timeline
        shown_key = (key or b"").decode(errors="replace")[:200]
        try:
            problems = self._apply(value)
        except Exception as exc:  # never let a record stop a worker: refuse it with what went wrong
            problems = [f"{where}: (record): could not be read: {type(exc).__name__}: {exc}"[:2000]]
        if not problems:
            self.applied += 1
            return None
        refusal = Refusal(where=where, key=shown_key, problems=tuple(problems))
        self.refusals.append(refusal)
        del self.refusals[:-KEPT_REFUSALS]
        return refusal

    def _apply(self, value: bytes) -> list[str]:
        if len(value) > MAX_RECORD_BYTES:
            return [f"(record): {len(value)} bytes, over the limit of {MAX_RECORD_BYTES} bytes"]
        try:
            dep = JourneyDeployment.model_validate_json(value)
        except ValidationError as exc:
            return [
                f"(record): {'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()[:20]
            ]
        try:
            definition, deploy = self._loaded(dep)
        except _REFUSED as exc:
            return list(exc.problems)
        named = "" if dep.kind == "journey" else f"{dep.kind} "
        if definition.id != dep.journey_id or definition.version != dep.version:
            return [
                f"{dep.source_name}:1: id: record says {named}{dep.journey_id} v{dep.version}, "
                f"the file says {definition.id} v{definition.version}"
            ]
        try:
            deploy(definition, dep.effective_from_ms)
        except _REFUSED as exc:
            return list(exc.problems)
        self.last_applied = f"{dep.kind} {dep.journey_id} v{dep.version} from {dep.effective_from}"
        return []

    def _loaded(self, dep: JourneyDeployment) -> tuple[Any, Callable[[Any, int], Any]]:
        """The record's file loaded as its kind, and the registry's deploy that takes it (one rule for
        every kind: the file's id and version must be the record's)."""
        window = self.registry.history_window_ms
        text, name = dep.text, dep.source_name
        if dep.kind == "policy":
            return load_policy_text(text, name), self.policies.deploy
        if dep.kind == "segment":
            return load_segment_text(text, name, history_window_ms=window), self.segment_registry.deploy
        if dep.kind == "campaign":
            return load_campaign_text(text, name, history_window_ms=window), self.campaign_registry.deploy
        if dep.kind == "model":
            return load_model_text(text, name), self.models.deploy
        if dep.kind == "template":
            return load_template_text(text, name), self.templates.deploy
        return load_journey_text(text, name, history_window_ms=window), self.registry.deploy

    def summary(self) -> dict[str, Any]:
        """What ``/journeys/`` shows: deployments per journey, policies, segments, campaigns, templates,
        refusals."""
        journeys = {}
        for jid in self.registry.journey_ids():
            journeys[jid] = [
                {
                    "version": d.definition.version,
                    "status": d.definition.status,
                    "effective_from_ms": d.effective_from_ms,
                }
                for d in self.registry.deployments(jid)
            ]
        policies = [
            {
                "policy": f"{d.policy.id}@{d.policy.version}" if d.policy else None,
                "effective_from_ms": d.effective_from_ms,
            }
            for d in self.policies.deployments()
        ]
        segments = {
            sid: [
                {
                    "version": d.definition.version,
                    "status": d.definition.status,
                    "effective_from_ms": d.effective_from_ms,
                }
                for d in self.segment_registry.deployments(sid)
            ]
            for sid in self.segment_registry.segment_ids()
        }
        campaigns = {
            cid: [
                {
                    "version": d.definition.version,
                    "status": d.definition.status,
                    "effective_from_ms": d.effective_from_ms,
                }
                for d in self.campaign_registry.deployments(cid)
            ]
            for cid in self.campaign_registry.campaign_ids()
        }
        templates = {
            tid: [
                {
                    "version": d.definition.version,
                    "channel": d.definition.channel,
                    "effective_from_ms": d.effective_from_ms,
                }
                for d in self.templates.deployments(tid)
            ]
            for tid in self.templates.template_ids()
        }
        models = [
            {"model": d.model.key, "effective_from_ms": d.effective_from_ms}
            for d in self.models.deployments()
        ]
        return {
            "journeys": journeys,
            "policies": policies,
            "segments": segments,
            "campaigns": campaigns,
            "templates": templates,
            "models": models,
            "refused": self.problems,
            "applied": self.applied,
        }
