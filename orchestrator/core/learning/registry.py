"""The deployed model: one at a time, each effective from a logical time, swappable live.

As the policy (:class:`~orchestrator.core.policy.registry.PolicyRegistry`): a choice at logical time ``t``
reads the model whose ``effective_from_ms`` is the latest at or before ``t`` (of two at the same time, the
one deployed later), so a refit deployed with ``--at`` ahead of now changes the choices from then on,
live and in simulate alike. Deploying the same ``id``/``version`` again is only allowed with the same
content.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from orchestrator.core.learning.model import EngagementModel
from orchestrator.exceptions import ModelValidationError

__all__ = ["ModelDeployment", "ModelRegistry"]


@dataclass(frozen=True, slots=True)
class ModelDeployment:
    model: EngagementModel
    effective_from_ms: int
    seq: int


class ModelRegistry:
    """The model timeline; deploy live with :meth:`deploy`, read with :meth:`current`."""

    def __init__(self, model: EngagementModel | None = None, effective_from_ms: int = -(2**53)) -> None:
        self._timeline: list[ModelDeployment] = []
        self._starts: list[int] = []
        self._versions: dict[str, EngagementModel] = {}
        self._seq = 0
        if model is not None:
            self.deploy(model, effective_from_ms)

    def deploy(self, model: EngagementModel, effective_from_ms: int) -> ModelDeployment:
        """Make ``model`` the one in effect from ``effective_from_ms`` on (ModelValidationError when the
        same id and version were deployed with other content)."""
        known = self._versions.get(model.key)
        if known is not None and known.content_hash != model.content_hash:
            raise ModelValidationError(
                [
                    f"{model.source_name}:1: version: model {model.id} version {model.version} is already "
                    "deployed with different content; give the refit a new version number"
                ]
            )
        self._versions[model.key] = model
        self._seq += 1
        dep = ModelDeployment(model=model, effective_from_ms=effective_from_ms, seq=self._seq)
        at = bisect.bisect_right(self._starts, effective_from_ms)
        self._timeline.insert(at, dep)
        self._starts.insert(at, effective_from_ms)
        return dep

    def current(self, at_ms: int) -> EngagementModel | None:
        """The model in effect at ``at_ms`` (None before the first deployment)."""
        i = bisect.bisect_right(self._starts, at_ms)
        return self._timeline[i - 1].model if i else None

    def latest_version(self, model_id: str) -> int:
        return max((m.version for m in self._versions.values() if m.id == model_id), default=0)

    def deployments(self) -> list[ModelDeployment]:
        return list(self._timeline)

    def __len__(self) -> int:
        return len(self._timeline)
