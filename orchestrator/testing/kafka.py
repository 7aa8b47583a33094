"""Kafka helpers for tests: unique settings per test, reading topics, waiting on conditions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.config import Settings, TopicNames
from orchestrator.kafka.local_broker import free_port

__all__ = ["Record", "read_topic", "unique_settings", "wait_until"]

T = TypeVar("T")


def unique_settings(bootstrap: str, data_dir: Path, *, partitions: int = 3, **overrides: Any) -> Settings:
    """Settings whose topic names, app id (consumer group), web port and API token are this test's alone."""
    tag = uuid.uuid4().hex[:10]
    topics = TopicNames(**{name: f"t{tag}.{default}" for name, default in TopicNames().model_dump().items()})
    values: dict[str, Any] = {
        "app_id": f"test-{tag}",
        "bootstrap_servers": bootstrap,
        "partitions": partitions,
        "topics": topics,
        "store": "memory://",
        "data_dir": data_dir,
        "web_port": free_port(),
        "api_token": f"test-token-{uuid.uuid4().hex}",
        **overrides,
    }
    return Settings.model_validate(values)


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Record:
    """One message read back from a topic."""

    __slots__ = ("key", "offset", "partition", "topic", "value")

    def __init__(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = topic, partition, offset, key, value

    def __repr__(self) -> str:
        return f"Record({self.topic}[{self.partition}]@{self.offset} key={self.key!r} value={self.value!r})"


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    timeout: float = 30.0,
    idle: float = 1.0,
    settings: Settings | None = None,
) -> list[Record]:
    """Read ``topic`` from the beginning with a throwaway group.

    With ``expect`` it waits (up to ``timeout``) until that many records are there, then returns
    them all; without, it returns once no new record came for ``idle`` seconds. With ``settings`` it
    connects as they say (TLS, SASL: :func:`~orchestrator.kafka.security.librdkafka_options`), to
    ``bootstrap``.
    """
    from confluent_kafka import Consumer

    from orchestrator.kafka.security import librdkafka_options

    consumer = Consumer(
        {
            **(librdkafka_options(settings) if settings is not None else {}),
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    consumer.subscribe([topic])
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=500, timeout=0.2)
            for msg in batch:
                if msg.error() is None:
                    records.append(
                        Record(
                            msg.topic() or topic,
                            msg.partition() or 0,
                            msg.offset() or 0,
                            msg.key(),
                            msg.value(),
                        )
                    )
            if batch:
                last_new = time.monotonic()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and records and time.monotonic() - last_new > idle:
                break
    finally:
        consumer.close()
    if expect is not None and len(records) < expect:
        raise TimeoutError(f"{topic}: expected {expect} records within {timeout:.0f}s, got {len(records)}")
    return records
