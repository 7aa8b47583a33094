"""The deployed policy: one at a time, each effective from a logical time, swappable live.

Like journeys (:class:`~orchestrator.core.journey.registry.JourneyRegistry`): a send is judged by the
policy effective at the send's logical time (the latest deployment whose ``effective_from_ms`` is at or
before it; of two with the same time, the one deployed later). A held send is judged again, at its
release, by the policy effective then. Deploying the same ``id``/``version`` again is only allowed with
the same content; a changed policy needs a new version number. :meth:`PolicyRegistry.withdraw` deploys
"no policy" from a time on.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from orchestrator.core.policy.model import Policy
from orchestrator.exceptions import PolicyValidationError

__all__ = ["EARLIEST_MS", "PolicyDeployment", "PolicyRegistry"]

EARLIEST_MS = -(2**53)
"""A policy deployed from here is in effect for every event (what the simulator uses)."""


@dataclass(frozen=True, slots=True)
class PolicyDeployment:
    policy: Policy | None
    """None: no policy from ``effective_from_ms`` on (withdrawn)."""
    effective_from_ms: int
    seq: int


class PolicyRegistry:
    """The policy timeline; deploy live with :meth:`deploy`, read with :meth:`current`."""

    def __init__(self, policy: Policy | None = None, effective_from_ms: int = EARLIEST_MS) -> None:
        self._timeline: list[PolicyDeployment] = []
        self._starts: list[int] = []
        self._versions: dict[str, Policy] = {}
        self._seq = 0
        self.generation = 0
        """Grows with every deploy."""
        if policy is not None:
            self.deploy(policy, effective_from_ms)

    def deploy(self, policy: Policy, effective_from_ms: int) -> PolicyDeployment:
        """Make ``policy`` the one in effect from ``effective_from_ms`` on.

        Raises PolicyValidationError when the same id and version were deployed with other content.
        """
        known = self._versions.get(policy.key)
        if known is not None and known.content_hash != policy.content_hash:
            raise PolicyValidationError(
                [
                    f"{policy.source_name}:1: version: policy {policy.id} version {policy.version} is "
                    "already deployed with different content; give the changed policy a new version number"
                ]
            )
        self._versions[policy.key] = policy
        return self._insert(policy, effective_from_ms)

    def withdraw(self, effective_from_ms: int) -> PolicyDeployment:
        """No policy from ``effective_from_ms`` on: sends go out as the journeys make them."""
        return self._insert(None, effective_from_ms)

    def _insert(self, policy: Policy | None, effective_from_ms: int) -> PolicyDeployment:
        self._seq += 1
        dep = PolicyDeployment(policy=policy, effective_from_ms=effective_from_ms, seq=self._seq)
        at = bisect.bisect_right(self._starts, effective_from_ms)
        self._timeline.insert(at, dep)
        self._starts.insert(at, effective_from_ms)
        self.generation += 1
        return dep

    def current(self, at_ms: int) -> Policy | None:
        """The policy in effect at ``at_ms`` (None before the first deployment or after a withdrawal)."""
        i = bisect.bisect_right(self._starts, at_ms)
        return self._timeline[i - 1].policy if i else None

    def deployments(self) -> list[PolicyDeployment]:
        return list(self._timeline)

    def __len__(self) -> int:
        return len(self._timeline)
