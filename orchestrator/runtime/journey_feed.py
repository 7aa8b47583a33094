"""Every worker reads the whole journeys topic and keeps its registry in step, live.

The feed is a plain aiokafka consumer with no group (every worker reads every partition from the
start). :class:`~orchestrator.core.deployments.DeploymentBook` applies records to the registries —
the same acceptance ``orchestrator deploy`` applies before publishing. A record that does not load
(bad JSON, an invalid or hostile journey, one over the size limit) is refused and never stops the
worker: the registry keeps the last good deployment and the problem is kept for ``/journeys/``, the
logs and the metric ``orchestrator_journey_deployments_refused``.
"""

from __future__ import annotations

import asyncio
import logging

from orchestrator.config import Settings
from orchestrator.core.deployments import DeploymentBook
from orchestrator.runtime.whole_topic import whole_topic_consumer

__all__ = ["JourneyFeed"]

log = logging.getLogger("orchestrator.journeys")


class JourneyFeed:
    """Reads the journeys topic from the beginning, forever; ``caught_up`` is set once the records
    present at start are applied (the worker processes no event before that)."""

    def __init__(self, settings: Settings, book: DeploymentBook) -> None:
        self.settings = settings
        self.book = book
        self.caught_up = asyncio.Event()

    def _apply(self, key: bytes | None, value: bytes | None, where: str) -> None:
        refusal = self.book.apply(key, value, where=where)
        if refusal is not None:
            log.error(
                "refused journey deployment %s (key %r): %s (the last good version stays)",
                where, refusal.key, "; ".join(refusal.problems),
            )  # fmt: skip
        elif value is not None:
            log.info("loaded %s", self.book.last_applied)

    async def run(self) -> None:
        topic = self.settings.topics.journeys
        consumer, tps = await whole_topic_consumer(self.settings, topic, log)
        try:
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if end[tp] > 0}
            if not pending:
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for tp, records in batches.items():
                    for rec in records:
                        self._apply(rec.key, rec.value, f"journeys[{rec.partition}]@{rec.offset}")
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
