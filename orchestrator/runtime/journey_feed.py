"""Every worker reads the whole journeys topic and keeps its registry in step, live.

The feed is a plain aiokafka consumer with no group (every worker reads every partition from the
start). :class:`JourneyBook` applies records to the registry; it is free of Kafka and unit-tested.
A record that does not load (bad JSON, an invalid journey) is refused: the registry keeps the last
good deployment and the problem is kept for ``/journeys`` and the logs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from orchestrator.config import Settings
from orchestrator.contracts import JourneyDeployment
from orchestrator.core.journey import JourneyRegistry, load_journey_text
from orchestrator.core.policy import PolicyRegistry, load_policy_text
from orchestrator.exceptions import JourneyValidationError, PolicyValidationError
from orchestrator.kafka.security import aiokafka_options

__all__ = ["JourneyBook", "JourneyFeed"]

log = logging.getLogger("orchestrator.journeys")


@dataclass
class JourneyBook:
    """The registry plus what the feed refused."""

    registry: JourneyRegistry
    policies: PolicyRegistry = field(default_factory=PolicyRegistry)
    problems: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0

    def apply(self, key: bytes | None, value: bytes | None, *, partition: int, offset: int) -> bool:
        """Apply one record of the journeys topic; False (and a recorded problem) when refused."""
        where = f"journeys[{partition}]@{offset}"
        if value is None:
            return True  # a tombstone: deployments are never removed from the timeline
        try:
            dep = JourneyDeployment.model_validate_json(value)
            if dep.kind == "policy":
                policy = load_policy_text(dep.text, dep.source_name)
                if policy.id != dep.journey_id or policy.version != dep.version:
                    raise PolicyValidationError(
                        [f"{dep.source_name}:1: id: the record and the file disagree"]
                    )
                self.policies.deploy(policy, dep.effective_from_ms)
                self.applied += 1
                log.info(
                    "loaded policy %s v%s effective from %s", dep.journey_id, dep.version, dep.effective_from
                )
                return True
            definition = load_journey_text(dep.text, dep.source_name)
            if definition.id != dep.journey_id or definition.version != dep.version:
                mismatch = (
                    f"{dep.source_name}:1: id: record says {dep.journey_id} v{dep.version}, "
                    f"the file says {definition.id} v{definition.version}"
                )
                raise JourneyValidationError([mismatch])
            self.registry.deploy(definition, dep.effective_from_ms)
        except (ValidationError, JourneyValidationError, PolicyValidationError) as exc:
            text = str(exc) if isinstance(exc, ValidationError) else "; ".join(exc.problems)
            self.problems.append(
                {"where": where, "key": (key or b"").decode(errors="replace"), "error": text}
            )
            del self.problems[:-50]
            log.error("refused journey deployment %s: %s (the last good version stays)", where, text)
            return False
        self.applied += 1
        log.info("loaded journey %s v%s effective from %s", dep.journey_id, dep.version, dep.effective_from)
        return True

    def summary(self) -> dict[str, Any]:
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
        return {"journeys": journeys, "policies": policies, "refused": self.problems, "applied": self.applied}


class JourneyFeed:
    """Reads the journeys topic from the beginning, forever; ``caught_up`` is set once the records
    present at start are applied (the worker processes no event before that)."""

    def __init__(self, settings: Settings, book: JourneyBook) -> None:
        self.settings = settings
        self.book = book
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        topic = self.settings.topics.journeys
        consumer = AIOKafkaConsumer(
            **aiokafka_options(self.settings), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest",
        )  # fmt: skip
        await consumer.start()
        try:
            partitions: set[int] = set()
            while not partitions:
                # aiokafka's public partitions_for_topic() only knows subscribed topics; with manual
                # assignment we read the partition list from a full metadata fetch.
                cluster = await consumer._client.fetch_all_metadata()
                partitions = cluster.partitions_for_topic(topic) or set()
                if not partitions:
                    log.warning("journeys topic %s not found yet; retrying", topic)
                    await asyncio.sleep(1.0)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if end[tp] > 0}
            if not pending:
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for tp, records in batches.items():
                    for rec in records:
                        self.book.apply(rec.key, rec.value, partition=rec.partition, offset=rec.offset)
                        if tp in pending and rec.offset + 1 >= end[tp]:
                            pending.discard(tp)
                if pending:
                    for tp in list(pending):
                        if await consumer.position(tp) >= end[tp]:
                            pending.discard(tp)
                if not pending and not self.caught_up.is_set():
                    log.info("journeys loaded: %s", ", ".join(self.book.registry.journey_ids()) or "none")
                    self.caught_up.set()
        finally:
            await consumer.stop()
