"""Helpers of the metrics tests: a small journey, its events, scraping and reading /metrics."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import orjson
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.config import Settings
from orchestrator.testing import WorkerProcess
from tests.integration.runtime_helpers import deploy, produce

__all__ = ["PROBE_JOURNEY", "Scrape", "deploy_probe", "produce_probe", "run_probe", "scrape"]

PROBE_JOURNEY = """
id: probe
version: 1
name: Metrics probe
entry:
  event: app.opened
re_entry:
  policy: never
steps:
  hello:
    type: send
    channel: email
    category: transactional
    template: hello
    next: pause
  pause:
    type: wait
    duration: 2s
    next: nudge
  nudge:
    type: send
    channel: sms
    category: transactional
    template: nudge
"""

Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(worker: WorkerProcess) -> tuple[str, Scrape]:
    """(content type, {(sample name, labels): value}) of the worker's /metrics."""
    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as resp:
        ctype = resp.headers["Content-Type"]
        text = resp.read().decode()
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return ctype, out


def _event(customer: str, n: int, event_type: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{customer}-{n}",
            "type": event_type,
            "identifiers": {
                "customer_id": customer,
                "email": f"{customer}@example.com",
                "phone": "+15550100",
            },
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "metrics-test",
        }
    )


def run_probe(settings: Settings, tmp: Path) -> None:
    """Deploy the probe journey and produce its events."""
    deploy_probe(settings, tmp)
    produce_probe(settings)


def deploy_probe(settings: Settings, tmp: Path) -> None:
    path = tmp / "probe.yaml"
    path.write_text(PROBE_JOURNEY)
    deploy(settings, [path])


def produce_probe(settings: Settings) -> None:
    """3 customers open the app (each gets an email at once and an SMS 2 s later), one views a page,
    one sends a custom event type, and one message is not JSON."""
    lines = [_event(f"m-cust-{i}", 1, "app.opened") for i in range(3)]
    lines += [_event("m-viewer", 1, "page.viewed"), _event("m-other", 1, "x.custom_thing")]
    produce(settings, lines)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    producer.produce(settings.topics.raw_events, key=b"junk", value=b"{not json")
    assert producer.flush(30) == 0
