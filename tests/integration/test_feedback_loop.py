"""The loop closed on a real broker: a worker sends the welcome email, the sandbox connector delivers
it and the customer opens it, the open flows back through the raw topic, and the journey waiting for
*this* email's open ends without the SMS; the engagement lands in the profile."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.connectors import ChannelLimiter, SandboxConnector, SandboxScript
from orchestrator.testing import WorkerProcess, wait_until
from tests.integration.runtime_helpers import JOURNEYS, ActionReader, deploy, produce

pytestmark = pytest.mark.integration


def test_sandbox_open_ends_the_wait_and_suppresses_the_sms(settings: Settings, worker: WorkerProcess) -> None:
    deploy(settings, [JOURNEYS / "welcome.yaml", JOURNEYS / "policy.yaml"])
    wait_until(lambda: worker.get_json("/journeys/")[1]["policies"], what="journey and policy loaded")
    now = datetime.now(UTC).isoformat()
    ids = {"customer_id": "loop-1", "email": "loop@example.com", "phone": "+15550009999"}
    grants = [
        {"event_id": f"loop-consent-{ch}", "type": "consent.changed", "identifiers": ids, "occurred_at": now,
         "source": "test", "properties": {"channel": ch, "category": "marketing", "granted": True}}
        for ch in ("email", "sms")
    ]  # fmt: skip
    signup = {"event_id": "loop-signup", "type": "account.created", "identifiers": ids, "occurred_at": now,
              "source": "test"}  # fmt: skip
    produce(settings, [orjson.dumps(e) for e in (*grants, signup)])
    connector = SandboxConnector(settings, limiter=ChannelLimiter({}), script=SandboxScript(open_rate=1.0))
    stop = threading.Event()
    thread = threading.Thread(target=connector.run, args=(stop,), kwargs={"poll_s": 0.2}, daemon=True)
    thread.start()
    actions = ActionReader(settings)
    try:

        def opened() -> dict[str, object] | None:
            status, body = worker.get_json("/customers/loop-1/")
            if status != 200 or body["profile"].get("engagement", {}).get("email.opened") is None:
                return None
            return body if not body["instances"] else None

        body = wait_until(opened, timeout=60, what="the open to end the welcome journey")
        actions.settle(2.0)
    finally:
        stop.set()
        thread.join(30)
        actions.close()
    assert [a["channel"] for a in actions.records] == ["email"], "the opened email means no SMS"
    email = actions.records[0]
    campaigns = body["profile"]["campaign_engagement"]
    assert "welcome" in campaigns
    assert connector.stats.delivered >= 1
    assert email["template_id"] == "welcome_email_v1"
