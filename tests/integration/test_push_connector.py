"""The push connector on real parts: the session's Kafka broker, a service-account file with a key made
here, and a local server that answers like Google's token server (the assertion's signature and claims
checked) and FCM HTTP v1 (the bearer token checked) — no provider is ever called."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import Settings
from orchestrator.connectors.mobile import PushConnector
from orchestrator.contracts import ChannelAction, DeadLetter
from orchestrator.kafka.local_broker import free_port
from orchestrator.testing import read_topic, wait_until
from orchestrator.testing.service_account import make_service_account
from orchestrator.testing.worker import settings_env
from tests.integration.http_providers import UNREGISTERED, FcmServer, committed_everything, publish, running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fcm(tmp_path: Path) -> Iterator[FcmServer]:
    with FcmServer() as server:
        server.account = make_service_account(tmp_path / "sa", server.token_uri, project_id="shop-test")
        yield server


@pytest.fixture
def push_settings(settings: Settings, fcm: FcmServer) -> Settings:
    assert fcm.account is not None
    return Settings.model_validate(
        settings.model_dump()
        | {
            "fcm_base_url": fcm.url,
            "fcm_credentials_file": str(fcm.account.path),
            "fcm_timeout_s": 5.0,
            "connector_web_port": free_port(),
            "connector_backoff_s": 0.05,
            "connector_backoff_max_s": 1.0,
            "commit_interval_s": 0.2,
        }
    )


def push(n: int, customer: str, device: str, **extra: Any) -> ChannelAction:
    return ChannelAction.model_validate(
        {
            "action_id": f"act_{n}",
            "channel": "push",
            "category": "marketing",
            "customer_id": customer,
            "recipient": device,
            "journey_id": "cart",
            "journey_version": 1,
            "step_id": f"s{n}",
            "template_id": "cart_push_v2",
            "personalization": {"title": f"Cart {n}", "body": "Still there?", "items": n},
            "created_at": datetime(2026, 1, 1, 10, n, tzinfo=UTC),
            **extra,
        }
    )


def test_one_token_for_many_sends_a_401_refreshes_it_once_and_a_stale_token_is_dead_lettered(
    push_settings: Settings, fcm: FcmServer
) -> None:
    s = push_settings
    publish(s, "push", [push(n, f"cust-{n}", f"device-{n}") for n in range(1, 5)])
    connector = PushConnector(s)
    with running(connector):
        wait_until(lambda: connector.stats.sent == 4, timeout=60, what="four pushes sent")
        assert fcm.exchanges() == 1  # one token for every send

        fcm.script["device-5"] = ["revoke"]  # the server forgets its tokens: the next send gets a 401
        fcm.script["device-6"] = [UNREGISTERED]
        placed = publish(s, "push", [push(5, "cust-5", "device-5"), push(6, "cust-6", "device-6")])
        wait_until(
            lambda: connector.stats.sent == 5 and sum(connector.stats.dead.values()) == 1,
            timeout=60,
            what="the fifth sent after a refresh, the sixth dead-lettered",
        )
        registry = connector.metrics.registry
        gone = registry.get_sample_value(
            "orchestrator_connector_failed_total", {"channel": "push", "reason": "unregistered"}
        )
        assert gone == 1.0
    assert fcm.exchanges() == 2  # the 401 refreshed the token once
    sends = fcm.received("messages:send")
    fifth = [r for r in sends if r.json()["message"]["token"] == "device-5"]
    assert [r.status for r in fifth] == [401, 200]
    assert fifth[0].headers["Authorization"] != fifth[1].headers["Authorization"]
    assert connector.stats.retries == 0  # the refresh is inside one provider call
    assert all(r.path == "/v1/projects/shop-test/messages:send" for r in sends)
    assert all(r.headers["Content-Type"].startswith("application/json") for r in sends)
    first = next(m for m in fcm.accepted() if m["token"] == "device-1")
    assert first == {
        "token": "device-1",
        "notification": {"title": "Cart 1", "body": "Still there?"},
        "data": {"action_id": "act_1", "items": "1"},
    }
    assert sorted(m["token"] for m in fcm.accepted()) == [f"device-{n}" for n in range(1, 6)]
    [record] = read_topic(s.bootstrap_servers, s.topics.dead_letter, expect=1)
    letter = DeadLetter.model_validate_json(record.value or b"")
    assert (letter.reason, letter.action_id, letter.attempts) == ("unregistered", "act_6", 1)
    assert (letter.partition, letter.offset) == placed[1]
    assert "FCM 404 UNREGISTERED" in letter.error
    assert committed_everything(s, "push", connector.runtime.group_id)


def test_a_restart_that_reads_everything_again_sends_nothing_twice(
    push_settings: Settings, fcm: FcmServer
) -> None:
    s = push_settings
    fcm.script["device-3"] = [(503, None, {"Retry-After": "0"}), (500, None, {})]  # two failures, then sent
    publish(s, "push", [push(n, f"cust-{n}", f"device-{n}") for n in range(1, 4)])
    first = PushConnector(s)
    with running(first):
        wait_until(lambda: first.stats.sent == 3, timeout=60, what="three pushes sent")
    assert first.stats.retries == 2
    assert len(fcm.accepted()) == 3

    # lost offsets (a new group reads every action again) and the worker sending one again: the marks decide
    publish(s, "push", [push(2, "cust-2", "device-2"), push(4, "cust-4", "device-4")])
    again = PushConnector(s, group_id=f"{s.app_id}-replay")
    with running(again):
        wait_until(
            lambda: again.stats.sent == 1 and again.stats.duplicates == 4,
            timeout=60,
            what=f"replay {again.stats}",
        )
    assert sorted(m["token"] for m in fcm.accepted()) == ["device-1", "device-2", "device-3", "device-4"]
    assert not again.stats.dead
    assert committed_everything(s, "push", again.runtime.group_id)


def test_the_command_sends_and_stops_on_sigterm(
    push_settings: Settings, fcm: FcmServer, tmp_path: Path
) -> None:
    s = push_settings
    assert fcm.account is not None
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "kind: policy\nid: default\nversion: 1\nrate_limits:\n  push: {per_second: 40, burst: 4}\n"
    )
    publish(s, "push", [push(1, "cust-1", "device-1")])
    env = {**os.environ, **settings_env(s), "PYTHONPATH": str(ROOT)}
    env.pop("ORCH_FCM_CREDENTIALS_FILE")  # from the option instead
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "connector", "push", "--policy", str(policy),
         "--credentials", str(fcm.account.path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: len(fcm.accepted()) == 1 or proc.poll() is not None, timeout=60, what="the push")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"project shop-test as {fcm.account.client_email}; rate limit 40/s shared by the replicas" in out
    assert "1 actions read, 1 sent, 0 duplicates skipped, 0 retries, dead letters: none" in out
    assert "PRIVATE KEY" not in out
