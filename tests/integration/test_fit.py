"""``orchestrator fit --from-kafka`` on the real broker: events, actions and decisions produced to this
test's own topics (names passed to the command through ORCH_TOPIC_* like every other command) give
the same model as the same history fitted from files; a record that is not an event is skipped and
named by topic, partition and offset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from orchestrator.config import Settings
from orchestrator.core.learning.loader import load_model_file
from orchestrator.learning.synthetic import generate
from orchestrator.testing.worker import settings_env

pytestmark = pytest.mark.integration


def _produce(settings: Settings, topic: str, lines: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for line in lines:
        key = orjson.loads(line).get("customer_id") if line.startswith(b"{") else None
        producer.produce(topic, line, key=(key or "x").encode())
    assert producer.flush(30) == 0


def _fit(settings: Settings, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}
    cmd = [sys.executable, "-m", "orchestrator", "fit", "-o", str(out), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def test_fit_from_kafka_equals_fit_from_files(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "history"
    generate(40, 2, seed=5, out=data)
    events = (data / "events.jsonl").read_bytes().splitlines()
    actions = (data / "actions.jsonl").read_bytes().splitlines()
    decisions = (data / "decisions.jsonl").read_bytes().splitlines()
    t = settings.topics
    _produce(settings, t.raw_events, [*events, b"not an event"])
    for channel in ("email", "sms", "push"):
        mine = [a for a in actions if orjson.loads(a)["channel"] == channel]
        _produce(settings, t.action_topic(channel), mine)
    _produce(settings, t.decisions, decisions)

    span = [
        "--from",
        "2025-03-01T00:00:00Z",
        "--to",
        "2025-03-20T00:00:00Z",
        "--journeys",
        str(data / "journeys"),
    ]
    from_kafka = _fit(settings, tmp_path / "kafka.yaml", "--from-kafka", "--id", "weekly", *span)
    assert from_kafka.returncode == 0, from_kafka.stderr
    assert "skipped 1 invalid line(s)" in from_kafka.stderr
    assert f"{t.raw_events}[" in from_kafka.stderr
    assert "not an event: not valid JSON" in from_kafka.stderr
    files = ["--events", str(data / "events.jsonl"), "--actions", str(data / "actions.jsonl"),
             "--decisions", str(data / "decisions.jsonl")]  # fmt: skip
    from_files = _fit(settings, tmp_path / "files.yaml", "--id", "weekly", *files, *span)
    assert from_files.returncode == 0, from_files.stderr

    kafka_model = load_model_file(tmp_path / "kafka.yaml")
    files_model = load_model_file(tmp_path / "files.yaml")
    assert kafka_model.counts == files_model.counts
    assert kafka_model.counts["actions"] == len(actions)
    assert kafka_model.counts["decisions"] == len(decisions)
    assert kafka_model.channels == files_model.channels
    assert kafka_model.hours == files_model.hours
    assert kafka_model.splits == files_model.splits
    assert set(kafka_model.splits["promo"]["ab"]) == {"a", "b"}
    assert kafka_model.channels["email"].sends > 0
    assert "weekly@1" in from_kafka.stdout
