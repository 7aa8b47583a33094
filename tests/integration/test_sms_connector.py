"""The SMS connector on real parts: the session's Kafka broker and a local server that answers like
Twilio's Messages API (basic auth, form fields checked) — no provider is ever called."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.config import Settings
from orchestrator.connectors.mobile import SmsConnector
from orchestrator.contracts import ChannelAction, DeadLetter, parse_event
from orchestrator.kafka.local_broker import free_port
from orchestrator.testing import read_topic, wait_until
from orchestrator.testing.worker import settings_env
from tests.integration.http_providers import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SENDER,
    TwilioServer,
    committed_everything,
    publish,
    running,
    twilio_error,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CALLBACK = "https://hooks.shop.example/twilio/status"


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    with TwilioServer() as server:
        yield server


@pytest.fixture
def sms_settings(settings: Settings, twilio: TwilioServer) -> Settings:
    return Settings.model_validate(
        settings.model_dump()
        | {
            "twilio_base_url": twilio.url,
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from": SENDER,
            "twilio_status_callback_url": CALLBACK,
            "twilio_timeout_s": 5.0,
            "connector_web_port": free_port(),
            "connector_backoff_s": 0.05,
            "connector_backoff_max_s": 5.0,
            "commit_interval_s": 0.2,
        }
    )


def sms(n: int, customer: str, phone: str, **extra: Any) -> ChannelAction:
    return ChannelAction.model_validate(
        {
            "action_id": f"act_{n}",
            "channel": "sms",
            "category": "marketing",
            "customer_id": customer,
            "recipient": phone,
            "journey_id": "welcome",
            "journey_version": 1,
            "step_id": f"s{n}",
            "template_id": "welcome_sms_v1",
            "personalization": {"body": f"Hello {n}"},
            "created_at": datetime(2026, 1, 1, 10, n, tzinfo=UTC),
            **extra,
        }
    )


def test_sms_go_out_as_twilio_form_requests_with_auth_and_offsets_are_committed(
    sms_settings: Settings, twilio: TwilioServer
) -> None:
    s = sms_settings
    publish(
        s,
        "sms",
        [
            sms(1, "cust-ada", "+15551230001"),
            sms(2, "cust-bob", "+44 20 7946 0018"),
            sms(3, "cust-cy", "+33612345678", category="transactional"),
        ],
    )
    connector = SmsConnector(s)
    with running(connector):
        wait_until(lambda: connector.stats.sent == 3, timeout=60, what="three SMS sent")
        with urllib.request.urlopen(f"http://127.0.0.1:{s.connector_web_port}/metrics", timeout=10) as page:
            metrics = page.read().decode()
        assert 'orchestrator_connector_sent_total{channel="sms"} 3.0' in metrics
    requests = twilio.received("/Messages.json")
    assert len(requests) == 3  # exactly one request per action: no retry, no duplicate
    assert all(r.status == 201 for r in requests)
    assert all(r.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json" for r in requests)
    assert all(r.headers["Content-Type"] == "application/x-www-form-urlencoded" for r in requests)
    forms = {f["To"]: f for f in twilio.accepted()}
    assert sorted(forms) == ["+15551230001", "+33612345678", "+442079460018"]
    ada = forms["+15551230001"]
    assert sorted(ada) == ["Body", "From", "StatusCallback", "To"]
    assert (ada["From"], ada["Body"]) == (SENDER, "Hello 1")
    callback = urlsplit(ada["StatusCallback"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == CALLBACK
    assert parse_qs(callback.query) == {"action_id": ["act_1"], "customer_key": ["cust-ada"]}
    assert not connector.stats.dead
    assert committed_everything(s, "sms", connector.runtime.group_id)
    assert connector.runtime.group_id.endswith("-connector-sms")
    # each accepted message is published as sms.sent, naming its customer by key (no identity claimed)
    sent = [
        parse_event(r.value or b"") for r in read_topic(s.bootstrap_servers, s.topics.raw_events, expect=3)
    ]
    assert sorted((e.type, e.action_id, e.identifiers.customer_key) for e in sent) == [
        ("sms.sent", "act_1", "cust-ada"),
        ("sms.sent", "act_2", "cust-bob"),
        ("sms.sent", "act_3", "cust-cy"),
    ]


def test_a_429_is_retried_after_its_retry_after_and_a_400_is_dead_lettered_with_twilios_code(
    sms_settings: Settings, twilio: TwilioServer
) -> None:
    s = sms_settings
    twilio.script["+15551230002"] = [
        (429, twilio_error(429, 20429, "Too Many Requests"), {"Retry-After": "1"})
    ]
    twilio.script["+15551230003"] = [
        (400, twilio_error(400, 21211, "The 'To' number +15551230003 is not a valid phone number."), {})
    ]
    placed = publish(
        s,
        "sms",
        [
            sms(1, "cust-slow", "+15551230002"),
            sms(2, "cust-bad", "+15551230003"),
            sms(3, "cust-nophone", "ada@example.com"),  # not a phone number: render_failed, nothing sent
        ],
    )
    connector = SmsConnector(s)
    with running(connector):
        wait_until(
            lambda: connector.stats.sent == 1 and sum(connector.stats.dead.values()) == 2,
            timeout=60,
            what="one sent, two dead letters",
        )
    slow = [r for r in twilio.received("/Messages.json") if r.form()["To"] == "+15551230002"]
    assert [r.status for r in slow] == [429, 201]  # one message, one retry
    assert slow[1].at - slow[0].at >= 1.0  # waited at least Retry-After
    assert connector.stats.retries == 1
    assert len(twilio.accepted()) == 1
    assert len(twilio.received("/Messages.json")) == 3  # the bad recipient's request went out once
    assert connector.stats.dead == {"rejected": 1, "render_failed": 1}
    records = read_topic(s.bootstrap_servers, s.topics.dead_letter, expect=2)
    letters = {d.reason: d for d in (DeadLetter.model_validate_json(r.value or b"") for r in records)}
    rejected = letters["rejected"]
    assert (rejected.partition, rejected.offset, rejected.action_id, rejected.attempts) == (
        *placed[1],
        "act_2",
        1,
    )
    assert (
        "Twilio 400 error 21211: The 'To' number +15551230003 is not a valid phone number." in rejected.error
    )
    assert "E.164" in letters["render_failed"].error
    assert committed_everything(s, "sms", connector.runtime.group_id)


def test_the_command_sends_and_stops_on_sigterm(
    sms_settings: Settings, twilio: TwilioServer, tmp_path: Path
) -> None:
    s = sms_settings
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "kind: policy\nid: default\nversion: 1\nrate_limits:\n  sms: {per_second: 20, burst: 2}\n"
    )
    publish(s, "sms", [sms(1, "cust-ada", "+15551230001")])
    env = {**os.environ, **settings_env(s), "PYTHONPATH": str(ROOT)}
    secrets = ("ORCH_TWILIO_AUTH_TOKEN",)
    assert all(name in env for name in secrets)  # the token from the environment, not an option
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "connector", "sms", "--policy", str(policy)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: len(twilio.accepted()) == 1 or proc.poll() is not None, timeout=60, what="the SMS")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"account {ACCOUNT_SID} from {SENDER}; status callbacks to {CALLBACK}; rate limit 20/s" in out
    assert "1 actions read, 1 sent, 0 duplicates skipped, 0 retries, dead letters: none" in out
    assert AUTH_TOKEN not in out
