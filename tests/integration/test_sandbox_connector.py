"""The sandbox connector on a real broker: actions in, sent/delivered (and opens) out, no duplicates; its
receipts name the action's customer by key, so an anonymous customer still merges when it signs in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from orchestrator.config import Settings
from orchestrator.connectors import ChannelLimiter, SandboxConnector, SandboxScript
from orchestrator.contracts import ChannelAction, parse_event
from orchestrator.core.policy import RateLimit
from orchestrator.kafka.topics import create_topics
from orchestrator.testing import WorkerProcess, read_topic, unique_settings, wait_until
from tests.integration.metrics_helpers import scrape
from tests.integration.runtime_helpers import inspect_live, produce

pytestmark = pytest.mark.integration


def _action(n: int, channel: str, customer: str) -> ChannelAction:
    return ChannelAction(
        action_id=f"act_{n}",
        channel=channel,  # type: ignore[arg-type]
        category="marketing",
        customer_id=customer,
        recipient={"email": "a@example.com", "sms": "+15550001", "push": "tok"}[channel],
        journey_id="welcome",
        journey_version=1,
        step_id=f"s{n}",
        template_id="t",
        campaign="welcome",
        created_at=datetime(2026, 1, 1, 10, n, tzinfo=UTC),
    )


def _publish(settings: Settings, actions: list[ChannelAction]) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for a in actions:
        producer.produce(
            settings.topics.action_topic(a.channel), key=a.customer_id.encode(), value=a.to_json()
        )
    assert producer.flush(30) == 0


@contextmanager
def _running(connector: SandboxConnector) -> Iterator[SandboxConnector]:
    stop = threading.Event()
    thread = threading.Thread(target=connector.run, args=(stop,), kwargs={"poll_s": 0.2}, daemon=True)
    thread.start()
    try:
        yield connector
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


def test_actions_in_engagement_events_out_duplicates_dropped(settings: Settings) -> None:
    actions = [_action(1, "email", "cust-ada"), _action(2, "sms", "cust-bob"), _action(3, "push", "cust-ada")]
    _publish(settings, [*actions, actions[0], actions[1]])  # two duplicates
    limiter = ChannelLimiter({"sms": RateLimit("sms", 50.0, 1)})
    script = SandboxScript(customers={"cust-ada": ("opened",)})
    first = SandboxConnector(settings, limiter=limiter, script=script, group_id=f"{settings.app_id}-sbx")
    with _running(first):
        wait_until(lambda: first.stats.received >= 5, timeout=60, what="the connector to read 5 actions")
    assert (first.stats.duplicates, first.stats.invalid) == (2, 0)

    records = read_topic(settings.bootstrap_servers, settings.topics.raw_events, expect=8, timeout=30)
    events = [parse_event(r.value or b"") for r in records]
    assert sorted((e.action_id, e.type) for e in events) == [
        ("act_1", "email.delivered"),
        ("act_1", "email.opened"),
        ("act_1", "email.sent"),
        ("act_2", "sms.delivered"),
        ("act_2", "sms.sent"),
        ("act_3", "push.delivered"),
        ("act_3", "push.opened"),
        ("act_3", "push.sent"),
    ]
    for record, event in zip(records, events, strict=True):
        assert record.key is not None
        assert event.identifiers.items() == [("customer_key", record.key.decode())]  # claims no identity
        assert (event.campaign, event.journey, event.source) == ("welcome", "welcome", "sandbox")
        assert event.event_id == f"sbx-{event.action_id}-{event.type.split('.')[1]}"

    # A connector of another group reads everything again: the same event ids (the customer's
    # dedupe drops them); the first group committed its offsets, so it reads nothing new.
    again = SandboxConnector(settings, group_id=f"{settings.app_id}-sbx-2")
    with _running(again):
        wait_until(lambda: again.stats.received >= 5, timeout=60, what="the replaying connector")
    replayed = read_topic(settings.bootstrap_servers, settings.topics.raw_events, expect=14, timeout=30)
    ids = [parse_event(r.value or b"").event_id for r in replayed]
    assert set(ids) == {e.event_id for e in events}
    resumed = SandboxConnector(settings, group_id=f"{settings.app_id}-sbx")
    _publish(settings, [_action(4, "email", "cust-cy")])
    with _running(resumed):
        wait_until(lambda: resumed.stats.received >= 1, timeout=60, what="the resumed connector")
    assert resumed.stats.received == 1


def test_receipts_for_an_anonymous_customer_then_a_sign_in_make_one_profile(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Issue 23 on the real broker: the sandbox's receipts for an anonymous customer (keyed by its email)
    name it by ``customer_key``, so its sign-in still merges it: one profile with the receipts'
    engagement. With the fast path on: the known customer's later receipts go straight, and receipts
    for a key nobody has are dropped and counted."""
    settings = unique_settings(kafka_bootstrap, tmp_path / "worker", fast_path=True)
    create_topics(settings)
    ann = "email:ann@example.com"
    base = datetime.now(UTC) - timedelta(minutes=10)

    def event(eid: str, etype: str, ids: dict[str, str], at: datetime) -> bytes:
        body = {"event_id": eid, "type": etype, "identifiers": ids, "occurred_at": at.isoformat()}
        return orjson.dumps({**body, "source": "test"})

    def action(n: int, customer: str, at: datetime) -> ChannelAction:
        return _action(n, "email", customer).model_copy(update={"created_at": at})

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    script = SandboxScript(customers={ann: ("opened",), "cust-ann": ("opened",)})
    connector = SandboxConnector(settings, script=script)

    def customer(key: str) -> tuple[int, dict[str, Any]]:
        status, body = worker.get_json(f"/customers/{key}/")
        return status, body

    def opens(key: str) -> int:
        status, body = customer(key)
        return int(body["profile"].get("engagement", {}).get("email.opened", [0])[0]) if status == 200 else 0

    try:
        worker.start().wait_ready()
        with _running(connector):
            produce(settings, [event("v1", "page.viewed", {"email": "ann@example.com"}, base)])
            wait_until(lambda: customer(ann)[0] == 200, timeout=60, what="the anonymous customer")
            # an action for the anonymous customer, and one for a key nobody has (an erased customer's)
            _publish(
                settings,
                [action(1, ann, base + timedelta(minutes=1)), action(2, "email:gone@example.com", base)],
            )
            wait_until(lambda: opens(ann) == 1, timeout=60, what="the receipts on the anonymous customer")
            status, identity = worker.get_json(f"/identities/{ann}/")
            assert (status, identity["customer_key"]) == (200, ann)
            assert "customer_id" not in identity["identities"], "a receipt makes no key known"

            signed_in = {"customer_id": "cust-ann", "email": "ann@example.com"}
            produce(settings, [event("s1", "account.created", signed_in, base + timedelta(minutes=5))])
            wait_until(lambda: opens("cust-ann") == 1, timeout=60, what="the merge into the known customer")
            # the known customer's claims reach ingest: its next receipts can take the fast path
            wait_until(
                lambda: _counter(worker, "orchestrator_claims_read_total") >= 2, timeout=30, what="the claims"
            )
            _publish(settings, [action(3, "cust-ann", base + timedelta(minutes=6))])
            wait_until(lambda: opens("cust-ann") == 2, timeout=60, what="the known customer's receipts")
            moved = customer(ann)
            inspected = inspect_live(settings, worker, ann)
            fast = _counter(worker, "orchestrator_fast_path_events_total")
            unknown = _identity(worker, "dropped_unknown")
    finally:
        worker.stop()
    assert moved[0] == 404
    assert moved[1]["moved_to"] == "cust-ann", "the anonymous customer was merged: one profile"
    assert inspected["customer_key"] == "cust-ann"
    assert ann in inspected["aliases"]
    assert inspected["identities"] == {"customer_id": ["cust-ann"], "email": ["ann@example.com"]}, "no key"
    assert inspected["profile"]["engagement"]["email"]["opened"] == 2
    assert inspected["profile"]["engagement"]["email"]["delivered"] == 2
    assert fast >= 3, "the known customer's three receipts came straight"
    assert unknown == 2, "the sent and delivered receipts of a key nobody has were dropped"


def _counter(worker: WorkerProcess, name: str) -> float:
    return sum(v for (sample, _), v in scrape(worker)[1].items() if sample == name)


def _identity(worker: WorkerProcess, kind: str) -> float:
    samples = scrape(worker)[1].items()
    name = "orchestrator_identity_operations_total"
    return sum(v for (sample, labels), v in samples if sample == name and ("kind", kind) in labels)
