"""A campaign on the real broker (issue 22): at 10:00 local time across two time zones (and the default
zone for customers whose zone is unknown), through the policy (an opt-out subscription group), released
at a pace by a worker that is killed in the middle of the release. The worker that takes over releases
what was not done; the actions are simulate's, none missing, none twice with other content."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from orchestrator.kafka.local_broker import free_port
from orchestrator.kafka.topics import create_topics
from orchestrator.simulate import simulate_file
from orchestrator.testing import WorkerProcess, unique_settings, wait_until
from tests.integration.runtime_helpers import ActionReader, assert_exactly, by_id, deploy, produce

pytestmark = pytest.mark.integration

ZONES = ("Europe/Berlin", "America/New_York", None)
CUSTOMERS = 250
"""Every 25th a silver member (not in the audience), the others VIPs; every tenth unsubscribed from
product news (the policy refuses their send)."""

POLICY = """kind: policy
id: groups
version: 1
subscription_groups:
  - {id: product_news, channel: email, default: opt_out, description: "Product news, unless one opts out"}
"""
VIP = """kind: segment
id: vip
version: 1
condition: profile.tier == "gold"
"""


def _campaign(day: str) -> str:
    return f"""kind: campaign
id: preview
version: 1
audience: {{segment: vip}}
send: {{channel: email, template: preview_v1, subscription_group: product_news}}
schedule: {{date: {day}, local_time: "10:00", default_timezone: Asia/Tokyo}}
deliver_within: 4h
pace: 60
"""


def _event(customer: str, n: int, etype: str, at: datetime, props: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{customer}-{n}",
            "type": etype,
            "identifiers": {"customer_id": customer, "email": f"{customer}@example.com"},
            "occurred_at": at.isoformat(),
            "source": "test",
            "properties": props,
        }
    )


def _stories(t0: datetime) -> list[bytes]:
    """Customers with marketing consent on email, VIPs (but every 25th), in three zones."""
    lines = []
    for i in range(CUSTOMERS):
        c = f"c{i:03d}"
        zone = ZONES[i % 3]
        profile: dict[str, object] = {"tier": "silver" if i % 25 == 24 else "gold"}
        if zone:
            profile["timezone"] = zone
        at = t0 + timedelta(seconds=i)
        lines.append(_event(c, 0, "profile.updated", at, profile))
        consent = {"channel": "email", "category": "marketing", "granted": True}
        lines.append(_event(c, 1, "consent.changed", at + timedelta(minutes=5), consent))
        if i % 10 == 3:
            unsubscribed = {"group": "product_news", "subscribed": False}
            lines.append(_event(c, 2, "subscription.changed", at + timedelta(minutes=6), unsubscribed))
    return lines


def _partitions_released(*workers: WorkerProcess) -> set[str]:
    logs = "".join(w.log_path.read_text(errors="replace") for w in workers if w.log_path.exists())
    return set(re.findall(r"released on partition (\d+)", logs))


def _released(worker: WorkerProcess) -> bool:
    return worker.log_path.exists() and "released on partition" in worker.log_path.read_text(errors="replace")


@pytest.mark.timeout(300)
def test_a_local_time_campaign_across_zones_survives_a_kill_in_the_middle_of_its_release(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    folder = tmp_path / "journeys"
    folder.mkdir()
    t0 = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = (t0 + timedelta(days=1)).date().isoformat()  # (10:00 of that day is past in every zone)
    for name, text in (("vip.yaml", VIP), ("preview.yaml", _campaign(day)), ("policy.yaml", POLICY)):
        (folder / name).write_text(text)
    events = _stories(t0)
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(events) + b"\n")
    out = tmp_path / "actions.jsonl"
    result = simulate_file(
        folder,
        events_file,
        out_path=out,
        until_ms=int(time.time() * 1000),
        policy_path=folder / "policy.yaml",
    )
    expected = by_id(orjson.loads(line) for line in out.read_bytes().splitlines())
    vips = [i for i in range(CUSTOMERS) if i % 25 != 24]
    unsubscribed = [i for i in vips if i % 10 == 3]
    assert result.campaigns["preview"] == {
        "scheduled": len(vips),
        "sent": len(vips) - len(unsubscribed),
        "unsent_not_subscribed": len(unsubscribed),
    }
    assert len(expected) == len(vips) - len(unsubscribed)
    # 10:00 in each customer's zone: Berlin, New York, and Tokyo for the unknown zone
    sent_at = {int(a["customer_id"][1:]): a["created_at"] for a in expected.values()}
    for i, at in sent_at.items():
        zone = ZoneInfo(ZONES[i % 3] or "Asia/Tokyo")
        assert datetime.fromisoformat(at).astimezone(zone).strftime("%Y-%m-%d %H:%M") == f"{day} 10:00", (
            i,
            at,
        )

    settings = unique_settings(kafka_bootstrap, tmp_path / "data", partitions=6, store="rocksdb://")
    create_topics(settings)
    deploy(settings, sorted(folder.glob("*.yaml")))
    produce(settings, events)
    env = {"ORCH_LATENESS_HOURS": "0", "ORCH_SESSION_TIMEOUT_S": "6"}

    def worker(name: str) -> WorkerProcess:
        own = settings.model_copy(update={"web_port": free_port(), "data_dir": tmp_path / name})
        return WorkerProcess(own, tmp_path / f"{name}.log", extra_env=env)

    actions = ActionReader(settings)
    try:
        first = worker("first").start()
        try:
            # one partition released (60 members a second: about 40 a partition), then a kill
            wait_until(lambda: _released(first), timeout=120, what="the first worker to release a partition")
        finally:
            first.kill()
        released = first.log_path.read_text(errors="replace").count("released on partition")
        assert released < 6, "the release was over before the kill"
        second = worker("second").start()
        try:
            second.wait_ready(timeout=120)
            assert_exactly(actions, expected)
            # the second worker releases the partitions the first had not finished: between them, all
            # six (a member's own timer may have sent its message before its partition's release)
            wait_until(
                lambda: _partitions_released(first, second) == {str(p) for p in range(6)},
                timeout=90,
                what="every partition released by one of the workers",
            )
        finally:
            second.stop()
    finally:
        actions.close()
    assert "released on partition" in second.log_path.read_text(errors="replace")
