"""The sandbox connector on a real broker: actions in, sent/delivered (and opens) out, no duplicates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from orchestrator.config import Settings
from orchestrator.connectors import ChannelLimiter, SandboxConnector, SandboxScript
from orchestrator.contracts import ChannelAction, parse_event
from orchestrator.core.policy import RateLimit
from orchestrator.testing import read_topic, wait_until

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
