"""No message stops a worker: every kind of poison that used to stop ingestion, sent among the example
events on the real broker (Kafka's default 1 MB message limit kept), is dead-lettered with its reason;
the worker stays up, the valid events give exactly simulate's actions, and no partition is stuck."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from orchestrator.config import Settings
from orchestrator.contracts import DeadLetter
from orchestrator.testing import WorkerProcess, read_topic, wait_until
from tests.integration.runtime_helpers import (
    EXAMPLE_NAMES,
    JOURNEYS,
    ActionReader,
    by_id,
    deploy,
    example_events,
    produce,
    simulate,
)

pytestmark = pytest.mark.integration


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def _valid(n: int, **extra: object) -> dict[str, object]:
    return {
        "event_id": f"poison-{n}",
        "type": "app.custom_thing",
        "identifiers": {"customer_id": f"poisoner-{n}"},
        "occurred_at": f"2025-03-03T09:{n % 60:02d}:00Z",
        "source": "fault-suite",
        **extra,
    }


def _poison() -> dict[str, tuple[bytes, str]]:
    """name -> (message, the dead-letter reason it must get)."""
    deep_json = b'{"event_id": "x", "properties": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    return {
        "properties 200 deep": (orjson.dumps(_valid(1, properties=_nested(200))), "over_limit"),
        "properties 250 deep": (orjson.dumps(_valid(2, properties=_nested(250))), "over_limit"),
        "json 1000 deep": (deep_json, "over_limit"),
        "900 kB invalid": (b"{" + b"x" * 900_000, "over_limit"),
        "900 kB valid custom event": (
            orjson.dumps(_valid(3, properties={"blob": "y" * 900_000})),
            "over_limit",
        ),
        "5000 properties": (
            orjson.dumps(_valid(4, properties={f"k{i}": i for i in range(5000)})),
            "over_limit",
        ),
        "not json": (b"\xff\xfe not json", "not_json"),
        "no identifiers": (orjson.dumps({**_valid(5), "identifiers": {}}), "invalid_event"),
    }


def test_poison_among_valid_events(settings: Settings, tmp_path: Path, actions: ActionReader) -> None:
    files = [JOURNEYS / f"{n}.yaml" for n in EXAMPLE_NAMES]
    deploy(settings, files)
    events = example_events()
    poison = _poison()
    half = len(events) // 2
    produce(settings, events[:half])
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})  # broker default: 1 MB
    for name, (value, _) in poison.items():
        producer.produce(settings.topics.raw_events, key=name.encode(), value=value)
    assert producer.flush(30) == 0
    # a catch-up burst: 250 valid events of ~5 kB, read as one backlog (one identity row per release
    # once made an identify changelog record over 1 MB and stopped the worker for good)
    burst = [orjson.dumps(_valid(100 + n, properties={"pad": "p" * 5_000})) for n in range(250)]
    produce(settings, burst)
    produce(settings, events[half:])

    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    worker.start().wait_ready()
    try:
        expected = by_id(simulate(files, events, until_ms=int(time.time() * 1000)))
        actions.wait_for_ids(set(expected), describe=expected)
        letters = read_topic(settings.bootstrap_servers, settings.topics.dead_letter, expect=len(poison))
        actions.settle()
        for n in (100, 349):  # the burst's first and last customers were applied
            wait_until(
                lambda n=n: worker.get_json(f"/customers/poisoner-{n}/")[0] == 200, what=f"poisoner-{n}"
            )
        status, ready = worker.get_json("/readyz")
        assert worker.proc is not None
        assert worker.proc.poll() is None, worker.log_tail()
    finally:
        worker.stop()
    assert status == 200, ready
    assert ready["stuck"] == []
    assert by_id(actions.records) == expected

    got = {}
    for record in letters:
        assert len(record.value or b"") < 1_000_000
        letter = DeadLetter.model_validate_json(record.value or b"")
        got[(record.key or b"").decode()] = letter
    assert set(got) == set(poison)
    for name, (value, reason) in poison.items():
        letter = got[name]
        assert letter.reason == reason, (name, letter.error)
        assert letter.value_bytes == len(value)
        assert letter.original_value() == value[: len(letter.original_value())]
        assert letter.error.startswith(f"{settings.topics.raw_events}[")


def test_a_customer_stage_message_that_fails_fails_alone(
    settings: Settings, tmp_path: Path, actions: ActionReader
) -> None:
    """Records on the customer stage's own topics (written by anything but the worker) that the logic
    cannot take are dead-lettered one by one, within their batch; the other customers of the batch and
    the valid events go on."""
    files = [JOURNEYS / f"{n}.yaml" for n in EXAMPLE_NAMES]
    deploy(settings, files)
    events = example_events()
    t = settings.topics
    bad = {
        ("resolved", b"c-not-json"): (t.resolved_events, b"\xff not json"),
        ("resolved", b"c-no-event"): (t.resolved_events, orjson.dumps({"customer_key": "c-no-event"})),
        ("resolved", b"c-half-event"): (
            t.resolved_events,
            orjson.dumps({"customer_key": "c-half-event", "event": {"type": "a.b"}}),
        ),
        ("timers", b"c-bad-wakeup"): (t.timers, b"{not a wake-up"),
    }
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for (_, key), (topic, value) in bad.items():
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    produce(settings, events)
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    worker.start().wait_ready()
    try:
        expected = by_id(simulate(files, events, until_ms=int(time.time() * 1000)))
        actions.wait_for_ids(set(expected), describe=expected)
        letters = read_topic(settings.bootstrap_servers, t.dead_letter, expect=len(bad))
        actions.settle()
        assert worker.proc is not None
        assert worker.proc.poll() is None, worker.log_tail()
    finally:
        worker.stop()
    assert by_id(actions.records) == expected
    got = {(r.key or b""): DeadLetter.model_validate_json(r.value or b"") for r in letters}
    assert set(got) == {key for _, key in bad}
    for (_, key), (topic, value) in bad.items():
        letter = got[key]
        assert letter.reason == "processing_error", letter.error
        assert letter.topic == topic
        assert letter.error.startswith(f"{topic}[{letter.partition}]@{letter.offset}: ")
        assert letter.original_value() == value
