"""The topics the orchestrator uses: their layout, creation and the start-up check.

Every customer-keyed topic has the same partition count (``Settings.partitions``): all state of one
customer lives on one partition, so the count cannot change later without re-keying.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from orchestrator.config import Settings
from orchestrator.exceptions import KafkaSetupError, TopicLayoutError
from orchestrator.kafka.security import librdkafka_options

__all__ = ["TopicSpec", "check_layout", "create_topics", "describe_topics", "topic_specs"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    customer_keyed: bool
    compacted: bool = False
    config: dict[str, str] = field(default_factory=dict)
    purpose: str = ""


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the system uses, with its partitions and cleanup policy."""
    t = settings.topics
    n = settings.partitions
    week = str(7 * 24 * 3600 * 1000)
    specs = [
        TopicSpec(t.raw_events, n, True, purpose="events as producers publish them"),
        TopicSpec(t.identify, 1, False,
                  purpose="valid events in one order for the identity graph (one writer: docs/identity.md)"),
        TopicSpec(t.resolved_events, n, True, purpose="valid events keyed by canonical customer"),
        TopicSpec(t.dead_letter, 1, False, config={"retention.ms": str(14 * 24 * 3600 * 1000)},
                  purpose="messages that could not be taken, with the reason"),
        TopicSpec(t.journeys, 1, False, compacted=True, purpose="deployed journey definitions"),
        TopicSpec(t.timers, n, True, purpose="fired timers, routed back to the customer's partition"),
        TopicSpec(t.decisions, n, True, config={"retention.ms": week},
                  purpose="what the policy did with each action, and why"),
        TopicSpec(t.action_email, n, True, purpose="email actions for the email connector"),
        TopicSpec(t.action_sms, n, True, purpose="SMS actions for the SMS connector"),
        TopicSpec(t.action_push, n, True, purpose="push actions for the push connector"),
        TopicSpec(f"{settings.app_id}-customers-changelog", n, True, compacted=True,
                  purpose="changelog of the workers' customer state table"),
        TopicSpec(f"{settings.app_id}-wakeups-changelog", n, True, compacted=True,
                  purpose="changelog of the workers' next wake-up per customer"),
        TopicSpec(f"{settings.app_id}-identities-changelog", 1, False, compacted=True,
                  purpose="changelog of the identity graph (identifiers, aliases, erased markers)"),
    ]  # fmt: skip
    return [
        TopicSpec(
            s.name,
            s.partitions,
            s.customer_keyed,
            s.compacted,
            {**s.config, "cleanup.policy": "compact" if s.compacted else "delete"},
            s.purpose,
        )
        for s in specs
    ]


def _admin(settings: Settings):  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient

    return AdminClient(librdkafka_options(settings))


def describe_topics(settings: Settings, names: list[str], timeout: float = 10.0) -> dict[str, int]:
    """Partition counts of those of ``names`` that exist."""
    md = _admin(settings).list_topics(timeout=timeout)
    return {name: len(md.topics[name].partitions) for name in names if name in md.topics}


def create_topics(settings: Settings, timeout: float = 30.0) -> list[tuple[TopicSpec, str]]:
    """Create every topic that does not exist yet; return (spec, "created" | "exists") per topic.

    An existing topic whose partition count differs from the configuration raises
    :class:`TopicLayoutError`, since customer-keyed topics must agree.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = _admin(settings)
    specs = topic_specs(settings)
    existing = describe_topics(settings, [s.name for s in specs], timeout)
    todo = [s for s in specs if s.name not in existing]
    results: list[tuple[TopicSpec, str]] = []
    if todo:
        futures = admin.create_topics(
            [NewTopic(s.name, s.partitions, settings.replication_factor, config=s.config) for s in todo],
            operation_timeout=timeout,
        )
        for spec in todo:
            try:
                futures[spec.name].result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise KafkaSetupError(f"creating topic {spec.name!r} failed: {exc}") from None
            results.append((spec, "created"))
    results += [(s, "exists") for s in specs if s.name in existing]
    # Check what the broker really has now: a topic made by someone else just before us reports
    # TOPIC_ALREADY_EXISTS above and may have another partition count.
    deadline = time.monotonic() + timeout
    actual = describe_topics(settings, [s.name for s in specs], timeout)
    while len(actual) < len(specs) and time.monotonic() < deadline:
        time.sleep(0.2)
        actual = describe_topics(settings, [s.name for s in specs], timeout)
    _check(specs, actual, settings)
    return results


def _check(specs: list[TopicSpec], actual: dict[str, int], settings: Settings) -> None:
    problems = []
    for spec in specs:
        if spec.name not in actual:
            problems.append(f"topic {spec.name!r} is missing (run: orchestrator topics create)")
        elif spec.customer_keyed and actual[spec.name] != settings.partitions:
            problems.append(
                f"topic {spec.name!r} has {actual[spec.name]} partitions but the configuration says "
                f"{settings.partitions} (ORCH_PARTITIONS); customer-keyed topics must all agree"
            )
    if problems:
        raise TopicLayoutError("\n".join(problems))


def check_layout(settings: Settings, timeout: float = 10.0) -> None:
    """Refuse to run when a topic is missing or the input and state topics (changelogs included)
    disagree on partitions."""
    specs = topic_specs(settings)
    _check(specs, describe_topics(settings, [s.name for s in specs], timeout), settings)
