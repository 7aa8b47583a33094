"""The demo: every part for real (broker, topics, worker, producer), then a report of what came out."""

from __future__ import annotations

import base64
import functools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from orchestrator.config import Settings
from orchestrator.kafka.local_broker import LocalBroker, free_port
from orchestrator.kafka.produce import produce_file
from orchestrator.kafka.topics import create_topics
from orchestrator.testing.kafka import read_topic, wait_until
from orchestrator.testing.worker import WorkerProcess

__all__ = ["run_demo"]


def run_demo(events: Path, workdir: Path, *, bootstrap: str | None, say: Callable[[str], None]) -> int:
    """Run the demo in ``workdir``; a broker it starts itself is stopped at the end."""
    broker: LocalBroker | None = None
    worker: WorkerProcess | None = None
    try:
        if bootstrap is None:
            say("== 1. Apache Kafka (KRaft) from Maven Central")
            broker = LocalBroker(port=free_port(), controller_port=free_port(), run_dir=workdir / "kafka")
            bootstrap = broker.up(say=say).bootstrap
            say(f"   broker answers on {bootstrap}")
        settings = Settings(
            bootstrap_servers=bootstrap,
            app_id=f"demo-{workdir.name[-8:]}",
            store="memory://",
            data_dir=workdir / "worker",
            web_port=free_port(),
            partitions=3,
        )
        say("== 2. topics")
        for spec, state in create_topics(settings):
            say(f"   {state:8} {spec.name} ({spec.partitions} partitions)")
        say("== 3. worker")
        worker = WorkerProcess(settings, workdir / "worker.log").start().wait_ready()
        say(f"   ready on {worker.url} (log {worker.log_path})")
        say(f"== 4. producing {events} as it is (bad lines included, to show the dead-letter topic)")
        report = produce_file(events, settings, validate=False)
        say(f"   produced {report.sent} messages")
        return _report(settings, worker, report.sent, say)
    finally:
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.down()
            say("== stopped the worker and the broker")


def _customer(worker: WorkerProcess, key: str) -> dict[str, Any] | None:
    status, body = worker.get_json(f"/customers/{key}/")
    return body if status == 200 and isinstance(body, dict) else None


def _report(settings: Settings, worker: WorkerProcess, sent: int, say: Callable[[str], None]) -> int:
    t = settings.topics
    letters = read_topic(settings.bootstrap_servers, t.dead_letter, timeout=30, idle=2.0)
    resolved = read_topic(settings.bootstrap_servers, t.resolved_events, timeout=30, idle=2.0)
    say(f"== 5. results: {len(resolved)} resolved events, {len(letters)} dead letters")
    for record in letters:
        letter = orjson.loads(record.value or b"{}")
        original = base64.b64decode(letter["value_b64"])[:60]
        say(f"   dead letter [{letter['reason']}] {letter['error'][:110]}\n      original: {original!r}")
    keys = Counter((r.key or b"").decode() for r in resolved)
    for key in sorted(keys):
        body = wait_until(functools.partial(_customer, worker, key), timeout=20, what=f"profile of {key}")
        profile = body["profile"]
        counts = ", ".join(f"{k}={v}" for k, v in sorted(profile["counts_by_type"].items()))
        say(f"   customer {key}: tz={profile['timezone']} attrs={profile['attributes']} events: {counts}")
    return 0 if resolved and sent == len(resolved) + len(letters) else 1
