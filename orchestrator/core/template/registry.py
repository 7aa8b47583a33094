"""The deployed templates: several versions each, each effective from a logical time (the journeys',
segments' and campaigns' rules: the deployment effective at a time is the latest one at or before it; the
same version may be deployed again only with the same content).

A deployment is refused when its version is deployed already with other content, or past
:data:`MAX_TEMPLATES` templates (each stays compiled in every worker and connector).
:meth:`TemplateRegistry.current` gives a template's version in force at a time — for an action, at its
``created_at`` (:meth:`TemplateRegistry.for_action`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from orchestrator.contracts.actions import ChannelAction
from orchestrator.core.journey.reader import did_you_mean
from orchestrator.core.template.model import TemplateDefinition
from orchestrator.core.timeline import Deployed, VersionTimeline
from orchestrator.exceptions import TemplateRenderError, TemplateValidationError

__all__ = ["MAX_TEMPLATES", "TemplateDeployment", "TemplateRegistry"]

MAX_TEMPLATES = 500
"""Templates a deployment may hold (every version of each stays in the timeline)."""


TemplateDeployment = Deployed[TemplateDefinition]


class TemplateRegistry:
    """Deployed templates; deploy live with :meth:`deploy`, read with :meth:`current`."""

    def __init__(self, deployments: Iterable[tuple[TemplateDefinition, int]] = ()) -> None:
        self._timeline: VersionTimeline[TemplateDefinition] = VersionTimeline()
        self.generation = 0
        for definition, effective_from_ms in deployments:
            self.deploy(definition, effective_from_ms)

    # -- writing --------------------------------------------------------------------------------
    def deploy(self, definition: TemplateDefinition, effective_from_ms: int) -> TemplateDeployment:
        """Make ``definition`` the template's deployment from ``effective_from_ms`` on; raises
        TemplateValidationError (file:line: field: ...) when it cannot be."""
        where = f"{definition.source_name}:1"
        if self._timeline.changes_content(definition):
            raise TemplateValidationError(
                [
                    f"{where}: version: template {definition.id} version {definition.version} is already "
                    "deployed with different content; give the changed template a new version number"
                ]
            )
        if definition.id not in self._timeline and len(self._timeline) >= MAX_TEMPLATES:
            raise TemplateValidationError(
                [f"{where}: id: {MAX_TEMPLATES} templates are deployed already, the most a worker keeps"]
            )
        dep = self._timeline.add(definition, effective_from_ms)
        self.generation += 1
        return dep

    # -- reading --------------------------------------------------------------------------------
    def current(self, template_id: str, at_ms: int) -> TemplateDefinition | None:
        """The template's version in force at ``at_ms`` (None before its first deployment)."""
        return self._timeline.current(template_id, at_ms)

    def version(self, template_id: str, version: int) -> TemplateDefinition | None:
        """That version of the template, when it was deployed (whatever is in force)."""
        return self._timeline.version(template_id, version)

    def latest(self, template_id: str) -> TemplateDefinition | None:
        """The version deployed last with the latest effective time."""
        return self._timeline.latest(template_id)

    def for_action(self, action: ChannelAction) -> TemplateDefinition:
        """The template ``action`` is rendered with: the version it names (``template_version``), else the
        version in force at its ``created_at``. Raises TemplateRenderError (``no_template``) when there
        is none."""
        tid = action.template_id
        if action.template_version is not None:
            found = self.version(tid, action.template_version)
        else:
            found = self.current(tid, _epoch_ms(action.created_at))
        if found is not None:
            return found
        if tid not in self._timeline:
            detail = f"no template {tid!r} is deployed{did_you_mean(tid, self._timeline.ids())}"
        elif action.template_version is not None:
            versions = ", ".join(str(v) for v in self.versions(tid))
            detail = f"version {action.template_version} is not deployed (deployed: {versions})"
        else:
            detail = f"no version was in force at {action.created_at.isoformat()}"
        raise TemplateRenderError(
            detail, template_id=tid, version=action.template_version, reason="no_template"
        )

    def versions(self, template_id: str) -> list[int]:
        """The versions deployed, lowest first."""
        return sorted({d.definition.version for d in self._timeline.deployments(template_id)})

    def template_ids(self) -> list[str]:
        return self._timeline.ids()

    def deployments(self, template_id: str) -> list[TemplateDeployment]:
        return self._timeline.deployments(template_id)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._timeline

    def __len__(self) -> int:
        return len(self._timeline)


def _epoch_ms(at: datetime) -> int:
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
