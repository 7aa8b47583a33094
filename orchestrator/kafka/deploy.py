"""Publishing journey deployments to the compacted journeys topic.

Files are validated first, all of them, with every problem reported; nothing is published when any
file is invalid, so an invalid journey never reaches a worker. Then the records are offered to a
:class:`~orchestrator.core.deployments.DeploymentBook` that holds what the topic already has — the
same acceptance the workers apply — so a record a worker would refuse (the same version with other
content, a record over the size limit) is refused here, before it is published. Once templates are
deployed, the sends of the journeys and campaigns deployed are checked against them (and a template
deployed against the sends in force that name it): a send naming no template, of another channel, or
never giving a variable the template requires is refused too, since every one of its messages would
fail to render.
"""

from __future__ import annotations

import difflib
import getpass
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from orchestrator.config import Settings
from orchestrator.contracts import JourneyDeployment
from orchestrator.core.campaign import CampaignDefinition, is_campaign_text, load_campaign_text
from orchestrator.core.deployments import DeploymentBook
from orchestrator.core.journey import JourneyDefinition, JourneyRegistry, load_journey_text
from orchestrator.core.journey.yamlsrc import Path as FieldPath
from orchestrator.core.journey.yamlsrc import SourceDoc, compose_text, format_path, read_source
from orchestrator.core.learning.loader import is_model_text, load_model_text
from orchestrator.core.policy import is_policy_text, load_policy_text
from orchestrator.core.segment import is_segment_text, load_segment_text
from orchestrator.core.template import is_template_text, load_template_text
from orchestrator.core.template.checks import Send, mismatches, sends_of, unknown_template
from orchestrator.exceptions import (
    CampaignValidationError,
    JourneyValidationError,
    KafkaSetupError,
    ModelValidationError,
    PolicyValidationError,
    SegmentValidationError,
    TemplateValidationError,
)
from orchestrator.kafka.client_log import client_log
from orchestrator.kafka.security import librdkafka_options

__all__ = [
    "check_deployments",
    "prepare_deployments",
    "publish_deployments",
    "read_deployment_records",
    "read_whole_topic",
]


def prepare_deployments(files: Sequence[Path], effective_from: datetime) -> list[JourneyDeployment]:
    """Validate every file and build its deployment record; raise with all problems of all files."""
    problems: list[str] = []
    out: list[JourneyDeployment] = []
    kind: Literal["journey", "policy", "segment", "campaign", "template", "model"]
    for path in files:
        text, problem = read_source(path)
        if text is None:
            problems.append(problem or f"{path}:1: (file): cannot read the file")
            continue
        try:
            if is_policy_text(text):
                policy = load_policy_text(text, str(path))
                kind, ident, version, digest = "policy", policy.id, policy.version, policy.content_hash
            elif is_segment_text(text):
                segment = load_segment_text(text, str(path))
                kind, ident, version, digest = "segment", segment.id, segment.version, segment.content_hash
            elif is_campaign_text(text):
                campaign = load_campaign_text(text, str(path))
                kind, ident = "campaign", campaign.id
                version, digest = campaign.version, campaign.content_hash
            elif is_model_text(text):
                model = load_model_text(text, str(path))
                kind, ident, version, digest = "model", model.id, model.version, model.content_hash
            elif is_template_text(text):
                template = load_template_text(text, str(path))
                kind, ident = "template", template.id
                version, digest = template.version, template.content_hash
            else:
                definition = load_journey_text(text, str(path))
                kind, ident = "journey", definition.id
                version, digest = definition.version, definition.content_hash
        except (
            JourneyValidationError,
            PolicyValidationError,
            SegmentValidationError,
            CampaignValidationError,
            TemplateValidationError,
            ModelValidationError,
        ) as exc:
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


def read_deployment_records(
    settings: Settings, timeout: float = 30.0
) -> list[tuple[bytes | None, bytes | None, str]]:
    """Every record of the journeys topic as (key, value, where), in the order a worker applies them."""
    return [
        (key, value, f"journeys[{partition}]@{offset}")
        for partition, offset, key, value in read_whole_topic(settings, settings.topics.journeys, timeout)
    ]


def read_whole_topic(
    settings: Settings, topic: str, timeout: float = 30.0
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of ``topic`` up to its end as it is now: (partition, offset, key, value), partition by
    partition in offset order. Reads without a consumer group (assigned partitions, nothing committed)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**librdkafka_options(settings), "group.id": "orchestrator-read", "enable.auto.commit": False}
    )
    try:
        md = consumer.list_topics(topic, timeout=timeout)
        if topic not in md.topics or md.topics[topic].error is not None:
            raise KafkaSetupError(f"topic {topic!r} not found: run `orchestrator topics create` first")
        ends: dict[int, int] = {}
        starts: list[Any] = []
        for partition in sorted(md.topics[topic].partitions):
            low, high = _watermarks(consumer, TopicPartition(topic, partition), timeout)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        found: dict[int, list[tuple[int, int, bytes | None, bytes | None]]] = {p: [] for p in ends}
        if starts:
            consumer.assign(starts)  # (every partition at once: one fetch round for all)
        position = {tp.partition: tp.offset for tp in starts}
        deadline = time.monotonic() + timeout
        while any(position[p] < ends[p] for p in ends):
            # (consume() waits for all num_messages or the timeout: short polls, one deadline)
            batch = consumer.consume(num_messages=500, timeout=0.1)
            if not batch and time.monotonic() > deadline:
                behind = [f"[{p}] at {position[p]} of {ends[p]}" for p in ends if position[p] < ends[p]]
                raise KafkaSetupError(f"reading {topic} stopped: {', '.join(behind)}")
            for msg in batch:
                if msg.error() is not None:
                    continue
                partition, offset = msg.partition() or 0, msg.offset() or 0
                if partition not in ends:
                    continue
                position[partition] = max(position[partition], offset + 1)
                if offset < ends[partition]:
                    found[partition].append((partition, offset, msg.key(), msg.value()))
        out = [record for p in sorted(found) for record in found[p]]
        return out
    finally:
        consumer.close()


def _watermarks(consumer: Any, tp: Any, timeout: float) -> tuple[int, int]:
    """Low and high offsets of ``tp``, retried while the broker is still electing a leader (a topic
    just created answers NOT_LEADER_FOR_PARTITION for a moment)."""
    from confluent_kafka import KafkaError, KafkaException

    transient = {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and (error.retriable() or error.code() in transient)
            if not retriable or time.monotonic() > deadline:
                raise KafkaSetupError(
                    f"reading the offsets of {tp.topic}[{tp.partition}] failed: {exc}"
                ) from None
            time.sleep(0.2)


def check_deployments(
    existing: Sequence[tuple[bytes | None, bytes | None, str]],
    deployments: Sequence[JourneyDeployment],
    history_window_ms: int,
) -> list[str]:
    """Every problem a worker would find with ``deployments`` after the ``existing`` records."""
    book = DeploymentBook(JourneyRegistry(history_window_ms=history_window_ms))
    deployed: dict[tuple[str, str, int], str] = {}
    """(kind, id, version) -> the text on the topic: what a refused change is compared with."""
    for key, value, where in existing:
        if book.apply(key, value, where=where) is None and value is not None:
            try:
                record = JourneyDeployment.model_validate_json(value)
            except ValueError:
                continue
            deployed[(record.kind, record.journey_id, record.version)] = record.text
    problems: list[str] = []
    applied: list[JourneyDeployment] = []
    for dep in deployments:
        refusal = book.apply(dep.key.encode(), dep.to_json(), where=dep.source_name)
        if refusal is not None:
            problems.extend(
                p if p.startswith(dep.source_name) else f"{dep.source_name}:1: {p}" for p in refusal.problems
            )
            before = deployed.get((dep.kind, dep.journey_id, dep.version))
            if before is not None and before != dep.text:
                problems.append(_diff(before, dep))
        else:
            applied.append(dep)
    return problems + template_problems(book, applied)


def template_problems(book: DeploymentBook, applied: Sequence[JourneyDeployment]) -> list[str]:
    """Once the book holds templates: each send of the journeys and campaigns ``applied`` against the
    latest version of the template it names, and each template ``applied`` against the sends in force at
    its effective time that name it (those of the journeys and campaigns not among ``applied``)."""
    templates = book.templates
    if not len(templates):
        return []
    problems: list[str] = []
    batch: set[tuple[str, str]] = {(d.kind, d.journey_id) for d in applied}
    for dep in applied:
        doc = compose_text(dep.text, dep.source_name)

        def where(path: FieldPath, doc: SourceDoc = doc) -> str:
            return f"{doc.source_name}:{doc.key_line(path)}: {format_path(path)}"

        if dep.kind in ("journey", "campaign"):
            definition = _definition(book, dep)
            for send in sends_of(definition) if definition is not None else []:
                template = templates.latest(send.step.template)
                if template is None:
                    problems.append(
                        f"{where((*send.path, 'template'))}: "
                        + unknown_template(
                            send.step.template, templates.template_ids(), "the templates deployed"
                        )
                    )
                    continue
                problems += [
                    f"{where((*send.path, m.field))}: {m.message}" for m in mismatches(send, template)
                ]
        elif dep.kind == "template":
            template = templates.version(dep.journey_id, dep.version)
            if template is None:
                continue
            for send in _sends_in_force(book, dep.effective_from_ms, exclude=batch):
                if send.step.template != template.id:
                    continue
                for m in mismatches(send, template):
                    path: FieldPath = ("variables", m.variable) if m.variable else ("channel",)
                    problems.append(f"{where(path)}: {m.message} ({send.source_name})")
    return problems


def _definition(
    book: DeploymentBook, dep: JourneyDeployment
) -> JourneyDefinition | CampaignDefinition | None:
    found: JourneyDefinition | CampaignDefinition | None
    if dep.kind == "campaign":
        found = book.campaign_registry.current(dep.journey_id, dep.effective_from_ms)
    else:
        found = book.registry.version(dep.journey_id, dep.version)
    return found if found is not None and found.version == dep.version else None


def _sends_in_force(book: DeploymentBook, at_ms: int, *, exclude: set[tuple[str, str]]) -> list[Send]:
    """The sends of the journeys (not archived) and campaigns (not cancelled) in force at ``at_ms``."""
    found: list[Send] = []
    for jid in book.registry.journey_ids():
        journey = book.registry.current(jid, at_ms)
        if journey is not None and journey.status != "archived" and ("journey", jid) not in exclude:
            found += sends_of(journey)
    for campaign in book.campaign_registry.in_force(at_ms):
        if campaign.status != "cancelled" and ("campaign", campaign.id) not in exclude:
            found += sends_of(campaign)
    return found


def _diff(before: str, dep: JourneyDeployment) -> str:
    """What changed against the version on the topic, as a unified diff (at most 60 lines)."""
    lines = list(
        difflib.unified_diff(
            before.splitlines(), dep.text.splitlines(), lineterm="",
            fromfile=f"{dep.journey_id} v{dep.version} (deployed)", tofile=f"{dep.source_name}",
        )
    )  # fmt: skip
    shown = lines[:60] + ([f"... {len(lines) - 60} more lines"] if len(lines) > 60 else [])
    return "the change against the deployed version:\n" + "\n".join(shown)


def publish_deployments(settings: Settings, deployments: Sequence[JourneyDeployment]) -> None:
    """Check the records against what the journeys topic holds (raises JourneyValidationError with every
    problem, publishing nothing), then publish them in order and wait for the broker to take them."""
    from confluent_kafka import Producer

    problems = check_deployments(
        read_deployment_records(settings), deployments, settings.history_window_days * 86_400_000
    )
    if problems:
        raise JourneyValidationError(problems)
    errors: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        {**librdkafka_options(settings), "acks": "all", "enable.idempotence": True, "logger": client_log()}
    )
    for dep in deployments:
        producer.produce(
            settings.topics.journeys, key=dep.key.encode(), value=dep.to_json(), on_delivery=delivered
        )
    if producer.flush(30) or errors:
        raise KafkaSetupError(
            f"publishing to {settings.topics.journeys} failed: {'; '.join(errors) or 'timeout'}"
        )
