"""Helpers of the runtime tests: events, deployments, reading actions, the simulate reference."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from orchestrator.config import Settings
from orchestrator.contracts import ChannelAction, parse_event
from orchestrator.contracts.decision import Decision
from orchestrator.core.journey import JourneyRegistry, load_journey_file
from orchestrator.core.policy import PolicyRegistry, load_policy_file
from orchestrator.core.resolution import canonical_key
from orchestrator.kafka.deploy import prepare_deployments, publish_deployments
from orchestrator.simulate.runner import Simulator
from orchestrator.testing import WorkerProcess, read_topic
from orchestrator.testing.worker import settings_env

ROOT = Path(__file__).resolve().parents[2]
JOURNEYS = ROOT / "journeys"
EXAMPLES = JOURNEYS / "examples"
EXAMPLE_NAMES = ("welcome", "abandoned_cart", "winback", "post_purchase", "appointment_reminder")
PAST = datetime(2025, 1, 1, tzinfo=UTC)


def deploy(settings: Settings, files: Iterable[Path], at: datetime = PAST) -> None:
    publish_deployments(settings, prepare_deployments(list(files), at))


def produce(settings: Settings, lines: Iterable[bytes]) -> int:
    """Publish events keyed by canonical customer, as `orchestrator produce` does: Kafka keeps order
    per partition only, so a customer's events must share a key to stay in order."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 5})
    n = 0
    for line in lines:
        key = canonical_key(parse_event(line).identifiers).encode()
        producer.produce(settings.topics.raw_events, key=key, value=line)
        n += 1
        producer.poll(0)
    assert producer.flush(30) == 0
    return n


def example_events(names: Iterable[str] = EXAMPLE_NAMES) -> list[bytes]:
    """All example events, merged in time order (as they would arrive live)."""
    rows = []
    for name in names:
        for line in (EXAMPLES / f"{name}.events.jsonl").read_bytes().splitlines():
            if line.strip():
                rows.append((orjson.loads(line)["occurred_at"], len(rows), line))
    return [line for _, _, line in sorted(rows)]


def simulate(
    journey_files: Iterable[Path],
    events: Iterable[bytes],
    until_ms: int,
    policy_file: Path | None = None,
    decisions: list[dict[str, Any]] | None = None,
    funnel: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """What `orchestrator simulate` gives for these events (the parity reference); with
    ``decisions`` the policy's decisions are appended to it, with ``funnel`` its funnel by journey is
    put in it."""
    registry = JourneyRegistry()
    for path in journey_files:
        registry.deploy(load_journey_file(path), int(PAST.timestamp() * 1000))
    policies = PolicyRegistry()
    if policy_file is not None:
        policies.deploy(load_policy_file(policy_file), int(PAST.timestamp() * 1000))
    out: list[ChannelAction] = []
    made: list[Decision] = []
    sim = Simulator(registry, on_action=out.append, policy=policies, on_decision=made.append)
    for n, line in enumerate(events, 1):
        sim.feed_line(n, line)
    result = sim.finish(until_ms)
    if funnel is not None:
        funnel.update(result.funnel.to_dict())
    if decisions is not None:
        decisions.extend(orjson.loads(d.to_json()) for d in made)
    return [orjson.loads(a.to_json()) for a in out]


def read_decisions(settings: Settings, expect: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    records = read_topic(
        settings.bootstrap_servers, settings.topics.decisions, expect=expect, timeout=timeout
    )
    return [orjson.loads(r.value or b"{}") for r in records]


class ActionReader:
    """Reads the three action topics continuously (one consumer, its own group)."""

    def __init__(self, settings: Settings) -> None:
        t = settings.topics
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": f"actions-{t.action_email}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([t.action_email, t.action_sms, t.action_push])
        self.records: list[dict[str, Any]] = []

    def poll(self, seconds: float = 0.3) -> None:
        for msg in self.consumer.consume(num_messages=1000, timeout=seconds):
            if msg.error() is None and msg.value() is not None:
                body = orjson.loads(msg.value())
                assert msg.key() == body["customer_id"].encode(), "actions are keyed by customer"
                self.records.append(body)

    def ids(self) -> set[str]:
        return {r["action_id"] for r in self.records}

    def wait_for_ids(
        self, expected: set[str], timeout: float = 90.0, describe: dict[str, Any] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while not expected <= self.ids():
            if time.monotonic() > deadline:
                missing = expected - self.ids()
                detail = "\n".join(str((describe or {}).get(m, m)) for m in sorted(missing)[:10])
                raise TimeoutError(
                    f"{len(missing)} of {len(expected)} expected actions missing after {timeout}s:\n{detail}"
                )
            self.poll()

    def settle(self, seconds: float = 2.0) -> None:
        """Read whatever else arrives for ``seconds`` (to catch unexpected extra actions)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll(0.2)

    def close(self) -> None:
        self.consumer.close()


def by_id(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["action_id"]: r for r in records}


def assert_exactly(actions: ActionReader, expected: dict[str, dict[str, Any]], timeout: float = 90) -> None:
    """Every expected action arrives; a duplicate is identical to its first copy; nothing else comes."""
    actions.wait_for_ids(set(expected), timeout=timeout, describe=expected)
    actions.settle(2.0)
    seen: dict[str, dict[str, Any]] = {}
    for record in actions.records:
        first = seen.setdefault(record["action_id"], record)
        assert first == record, f"a duplicate of {record['action_id']} differs in content"
    assert set(seen) == set(expected), f"unexpected: {sorted(set(seen) - set(expected))[:5]}"
    assert seen == expected


def inspect_live(settings: Settings, worker: WorkerProcess, name: str) -> dict[str, Any]:
    """`orchestrator inspect NAME --worker URL --json`, as an operator runs it."""
    env = {**os.environ, **settings_env(settings)}
    cmd = [sys.executable, "-m", "orchestrator", "inspect", name, "--worker", worker.url, "--json"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True)
    body: dict[str, Any] = orjson.loads(out.stdout)
    return body
