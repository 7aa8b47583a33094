"""Publishing journey deployments to the compacted journeys topic.

Files are validated first, all of them, with every problem reported; nothing is published when any
file is invalid, so an invalid journey never reaches a worker.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from orchestrator.config import Settings
from orchestrator.contracts import JourneyDeployment
from orchestrator.core.journey import load_journey_text
from orchestrator.core.policy import is_policy_text, load_policy_text
from orchestrator.exceptions import JourneyValidationError, KafkaSetupError, PolicyValidationError
from orchestrator.kafka.security import librdkafka_options

__all__ = ["prepare_deployments", "publish_deployments"]


def prepare_deployments(files: Sequence[Path], effective_from: datetime) -> list[JourneyDeployment]:
    """Validate every file and build its deployment record; raise with all problems of all files."""
    problems: list[str] = []
    out: list[JourneyDeployment] = []
    kind: Literal["journey", "policy"]
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            problems.append(f"{path}:1: (file): cannot read: {exc.strerror}")
            continue
        try:
            if is_policy_text(text):
                policy = load_policy_text(text, str(path))
                kind, ident, version, digest = "policy", policy.id, policy.version, policy.content_hash
            else:
                definition = load_journey_text(text, str(path))
                kind, ident = "journey", definition.id
                version, digest = definition.version, definition.content_hash
        except (JourneyValidationError, PolicyValidationError) as exc:
            problems.extend(exc.problems)
            continue
        out.append(
            JourneyDeployment(
                kind=kind,
                journey_id=ident,
                version=version,
                effective_from=effective_from,
                source_name=str(path),
                text=text,
                content_hash=digest,
                deployed_by=_who(),
            )
        )
    if problems:
        raise JourneyValidationError(problems)
    return out


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def publish_deployments(settings: Settings, deployments: Sequence[JourneyDeployment]) -> None:
    """Publish the records (in order) to the journeys topic and wait for the broker to take them."""
    from confluent_kafka import Producer

    errors: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer({**librdkafka_options(settings), "acks": "all", "enable.idempotence": True})
    for dep in deployments:
        producer.produce(
            settings.topics.journeys, key=dep.key.encode(), value=dep.to_json(), on_delivery=delivered
        )
    if producer.flush(30) or errors:
        raise KafkaSetupError(
            f"publishing to {settings.topics.journeys} failed: {'; '.join(errors) or 'timeout'}"
        )
