"""A deployment timeline for ``orchestrator simulate --deployments FILE``: which journey and policy
files were deployed when, so versioned scenarios replay offline exactly as live.

The file (YAML) lists deployments in the order they were made; paths are relative to the file::

    - at: 2025-03-01T00:00:00Z          # as `orchestrator deploy --at 2025-03-01T00:00:00Z`
      files: [welcome.yaml, policy.yaml]
    - at: 2025-03-05T12:00:00Z
      files: [welcome-v2.yaml]

Each entry's files become the same deployment records ``orchestrator deploy`` publishes, applied by the
same rule the workers apply (:class:`~orchestrator.core.deployments.DeploymentBook`): a journey version
is in effect for events from its ``at`` on, until a later version's ``at``; a record a worker would
refuse (the same version with other content) is refused here too, and the earlier version stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from orchestrator.core.campaign import CampaignRegistry
from orchestrator.core.deployments import DeploymentBook
from orchestrator.core.journey.loader import DEFAULT_HISTORY_WINDOW_MS
from orchestrator.core.journey.registry import JourneyRegistry
from orchestrator.core.policy import PolicyRegistry
from orchestrator.core.segment import SegmentRegistry
from orchestrator.exceptions import SimulationError

__all__ = ["Timeline", "read_timeline"]


@dataclass
class Timeline:
    """The registries the deployments made, and what was refused (as a worker would)."""

    book: DeploymentBook
    refused: list[str] = field(default_factory=list)

    @property
    def registry(self) -> JourneyRegistry:
        return self.book.registry

    @property
    def policies(self) -> PolicyRegistry:
        return self.book.policies

    @property
    def segments(self) -> SegmentRegistry:
        return self.book.segment_registry

    @property
    def campaigns(self) -> CampaignRegistry:
        return self.book.campaign_registry


def _at(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise SimulationError(f"{where}: at: an ISO 8601 time is needed, like 2025-03-01T00:00:00Z")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SimulationError(
            f"{where}: at: {value!r} is not an ISO 8601 time (like 2025-03-01T00:00:00Z)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def read_timeline(
    path: Path | str,
    *,
    history_window_ms: int = DEFAULT_HISTORY_WINDOW_MS,
    before: list[Path] | None = None,
) -> Timeline:
    """The timeline of the deployments file at ``path``; ``before``: files deployed first, in effect
    from the beginning (``--journeys`` and ``--policy`` given with ``--deployments``)."""
    from orchestrator.kafka.deploy import prepare_deployments

    source = Path(path)
    try:
        entries = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SimulationError(f"{source}: cannot read the deployments: {exc}") from None
    except yaml.YAMLError as exc:
        raise SimulationError(f"{source}: not YAML: {exc}") from None
    if not isinstance(entries, list) or not entries:
        raise SimulationError(f"{source}: expected a list of {{at, files}} (see docs/simulate.md)")
    timeline = Timeline(DeploymentBook(JourneyRegistry(history_window_ms=history_window_ms)))
    steps: list[tuple[datetime, list[Path], str]] = []
    if before:
        steps.append((datetime(1970, 1, 1, tzinfo=UTC), before, "--journeys"))
    for i, entry in enumerate(entries):
        where = f"{source}: entry {i + 1}"
        if not isinstance(entry, dict) or set(entry) - {"at", "files"} or "files" not in entry:
            raise SimulationError(f"{where}: expected {{at: ISO time, files: [journey or policy files]}}")
        files = entry["files"] if isinstance(entry["files"], list) else [entry["files"]]
        if not files or not all(isinstance(f, str) for f in files):
            raise SimulationError(f"{where}: files: a list of file names is needed")
        paths = [source.parent / f for f in files]
        for p in paths:
            if not p.is_file():
                raise SimulationError(f"{where}: files: {p}: no such file")
        steps.append((_at(entry.get("at"), where), paths, where))
    for at, paths, where in steps:
        for record in prepare_deployments(paths, at):
            refusal = timeline.book.apply(record.key.encode(), record.to_json(), where=where)
            if refusal is not None:
                timeline.refused.extend(refusal.problems)
    return timeline
