"""A plain aiokafka consumer without a group that reads every partition of one topic (the journeys
feed, the claims view): every worker reads the whole topic, not a share of it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from orchestrator.config import Settings
from orchestrator.kafka.security import aiokafka_options

__all__ = ["whole_topic_consumer"]


async def whole_topic_consumer(settings: Settings, topic: str, log: logging.Logger) -> tuple[Any, list[Any]]:
    """A started consumer assigned every partition of ``topic`` (waits, logging, until it exists), and
    those partitions in order; the caller seeks and stops it."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **aiokafka_options(settings), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions: set[int] = set()
        while not partitions:
            # aiokafka's public partitions_for_topic() only knows subscribed topics; with manual
            # assignment the partition list comes from a full metadata fetch.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(topic) or set()
            if not partitions:
                log.warning("topic %s not found yet; retrying", topic)
                await asyncio.sleep(1.0)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
    except BaseException:
        await consumer.stop()
        raise
    return consumer, tps
