"""Live traffic across a kill -9 (issue 17, docs/runtime.md "The fast path across a crash"): events
stamped with the wall clock as they are sent, at a steady rate, while the worker is killed and started
again; every action simulate gives arrives, duplicates identical, nothing else. With the fast path on
(``fast_path`` is a parameter: with it off the same test is the reference; off it runs in the other
kill tests, so the suite runs it on only).

A backlog of past events does not exercise the fast path: ingest reads it before the writer's first
claims come back, and after a restart the re-read events sit below the restored allowance (the floor),
so all of them go through the writer. Live, once a customer is claimed its next events take the fast
path; the test waits until some did before it kills the worker, and until some did after the restart.

Live events are also *late* now and then: a raw partition's watermark is the wall clock once ingest has
read everything it knows of, so an event sent a moment earlier that reaches the broker after that
watermark is released by the writer out of key order. This test found that a customer partition took
such an event for a copy and dropped it (test_ordering.py, the late message of the writer).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from orchestrator.config import Settings
from orchestrator.contracts import parse_event
from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.resolution import canonical_key
from orchestrator.kafka.local_broker import free_port
from orchestrator.kafka.topics import create_topics
from orchestrator.simulate.generate import generate_events
from orchestrator.testing import WorkerProcess, read_topic, unique_settings, wait_until
from tests.integration.runtime_helpers import (
    EXAMPLE_NAMES,
    JOURNEYS,
    ActionReader,
    assert_exactly,
    by_id,
    deploy,
    simulate,
)

pytestmark = pytest.mark.integration

EVENTS = 5000
RATE = 250
"""Events per second: twenty seconds of live traffic (the restarted worker sends the events of the
first ``FAST_ROOM_MS`` after the last commit through the writer, then the rest by the fast path), 400
customers (no anonymous visitors: every customer's events share one key, so one raw partition keeps
them in order as simulate reads them)."""


class _LiveProducer(threading.Thread):
    """Sends the generated events at ``RATE``, each stamped with the wall clock as it is sent."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.sent: list[bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = Producer({"bootstrap.servers": self.settings.bootstrap_servers, "linger.ms": 5})
            start = time.monotonic()
            for i, event in enumerate(generate_events(EVENTS, 400, seed=5)):
                time.sleep(max(0.0, start + i / RATE - time.monotonic()))
                line = orjson.dumps({**event, "occurred_at": iso_from_ms(int(time.time() * 1000))})
                key = canonical_key(parse_event(line).identifiers).encode()
                producer.produce(self.settings.topics.raw_events, key=key, value=line)
                producer.poll(0)
                self.sent.append(line)
            assert producer.flush(30) == 0
        except BaseException as exc:  # (surfaced by the test, not lost in the thread)
            self.error = exc


class _ResolvedCounter:
    """Counts the events on the resolved topic, all and those that came by the fast path (one consumer,
    its own group)."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": f"fast-{settings.topics.resolved_events}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([settings.topics.resolved_events])
        self.fast_only = settings.fast_path
        self.count = 0

    def poll(self) -> int:
        """How many events came (by the fast path, when it is on) so far."""
        for msg in self.consumer.consume(num_messages=1000, timeout=0.2):
            value = msg.value() if msg.error() is None else None
            if value is not None and b'"event"' in value and (not self.fast_only or b'"via":"r' in value):
                self.count += 1
        return self.count

    def close(self) -> None:
        self.consumer.close()


def _worker(settings: Settings, tmp: Path, name: str) -> WorkerProcess:
    own = settings.model_copy(update={"web_port": free_port()})
    env = {"ORCH_SESSION_TIMEOUT_S": "6", "ORCH_LATENESS_HOURS": "0"}
    return WorkerProcess(own, tmp / f"{name}.log", extra_env=env)


def _trace(
    settings: Settings,
    actions: ActionReader,
    expected: dict[str, dict[str, Any]],
    worker: WorkerProcess,
    killed_at: str,
) -> str:
    """What a failure needs to be understood: actions that differ, and where the events of a customer
    with a missing action went (raw, identify, resolved, claims), with the group's committed offsets."""
    got = {r["action_id"]: r for r in actions.records}
    differ = [i for i in sorted(set(got) & set(expected)) if got[i] != expected[i]]
    lines = [f"killed at {killed_at}"]
    lines += [f"differs: {got[i]}\n expected {expected[i]}" for i in differ[:2]]
    missing = sorted({expected[i]["customer_id"] for i in set(expected) - actions.ids()})[:1]
    missing += [got[i]["customer_id"] for i in differ[:1]]
    group = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": settings.app_id})
    t = settings.topics
    tps = [
        TopicPartition(topic, p) for topic in (t.raw_events, t.identify, t.resolved_events) for p in range(6)
    ]
    lines.append(
        f"committed: {[(x.topic[-9:], x.partition, x.offset) for x in group.committed(tps, timeout=10)]}"
    )
    group.close()
    for customer in missing:
        needle = f'"{customer}"'.encode()
        lines.append(f"--- {customer}: {worker.get_json(f'/customers/{customer}/')}")
        for topic in (
            settings.topics.raw_events,
            settings.topics.identify,
            settings.topics.resolved_events,
            settings.topics.claims,
        ):
            for r in read_topic(settings.bootstrap_servers, topic, idle=0.5):
                if r.value and needle in r.value:
                    lines.append(f"{topic}[{r.partition}]@{r.offset}: {r.value[:300]!r}")
    return "\n".join(lines)


@pytest.mark.timeout(420)
@pytest.mark.parametrize(("store", "fast_path"), [("memory://", True), ("rocksdb://", True)])
def test_kill_9_under_live_traffic_loses_no_action(
    kafka_bootstrap: str, tmp_path: Path, store: str, fast_path: bool
) -> None:
    settings = unique_settings(kafka_bootstrap, tmp_path / "data", partitions=6, store=store)
    settings = settings.model_copy(update={"fast_path": fast_path})
    create_topics(settings)
    deploy(settings, [JOURNEYS / f"{name}.yaml" for name in EXAMPLE_NAMES])
    actions = ActionReader(settings)
    fast = _ResolvedCounter(settings)
    producer = _LiveProducer(settings)
    first = _worker(settings, tmp_path, "first").start()
    try:
        first.wait_ready(timeout=120)
        producer.start()
        before = wait_until(fast.poll, timeout=60, what="events resolved (by the fast path when on)")
        first.kill()
        killed_at = iso_from_ms(int(time.time() * 1000))
        second = _worker(settings, tmp_path, "second").start()
        try:
            second.wait_ready(timeout=120)
            producer.join(timeout=EVENTS / RATE + 60)
            assert producer.error is None, producer.error
            assert not producer.is_alive(), "the producer did not finish"
            until = int(time.time() * 1000)
            expected = by_id(simulate([JOURNEYS / f"{n}.yaml" for n in EXAMPLE_NAMES], producer.sent, until))
            assert len(expected) > 100
            try:
                assert_exactly(actions, expected, timeout=120)
            except (TimeoutError, AssertionError) as exc:
                raise AssertionError(
                    f"{exc}\n{_trace(settings, actions, expected, second, killed_at)}"
                ) from None
            fast.poll()
            wait_until(lambda: fast.poll() > before, timeout=30, what="more of them after the restart")
        finally:
            second.stop()
    finally:
        first.kill()
        actions.close()
        fast.close()
