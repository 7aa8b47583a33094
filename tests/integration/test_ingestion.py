"""Ingestion on the real broker: valid events are resolved and folded into the profile table,
malformed ones land in the dead-letter topic with their reason, and the worker keeps going."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from orchestrator.config import Settings
from orchestrator.kafka.produce import produce_file
from orchestrator.runtime.identify import WATERMARK_KEY
from orchestrator.testing import WorkerProcess, read_topic, wait_until

pytestmark = pytest.mark.integration


def _event(event_id: str, etype: str, ids: dict[str, str], minute: int, **extra: object) -> bytes:
    body = {
        "event_id": event_id,
        "type": etype,
        "identifiers": ids,
        "occurred_at": f"2026-11-20T10:{minute:02d}:00Z",
        "source": "test",
        **extra,
    }
    return orjson.dumps(body)


def _send(settings: Settings, messages: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for value in messages:
        producer.produce(settings.topics.raw_events, value=value)
    assert producer.flush(30) == 0


def test_valid_and_malformed_events(settings: Settings, worker: WorkerProcess) -> None:
    good = [
        _event("e1", "page.viewed", {"customer_id": "c-1"}, 0),
        _event("e2", "cart.updated", {"customer_id": "c-1", "email": "ann@example.com"}, 1),
        _event("e3", "profile.updated", {"email": "Bob@Example.com"}, 2, properties={"first_name": "Bob"}),
    ]
    bad = [
        b"{not json",
        _event("e4", "Not A Type", {}, 3),
        orjson.dumps(["an", "array"]),
    ]
    # bad messages first and in between: the worker must keep going past them
    _send(settings, [bad[0], good[0], bad[1], good[1], bad[2], good[2], good[1]])

    letters = read_topic(settings.bootstrap_servers, settings.topics.dead_letter, expect=3)
    by_reason = sorted(orjson.loads(r.value or b"")["reason"] for r in letters)
    assert by_reason == ["invalid_event", "invalid_event", "not_json"]
    originals = {base64.b64decode(orjson.loads(r.value or b"")["value_b64"]) for r in letters}
    assert originals == set(bad)
    for record in letters:
        letter = orjson.loads(record.value or b"")
        assert letter["topic"] == settings.topics.raw_events
        assert letter["offset"] >= 0
        assert f"@{letter['offset']}" in letter["error"]
    invalid = next(orjson.loads(r.value or b"") for r in letters if b"Not A Type" in base64.b64decode(
        orjson.loads(r.value or b"")["value_b64"]))  # fmt: skip
    assert "field 'type'" in invalid["error"]
    assert "field 'identifiers'" in invalid["error"]

    def customer_records() -> list[str] | None:
        records = read_topic(settings.bootstrap_servers, settings.topics.resolved_events, timeout=10)
        keys = [(r.key or b"").decode() for r in records if r.key != WATERMARK_KEY]
        return keys if len(keys) >= 4 else None

    keys = sorted(wait_until(customer_records, what="4 resolved events"))
    assert keys == ["c-1", "c-1", "c-1", "email:bob@example.com"]

    def profile(key: str) -> dict[str, object] | None:
        status, body = worker.get_json(f"/customers/{key}/")
        return body if status == 200 else None

    c1 = wait_until(
        lambda: (p := profile("c-1")) and p["profile"]["counts_by_type"].get("cart.updated") and p,
        what="customer c-1's profile",
    )
    assert c1["profile"]["counts_by_type"] == {"page.viewed": 1, "cart.updated": 1}  # duplicate e2 recognised
    assert c1["profile"]["identities"] == {"customer_id": ["c-1"], "email": ["ann@example.com"]}
    assert c1["profile"]["last_seen_ms"] > c1["profile"]["first_seen_ms"]
    bob = wait_until(lambda: profile("email:bob@example.com"), what="Bob's profile")
    assert bob["profile"]["attributes"] == {"first_name": "Bob"}
    assert worker.proc is not None
    assert worker.proc.poll() is None, "the worker must keep running"


def test_produce_command_skips_bad_lines(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        _event("p1", "page.viewed", {"anonymous_id": "anon-1"}, 0),
        b"oops",
        b"",
        _event("p2", "order.completed", {"customer_id": "c-9"}, 1),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = produce_file(path, settings)
    assert report.sent == 2
    assert [b.line for b in report.bad] == [2]
    assert "not valid JSON" in report.bad[0].error
    records = read_topic(settings.bootstrap_servers, settings.topics.raw_events, expect=2)
    assert sorted((r.key or b"").decode() for r in records) == ["anonymous_id:anon-1", "c-9"]
