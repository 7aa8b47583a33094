"""The email connector on real parts: the session's Kafka broker, an aiosmtpd server on loopback (STARTTLS
and AUTH required, a certificate made here) and real HTTP requests to its unsubscribe endpoint."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from orchestrator.config import Settings
from orchestrator.connectors.email import EmailConnector
from orchestrator.connectors.marks import PartitionMarks, marks_key
from orchestrator.connectors.runtime import check_connector_topics
from orchestrator.connectors.unsubscribe import UnsubscribeScope, sign_token
from orchestrator.contracts import ChannelAction, DeadLetter, parse_event
from orchestrator.core.policy import RateLimit
from orchestrator.kafka.local_broker import free_port
from orchestrator.kafka.topics import create_topics, describe_topics
from orchestrator.testing import read_topic, wait_until
from orchestrator.testing.certs import CertificateSet, make_certificates
from orchestrator.testing.worker import settings_env
from tests.integration.smtp_server import PASSWORD, USER, SmtpServer

pytestmark = pytest.mark.integration

KEY = "unsubscribe-test-key-0123456789"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertificateSet:
    return make_certificates(tmp_path_factory.mktemp("smtp-certs"))


@pytest.fixture
def smtp(certs: CertificateSet) -> Iterator[SmtpServer]:
    with SmtpServer(certs) as server:
        yield server


@pytest.fixture
def email_settings(settings: Settings, smtp: SmtpServer, certs: CertificateSet) -> Settings:
    web_port = free_port()
    return Settings.model_validate(
        settings.model_dump()
        | {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_security": "starttls",
            "smtp_username": USER,
            "smtp_password": PASSWORD,
            "smtp_cafile": str(certs.ca),
            "smtp_timeout_s": 10.0,
            "email_from": "Shop News <news@shop.example>",
            "connector_web_port": web_port,
            "connector_public_url": f"http://127.0.0.1:{web_port}",
            "unsubscribe_key": KEY,
            "connector_backoff_s": 0.05,
            "connector_backoff_max_s": 0.2,
            "commit_interval_s": 0.2,
        }
    )


def action(n: int, customer: str, recipient: str, **extra: Any) -> ChannelAction:
    values: dict[str, Any] = {
        "action_id": f"act_{n}",
        "channel": "email",
        "category": "marketing",
        "customer_id": customer,
        "recipient": recipient,
        "journey_id": "welcome",
        "journey_version": 1,
        "step_id": f"s{n}",
        "template_id": f"welcome_{n}",
        "campaign": "spring",
        "personalization": {"first_name": "Ada", "subject": f"Hello {n}"},
        "created_at": datetime(2026, 1, 1, 10, n, tzinfo=UTC),
        **extra,
    }
    return ChannelAction.model_validate(values)


def publish(settings: Settings, actions: list[ChannelAction | bytes]) -> list[tuple[int, int]]:
    """Publishes to the email topic; the (partition, offset) of each."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    placed: list[tuple[int, int]] = []
    for a in actions:
        key = a.customer_id.encode() if isinstance(a, ChannelAction) else b"cust-junk"
        value = a.to_json() if isinstance(a, ChannelAction) else a
        producer.produce(
            settings.topics.action_email,
            key=key,
            value=value,
            on_delivery=lambda err, msg: placed.append((msg.partition(), msg.offset())),
        )
        producer.flush(30)
    assert len(placed) == len(actions)
    return placed


@contextmanager
def running(connector: EmailConnector) -> Iterator[EmailConnector]:
    """The connector on its own event loop in a thread; stopped (and its offsets committed) on exit."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await connector.run(box["stop"])

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    ready.wait(30)
    try:
        wait_until(
            lambda: connector.runtime.assigned or "error" in box, timeout=60, what="partitions assigned"
        )
        yield connector
    finally:
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(60)
        assert not thread.is_alive()
        if "error" in box:
            raise box["error"]


def http(url: str, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def committed_everything(settings: Settings, group: str) -> bool:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group})
    try:
        topic = settings.topics.action_email
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in committed}
        return all(committed[p] == ends[p] for p in ends if ends[p] > 0)
    finally:
        consumer.close()


def link(message: EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    assert header.startswith("<")
    assert header.endswith(">")
    return header[1:-1]


def test_mail_out_over_starttls_and_auth_then_one_click_unsubscribe_publishes_the_change(
    email_settings: Settings, smtp: SmtpServer
) -> None:
    s = email_settings
    transactional = action(3, "cust-cy", "cy@example.com", category="transactional")
    publish(
        s, [action(1, "cust-ada", "ada@example.com"), action(2, "cust-bob", "bob@example.com"), transactional]
    )
    connector = EmailConnector(s)
    with running(connector):
        wait_until(lambda: connector.stats.sent == 3, timeout=60, what="three emails sent")
        ada = smtp.mailbox.to("ada@example.com")[0]
        url = link(ada)
        assert url.startswith(f"{s.connector_public_url}/u/u1.")

        # the confirmation page changes nothing; the one-click POST publishes the change
        status, page = http(url)
        assert status == 200
        assert 'name="List-Unsubscribe" value="One-Click"' in page
        tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
        assert http(tampered)[0] == 400
        assert http(tampered, b"List-Unsubscribe=One-Click")[0] == 400
        assert http(url, b"unsubscribe=yes")[0] == 400  # not RFC 8058's body
        status, page = http(url, b"List-Unsubscribe=One-Click")
        assert (status, "You are unsubscribed" in page) == (200, True)
        group = sign_token(
            UnsubscribeScope("cust-bob", "email", group="product_news", action_id="act_2"), KEY
        )
        assert http(f"{s.connector_public_url}/u/{group}", b"List-Unsubscribe=One-Click")[0] == 200
        _, metrics = http(f"{s.connector_public_url}/metrics")
        assert 'orchestrator_connector_sent_total{channel="email"} 3.0' in metrics
        assert 'orchestrator_connector_unsubscribes_total{channel="email",outcome="done"} 2.0' in metrics
        assert 'orchestrator_connector_unsubscribes_total{channel="email",outcome="refused"} 3.0' in metrics

    received = {r.rcpt_tos[0]: r for r in smtp.mailbox.received}
    assert sorted(received) == ["ada@example.com", "bob@example.com", "cy@example.com"]
    assert all(r.tls and r.authenticated and r.mail_from == "news@shop.example" for r in received.values())
    assert ada["From"] == "Shop News <news@shop.example>"
    assert ada["To"] == "ada@example.com"
    assert ada["Subject"] == "Hello 1"
    assert ada["Message-ID"] == "<act_1@shop.example>"
    assert ada["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert ada.get_content_type() == "multipart/alternative"
    text, page = ada.get_body(("plain",)), ada.get_body(("html",))
    assert text is not None
    assert page is not None
    assert text.get_content().replace("\r\n", "\n") == f"first_name: Ada\n\nUnsubscribe: {url}\n"
    assert "<dt>first_name</dt><dd>Ada</dd>" in page.get_content()
    assert f'href="{url}"' in page.get_content()
    cy = received["cy@example.com"].message
    assert cy["List-Unsubscribe"] is None
    assert cy["Subject"] == "Hello 3"

    records = read_topic(s.bootstrap_servers, s.topics.raw_events, expect=5)
    events = [parse_event(r.value or b"") for r in records]
    # the SMTP server's 250 is the connector's own receipt: email.sent, keyed and named by customer key
    pairs = zip(records, events, strict=True)
    sent = sorted(
        (e.action_id, r.key, e.identifiers.customer_key) for r, e in pairs if e.type == "email.sent"
    )
    assert sent == [
        ("act_1", b"cust-ada", "cust-ada"),
        ("act_2", b"cust-bob", "cust-bob"),
        ("act_3", b"cust-cy", "cust-cy"),
    ]
    assert all(e.event_id == f"rcpt-{e.action_id}-sent" and e.campaign == "spring" and e.journey == "welcome"
               for e in events if e.type == "email.sent")  # fmt: skip
    by_type = {e.type: e for e in events}
    consent, sub = by_type["consent.changed"], by_type["subscription.changed"]
    assert consent.identifiers.customer_key == "cust-ada"
    assert consent.action_id == "act_1"
    assert consent.properties == {
        "channel": "email",
        "category": "marketing",
        "granted": False,
        "via": "list_unsubscribe",
    }
    assert sub.identifiers.customer_key == "cust-bob"
    assert sub.properties == {"group": "product_news", "subscribed": False, "via": "list_unsubscribe"}
    assert connector.stats.sent == 3
    assert not connector.stats.dead
    assert committed_everything(s, connector.runtime.group_id)


def test_refused_for_now_twice_then_sent_once_refused_for_good_dead_lettered(
    email_settings: Settings, smtp: SmtpServer
) -> None:
    s = email_settings
    smtp.mailbox.data_replies["slow@example.com"] = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    smtp.mailbox.rcpt_replies["gone@example.com"] = ["550 5.1.1 No such user"]
    placed = publish(
        s,
        [
            action(1, "cust-slow", "slow@example.com"),
            action(2, "cust-gone", "gone@example.com"),
            b"{not an action",
            action(4, "cust-ok", "ok@example.com"),
        ],
    )
    connector = EmailConnector(s)
    with running(connector):
        wait_until(
            lambda: connector.stats.sent == 2 and sum(connector.stats.dead.values()) == 2,
            timeout=60,
            what="two sent, two dead letters",
        )
    counts = [len(smtp.mailbox.to(a)) for a in ("slow@example.com", "gone@example.com", "ok@example.com")]
    assert counts == [1, 0, 1]
    assert connector.stats.retries == 2
    assert connector.stats.attempts == 5
    records = read_topic(s.bootstrap_servers, s.topics.dead_letter, expect=2)
    letters = {d.reason: d for d in (DeadLetter.model_validate_json(r.value or b"") for r in records)}
    rejected, invalid = letters["rejected"], letters["invalid_action"]
    partition, offset = placed[1]
    assert (rejected.topic, rejected.partition, rejected.offset) == (s.topics.action_email, partition, offset)
    assert rejected.action_id == "act_2"
    assert rejected.attempts == 1
    assert rejected.error.startswith(f"{s.topics.action_email}[{partition}]@{offset} act_2: SMTP 550 at RCPT")
    assert orjson.loads(rejected.original_value())["recipient"] == "gone@example.com"
    assert invalid.original_value() == b"{not an action"
    assert "not JSON" in invalid.error
    assert committed_everything(s, connector.runtime.group_id)
    m = connector.metrics.registry
    retried = m.get_sample_value(
        "orchestrator_connector_retries_total", {"channel": "email", "kind": "message"}
    )
    failed = m.get_sample_value(
        "orchestrator_connector_failed_total", {"channel": "email", "reason": "rejected"}
    )
    assert (retried, failed) == (2, 1)


def test_marks_survive_a_restart_and_a_crash_between_mark_and_answer_is_not_sent_again(
    email_settings: Settings, smtp: SmtpServer
) -> None:
    s = email_settings
    later = datetime.now(UTC) + timedelta(seconds=3)
    first = [
        action(1, "cust-ada", "ada@example.com", not_before=later),
        action(2, "cust-ada", "ada@example.com"),
        action(1, "cust-ada", "ada@example.com", not_before=later),  # a duplicate the worker sent again
    ]
    publish(s, list(first))
    connector = EmailConnector(s)
    with running(connector):
        wait_until(
            lambda: connector.stats.sent == 2 and connector.stats.duplicates == 1, timeout=60, what="sent"
        )
    subjects = [m["Subject"] for m in smtp.mailbox.to("ada@example.com")]
    assert subjects == ["Hello 2", "Hello 1"]  # the later one waited for its not_before; the other went on
    arrived = smtp.mailbox.received[1]
    assert arrived.message["Message-ID"] == "<act_1@shop.example>"

    # a crash between the mark "sending" and the server's answer, for act_3: its mark is all that is left
    crashed = action(3, "cust-ada", "ada@example.com")
    [(partition, _)] = publish(s, [crashed])
    marks = PartitionMarks(partition)
    key = marks_key("email", "cust-ada")
    producer = Producer({"bootstrap.servers": s.bootstrap_servers})
    # the marks of act_1 and act_2 are on the topic; append act_3 "sending" to that customer's value
    restarted_marks = read_topic(s.bootstrap_servers, s.topics.connector_marks)
    for r in restarted_marks:
        if r.partition == partition:
            marks.apply(r.key, r.value, r.offset)
    assert marks.state(key, "act_1") == marks.state(key, "act_2") == "sent"
    value = marks.with_mark(key, "act_3", "sending")
    producer.produce(s.topics.connector_marks, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0

    # a new consumer group reads every action again (lost offsets, a reset): the marks decide
    again = EmailConnector(s, group_id=f"{s.app_id}-replay")
    with running(again):
        wait_until(
            lambda: sum(again.stats.dead.values()) == 1 and again.stats.duplicates == 3,
            timeout=60,
            what=f"replay {again.stats}",
        )
    assert again.stats.sent == 0
    assert again.stats.dead == {"unconfirmed": 1}
    assert smtp.mailbox.count() == 2
    [record] = read_topic(s.bootstrap_servers, s.topics.dead_letter, expect=1)
    letter = DeadLetter.model_validate_json(record.value or b"")
    assert (letter.reason, letter.action_id) == ("unconfirmed", "act_3")
    assert committed_everything(s, again.runtime.group_id)


def test_the_command_sends_serves_its_metrics_and_stops_on_sigterm(
    email_settings: Settings, smtp: SmtpServer, tmp_path: Path
) -> None:
    s = email_settings
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "kind: policy\nid: default\nversion: 1\nrate_limits:\n  email: {per_second: 50, burst: 5}\n"
    )
    publish(s, [action(1, "cust-ada", "ada@example.com")])
    env = {**os.environ, **settings_env(s), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "connector", "email", "--policy", str(policy)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: smtp.mailbox.count() == 1 or proc.poll() is not None, timeout=60, what="the email")
        assert proc.poll() is None
        wait_until(
            lambda: "orchestrator_connector_sent_total" in http(f"{s.connector_public_url}/metrics")[1],
            what="metrics",
        )
        _, metrics = http(f"{s.connector_public_url}/metrics")
        share = 'orchestrator_connector_rate_per_second{channel="email"} 50.0'  # one replica: all of it
        assert share in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "rate limit 50/s shared by the replicas" in out
    assert "1 actions read, 1 sent, 0 duplicates skipped, 0 retries, dead letters: none" in out
    assert smtp.mailbox.to("ada@example.com")[0]["Message-ID"] == "<act_1@shop.example>"


def test_two_replicas_share_the_partitions_and_the_rate_limit_and_send_each_action_once(
    email_settings: Settings, smtp: SmtpServer
) -> None:
    s = email_settings
    limit = RateLimit("email", 30.0, 6)
    first = EmailConnector(s, limit=limit)
    second = EmailConnector(s.model_copy(update={"connector_web_port": free_port()}), limit=limit)

    def shares() -> list[float | None]:
        name = "orchestrator_connector_rate_per_second"
        return [c.metrics.registry.get_sample_value(name, {"channel": "email"}) for c in (first, second)]

    customers = [f"cust-{n}" for n in range(12)]
    publish(s, [action(n, c, f"{c}@example.com") for n, c in enumerate(customers)])
    with running(first):
        wait_until(lambda: first.stats.sent >= 1, timeout=60, what="the first replica sending")
        assert shares()[0] == 30.0
        with running(second):
            wait_until(
                lambda: (
                    len(first.runtime.partitions) + len(second.runtime.partitions) == s.partitions
                    and len(second.runtime.partitions) > 0
                ),
                timeout=60,
                what="the partitions shared",
            )
            assert sorted(x or 0.0 for x in shares()) == [
                10.0,
                20.0,
            ]  # 1 and 2 of 3 partitions: the shares add up to 30/s
            more = [action(n, c, f"{c}@example.com") for n, c in enumerate(customers, start=20)]
            publish(s, list(more))
            wait_until(lambda: smtp.mailbox.count() == 24, timeout=60, what="24 emails")
            assert second.stats.sent > 0
        wait_until(
            lambda: len(first.runtime.partitions) == s.partitions, timeout=60, what="all partitions back"
        )
        assert shares()[0] == 30.0
    ids = sorted(str(r.message["Message-ID"]) for r in smtp.mailbox.received)
    assert len(ids) == len(set(ids)) == 24  # each action once, across the rebalances
    assert first.stats.sent + second.stats.sent == 24
    assert committed_everything(s, first.runtime.group_id)


def test_topics_create_makes_the_marks_topic_like_the_action_topics_and_leaves_it_alone_after(
    settings: Settings,
) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    again = {spec.name: state for spec, state in create_topics(settings)}
    assert again[settings.topics.connector_marks] == "exists"  # nothing to alter: compact,delete as made
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    resource = ConfigResource(ConfigResource.Type.TOPIC, settings.topics.connector_marks)
    configs = {k: v.value for k, v in admin.describe_configs([resource])[resource].result(10).items()}
    assert configs["cleanup.policy"] == "compact,delete"
    assert configs["retention.ms"] == str(7 * 24 * 3600 * 1000)
    sizes = describe_topics(settings, [settings.topics.connector_marks, settings.topics.action_email])
    assert set(sizes.values()) == {settings.partitions}
    check_connector_topics(settings, "email")


def test_a_deployed_template_renders_the_mail_and_a_missing_variable_is_dead_lettered(
    email_settings: Settings, smtp: SmtpServer
) -> None:
    """Templates deployed on the journeys topic (docs/templates.md): the mail is the template rendered
    with the action's personalization, names the version, and keeps the unsubscribe link; an action
    whose template needs a variable it does not give is dead-lettered, never half-rendered."""
    from orchestrator.kafka.deploy import prepare_deployments, publish_deployments

    s = email_settings
    folder = Path(s.data_dir) / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "receipt.yaml").write_text(
        "kind: template\nid: receipt_v1\nversion: 1\nchannel: email\n"
        "variables:\n  order_id: {required: true}\n"
        'subject: "Your order {{ order_id }}"\ntext: "Order {{ order_id }} is on its way."\n'
    )
    publish_deployments(
        s, prepare_deployments([ROOT / "templates" / "welcome_email_v1.yaml", folder / "receipt.yaml"],
                                    datetime(2025, 1, 1, tzinfo=UTC))
    )  # fmt: skip
    welcome = action(1, "cust-ada", "ada@example.com", template_id="welcome_email_v1")
    no_order = action(2, "cust-bob", "bob@example.com", template_id="receipt_v1", category="transactional")
    placed = publish(s, [welcome, no_order])
    connector = EmailConnector(s)
    with running(connector):
        wait_until(
            lambda: connector.stats.sent == 1 and sum(connector.stats.dead.values()) == 1,
            timeout=60,
            what="one mail sent, one action dead-lettered",
        )
    ada = smtp.mailbox.to("ada@example.com")[0]
    assert ada["Subject"] == "Welcome aboard, Ada!"
    assert ada["X-Orchestrator-Template"] == "welcome_email_v1 v1"
    text, page = ada.get_body(("plain",)), ada.get_body(("html",))
    assert text is not None
    assert page is not None
    url = link(ada)
    assert text.get_content().replace("\r\n", "\n").startswith("Hello Ada,\n\nThanks for creating")
    assert text.get_content().replace("\r\n", "\n").endswith(f"Unsubscribe: {url}\n")
    assert "<b>for free</b>" in page.get_content()
    assert f'href="{url}"' in page.get_content()
    assert smtp.mailbox.to("bob@example.com") == []
    [dead] = [
        DeadLetter.model_validate_json(r.value or b"")
        for r in read_topic(s.bootstrap_servers, s.topics.dead_letter, expect=1)
    ]
    assert dead.reason == "render_failed"
    assert dead.action_id == "act_2"
    assert (dead.partition, dead.offset) == placed[1]
    assert "order_id" in dead.error
