"""The topics the orchestrator uses: their layout, creation and the start-up check.

Every customer-keyed topic has the same partition count (``Settings.partitions``): all state of one
customer lives on one partition, so the count cannot change later without re-keying.

The tables' changelogs hold personal data until an erasure's tombstone has been compacted, so their
compaction is bounded by ``Settings.erasure_compaction_hours`` (:func:`erasure_compaction_configs`).
``orchestrator topics create`` creates missing topics with these configs and alters existing ones whose
configs differ (never ``retention.ms``: :data:`CREATE_ONLY`); the worker's start-up check
(:func:`check_layout`) does the same alterations, logged, and refuses to run on a missing topic or a
partition count that disagrees. Faust declares the changelogs too when a worker starts, but only
creates missing topics and never alters one: the worker refuses to start before they exist, so ours win.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.config import Settings
from orchestrator.exceptions import KafkaSetupError, TopicLayoutError
from orchestrator.kafka.security import admin_client, cluster_metadata

__all__ = [
    "AT_MOST",
    "CREATE_ONLY",
    "TopicSpec",
    "check_layout",
    "config_drift",
    "create_topics",
    "describe_topics",
    "erasure_compaction_configs",
    "topic_specs",
]

AT_MOST = frozenset({"segment.ms", "max.compaction.lag.ms", "delete.retention.ms"})
"""Time limits a topic may have shorter than its spec (what they bound only comes sooner): a value at
most the spec's is accepted by the start-up check and left as it is by ``topics create``."""

CREATE_ONLY = frozenset({"retention.ms"})
"""Configs a topic is created with and never altered afterwards: how long events, dead letters and
decisions are kept is the operator's choice (longer or shorter), and an alteration could delete data."""

ConfigChange = Callable[[str, str, str | None, str], None]
"""Called with (topic, config key, old value or None, new value) for each config altered."""


def erasure_compaction_configs(hours: int) -> dict[str, str]:
    """Compaction settings of a changelog so that a value overwritten or tombstoned (an erasure) is no
    longer readable ``hours`` after it was written over, its tombstone's key soon after.

    A quarter each: the active segment rolls at the first write after ``segment.ms`` (the active
    segment is never compacted; ``max.compaction.lag.ms`` also forces that roll); a rolled segment is
    compacted ``max.compaction.lag.ms`` after its records at the latest, whatever the dirty ratio;
    the tombstone itself (the key: a customer key) goes ``delete.retention.ms`` after that cleaning.
    Roll + lag + tombstone = 3/4 of ``hours``, the rest is slack for the log cleaner's own schedule.
    """
    quarter = str(hours * 3_600_000 // 4)
    return {"segment.ms": quarter, "max.compaction.lag.ms": quarter, "delete.retention.ms": quarter}


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
    bounded = erasure_compaction_configs(settings.erasure_compaction_hours)
    specs = [
        TopicSpec(t.raw_events, n, True, purpose="events as producers publish them"),
        TopicSpec(t.identify, 1, False,
                  purpose="valid events in one order for the identity graph (one writer: docs/identity.md)"),
        TopicSpec(t.resolved_events, n, True, purpose="valid events keyed by canonical customer"),
        TopicSpec(t.claims, 1, False, compacted=True, config=bounded,
                  purpose="which known customer each identifier (a digest) belongs to: ingest's fast path"),
        TopicSpec(t.dead_letter, 1, False, config={"retention.ms": str(14 * 24 * 3600 * 1000)},
                  purpose="messages that could not be taken, with the reason"),
        TopicSpec(t.journeys, 1, False, compacted=True, purpose="deployed journey definitions"),
        TopicSpec(t.timers, n, True, purpose="fired timers, routed back to the customer's partition"),
        TopicSpec(t.decisions, n, True, config={"retention.ms": week},
                  purpose="what the policy did with each action, and why"),
        TopicSpec(t.action_email, n, True, purpose="email actions for the email connector"),
        TopicSpec(t.action_sms, n, True, purpose="SMS actions for the SMS connector"),
        TopicSpec(t.action_push, n, True, purpose="push actions for the push connector"),
        TopicSpec(t.connector_marks, n, True, compacted=True, config={
                      "cleanup.policy": "compact,delete", "segment.ms": str(24 * 3600 * 1000),
                      "retention.ms": str(settings.connector_marks_days * 24 * 3600 * 1000)},
                  purpose="connectors' dedupe marks: the last action ids sent per customer and channel"),
        TopicSpec(f"{settings.app_id}-customers-changelog", n, True, compacted=True, config=bounded,
                  purpose="changelog of the workers' customer state table"),
        TopicSpec(f"{settings.app_id}-wakeups-changelog", n, True, compacted=True, config=bounded,
                  purpose="changelog of the workers' next wake-up per customer"),
        TopicSpec(f"{settings.app_id}-segment_sizes-changelog", n, True, compacted=True, config=bounded,
                  purpose="changelog of the members per segment, one row per customer partition"),
        TopicSpec(f"{settings.app_id}-identities-changelog", 1, False, compacted=True, config=bounded,
                  purpose="changelog of the identity graph (identifiers, aliases, erased markers)"),
    ]  # fmt: skip
    return [
        TopicSpec(
            s.name,
            s.partitions,
            s.customer_keyed,
            s.compacted,
            {"cleanup.policy": "compact" if s.compacted else "delete", **s.config},
            s.purpose,
        )
        for s in specs
    ]


def _admin(settings: Settings):  # type: ignore[no-untyped-def]
    return admin_client(settings)


def describe_topics(settings: Settings, names: list[str], timeout: float = 10.0) -> dict[str, int]:
    """Partition counts of those of ``names`` that exist; refused credentials, a failed TLS handshake or
    no answer raise one clear :class:`KafkaSetupError` line (:func:`cluster_metadata`)."""
    md = cluster_metadata(settings, timeout)
    return {name: len(md.topics[name].partitions) for name in names if name in md.topics}


def _differs(key: str, want: str, have: str | None) -> bool:
    if have == want:
        return False
    if key in AT_MOST and have is not None:
        try:
            return not 0 <= int(have) <= int(want)
        except ValueError:
            return True
    return True


def config_drift(
    settings: Settings, specs: list[TopicSpec] | None = None, timeout: float = 10.0
) -> dict[str, dict[str, tuple[str | None, str]]]:
    """Per existing topic, the configs of its spec it does not have: key -> (value it has, value of
    the spec). A limit of :data:`AT_MOST` shorter than the spec's counts as had; :data:`CREATE_ONLY`
    configs are not compared."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

    specs = topic_specs(settings) if specs is None else specs
    existing = describe_topics(settings, [s.name for s in specs], timeout)
    todo = [s for s in specs if s.name in existing and s.config]
    if not todo:
        return {}
    resources = {s.name: ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in todo}
    admin = _admin(settings)  # (kept referenced: a collected client cancels its requests)
    futures = admin.describe_configs(list(resources.values()), request_timeout=timeout)
    drift: dict[str, dict[str, tuple[str | None, str]]] = {}
    for spec in todo:
        try:
            entries = futures[resources[spec.name]].result(timeout)
        except KafkaException as exc:
            raise KafkaSetupError(f"reading the configs of topic {spec.name!r} failed: {exc}") from None
        for key, want in spec.config.items():
            if key in CREATE_ONLY:
                continue
            entry = entries.get(key)
            have = None if entry is None else entry.value
            if _differs(key, want, have):
                drift.setdefault(spec.name, {})[key] = (have, want)
    return drift


def _alter(settings: Settings, drift: dict[str, dict[str, tuple[str | None, str]]], timeout: float) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource  # type: ignore[attr-defined]

    resources = {
        name: ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(key, want, incremental_operation=AlterConfigOpType.SET)
                for key, (_, want) in sorted(changes.items())
            ],
        )
        for name, changes in drift.items()
    }
    admin = _admin(settings)
    futures = admin.incremental_alter_configs(list(resources.values()), request_timeout=timeout)
    for name, resource in resources.items():
        try:
            futures[resource].result(timeout)
        except KafkaException as exc:
            raise KafkaSetupError(f"altering the configs of topic {name!r} failed: {exc}") from None


def create_topics(
    settings: Settings, timeout: float = 30.0, on_change: ConfigChange | None = None
) -> list[tuple[TopicSpec, str]]:
    """Create every topic that does not exist yet, alter the configs of existing ones that differ from
    their spec; return (spec, "created" | "altered" | "exists") per topic. ``on_change`` is told every
    config altered: (topic, key, old value or None, new value).

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
    drift = config_drift(settings, [s for s in specs if s.name in existing], timeout)
    if drift:
        _alter(settings, drift, timeout)
        for name, changes in sorted(drift.items()):
            for key, (have, want) in sorted(changes.items()):
                if on_change is not None:
                    on_change(name, key, have, want)
    results += [(s, "altered" if s.name in drift else "exists") for s in specs if s.name in existing]
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


def check_layout(settings: Settings, timeout: float = 10.0, on_change: ConfigChange | None = None) -> None:
    """Refuse to run when a topic is missing or the input and state topics (changelogs included)
    disagree on partitions. A topic that lacks a config of its spec (the changelogs' compaction bounds
    of an erasure, cleanup policies, retentions: an upgrade brings new ones) is altered to match when
    ``on_change`` is given (the worker at its start: it is told each change), else refused, naming
    ``orchestrator topics create``, which alters them too."""
    specs = topic_specs(settings)
    _check(specs, describe_topics(settings, [s.name for s in specs], timeout), settings)
    drift = config_drift(settings, specs, timeout)
    if drift and on_change is not None:
        try:
            _alter(settings, drift, timeout)
        except KafkaSetupError as exc:
            raise TopicLayoutError(
                f"{exc}\n(the worker may lack the AlterConfigs permission: run orchestrator topics create "
                "with an account that has it)"
            ) from None
        for name, changes in sorted(drift.items()):
            for key, (have, want) in sorted(changes.items()):
                on_change(name, key, have, want)
        return
    if drift:
        lines = [
            f"topic {name!r} has {key}={have if have is not None else '(unset)'} but needs {want}"
            for name, changes in sorted(drift.items())
            for key, (have, want) in sorted(changes.items())
        ]
        raise TopicLayoutError(
            "\n".join(lines) + "\n(run: orchestrator topics create — it alters these configs in place)"
        )
