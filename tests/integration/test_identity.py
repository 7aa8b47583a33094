"""Identity stitching on the real broker (docs/identity.md): a visitor who signs in mid-journey,
two customers sharing a device, a consent change sent under another identifier, and erasure —
the same actions as `orchestrator simulate` gives, and nothing of an erased customer left behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.testing import WorkerProcess, read_topic, wait_until
from tests.integration.runtime_helpers import (
    JOURNEYS,
    ActionReader,
    by_id,
    deploy,
    inspect_live,
    produce,
    simulate,
)

pytestmark = pytest.mark.integration


def _event(eid: str, etype: str, ids: dict[str, str], at: str, **props: Any) -> bytes:
    body = {"event_id": eid, "type": etype, "identifiers": ids, "occurred_at": at, "source": "test"}
    return orjson.dumps({**body, "properties": props})


def _events() -> list[bytes]:
    cart = {"item_count": 2, "total": 50}
    events = [
        # a visitor fills a cart, then signs up: one customer, the reminder goes to the known address
        _event("i1", "cart.updated", {"anonymous_id": "anon-9"}, "2025-03-10T10:00:00Z", **cart),
        _event(
            "i2",
            "account.created",
            {"customer_id": "cust-9", "email": "nine@example.com", "anonymous_id": "anon-9"},
            "2025-03-10T10:20:00Z",
        ),
        _event("i3", "page.viewed", {"anonymous_id": "anon-9"}, "2025-03-10T10:30:00Z"),
        # two customers on one tablet stay two customers
        _event("i4", "page.viewed", {"customer_id": "cust-a", "device_id": "tablet"}, "2025-03-10T10:00:00Z"),
        _event("i5", "page.viewed", {"customer_id": "cust-b", "device_id": "tablet"}, "2025-03-10T10:05:00Z"),
        # consent given and taken back under the phone number and the email, not the customer_id
        _event(
            "i6",
            "account.created",
            {"customer_id": "cust-s", "email": "s@example.com", "phone": "+15550001"},
            "2025-03-10T09:00:00Z",
        ),
        _event(
            "i7",
            "consent.changed",
            {"phone": "+15550001"},
            "2025-03-10T09:01:00Z",
            channel="sms",
            category="marketing",
            granted=True,
        ),
        _event(
            "i8",
            "account.created",
            {"customer_id": "cust-t", "email": "t@example.com", "phone": "+15550002"},
            "2025-03-10T09:00:00Z",
        ),
        _event(
            "i9",
            "consent.changed",
            {"phone": "+15550002"},
            "2025-03-10T09:01:00Z",
            channel="sms",
            category="marketing",
            granted=True,
        ),
        _event(
            "i10",
            "consent.changed",
            {"email": "t@example.com"},
            "2025-03-10T12:00:00Z",
            channel="sms",
            category="marketing",
            granted=False,
        ),
        # a visitor who signs up, then is erased; a late event of the erased email revives nothing
        _event("i11", "page.viewed", {"anonymous_id": "anon-e"}, "2025-03-10T09:00:00Z"),
        _event(
            "i12",
            "cart.updated",
            {"customer_id": "cust-e", "email": "eve@erased.example", "anonymous_id": "anon-e"},
            "2025-03-10T09:05:00Z",
            item_count=1,
            total=10,
        ),
        _event("i13", "customer.erased", {"customer_id": "cust-e"}, "2025-03-10T09:10:00Z"),
        _event("i14", "page.viewed", {"email": "eve@erased.example"}, "2025-03-10T09:20:00Z"),
        _event("i15", "page.viewed", {"anonymous_id": "anon-e"}, "2025-03-10T09:25:00Z"),
    ]
    # in time order, as producers publish them (an older event after a newer one would be "late")
    events.sort(key=lambda e: orjson.loads(e)["occurred_at"])
    return events


def _tables(settings: Settings) -> dict[str, dict[str, bytes]]:
    """Each table's rows as its changelog leaves them (last write wins; a tombstone deletes)."""
    out: dict[str, dict[str, bytes]] = {}
    for table in ("customers", "wakeups", "identities"):
        rows: dict[str, bytes] = {}
        topic = f"{settings.app_id}-{table}-changelog"
        for record in read_topic(settings.bootstrap_servers, topic, idle=2.0):
            key = orjson.loads(record.key) if record.key else ""
            if record.value is None:
                rows.pop(key, None)
            else:
                rows[key] = record.value
        out[table] = rows
    return out


def _tables_without_kept_messages(settings: Settings) -> dict[str, dict[str, bytes]] | None:
    tables = _tables(settings)
    kept = any(k.startswith("o:") for k in tables["identities"])
    # an erased visitor's moved record stays bare until its messages are committed (docs/runtime.md)
    bare = any(b'"erased":true' in v for v in tables["customers"].values())
    return None if kept or bare else tables


def test_stitching_consent_and_erasure_match_simulate(settings: Settings, tmp_path: Path) -> None:
    files = [JOURNEYS / "abandoned_cart.yaml", JOURNEYS / "welcome.yaml"]
    deploy(settings, files)
    events = _events()
    produce(settings, events)
    expected = by_id(simulate(files, events, until_ms=int(time.time() * 1000)))
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    reader = ActionReader(settings)
    try:
        worker.start().wait_ready()
        reader.wait_for_ids(set(expected), describe=expected)
        reader.settle(2.0)

        def state(key: str) -> dict[str, Any] | None:
            status, body = worker.get_json(f"/customers/{key}/")
            return body if status == 200 else None

        nine = wait_until(lambda: state("cust-9"), what="cust-9's state")
        a = wait_until(lambda: state("cust-a"), what="cust-a's state")
        b = wait_until(lambda: state("cust-b"), what="cust-b's state")
        gone = [state(k) for k in ("cust-e", "anonymous_id:anon-e", "email:eve@erased.example")]
        erased_identity = worker.get_json("/identities/email:eve@erased.example/")[0]
        inspected = inspect_live(settings, worker, "anonymous_id:anon-9")
        # the erasure's kept messages go once their offset is committed (they name the customer)
        tables = wait_until(
            lambda: _tables_without_kept_messages(settings),
            timeout=60,
            what="the identify stage's kept messages to be deleted",
        )
    finally:
        worker.stop()
        reader.close()
    got = by_id(reader.records)
    assert got == expected, f"extra: {[got[i] for i in set(got) - set(expected)]}"
    by_step = {(r["customer_id"], r["step_id"]): r for r in reader.records}
    assert by_step[("cust-9", "reminder")]["recipient"] == "nine@example.com"
    assert ("cust-s", "welcome_sms") in by_step, "consent given under the phone number was seen"
    assert ("cust-t", "welcome_sms") not in by_step, "consent withdrawn under the email was seen"
    assert not [r for r in reader.records if r["customer_id"] in ("cust-e", "anonymous_id:anon-e")]

    assert nine["entries"]["abandoned_cart"][0] == 1, "one instance: the visitor's, moved over"
    assert nine["profile"]["identities"]["anonymous_id"] == ["anon-9"]
    assert a["customer_key"] != b["customer_key"], "a shared device does not fuse two customers"
    assert "device_id" in a["profile"]["identities"]
    assert inspected["customer_key"] == "cust-9"
    assert "anonymous_id:anon-9" in inspected["aliases"]
    assert inspected["profile"]["addresses"]["email"] == "nine@example.com"

    assert gone == [None, None, None], "an erased customer leaves no state"
    assert erased_identity == 404
    for table, rows in tables.items():
        named = [k for k, v in rows.items() if b"eve@erased.example" in v or b"cust-e" in v or "cust-e" in k]
        assert not named, f"table {table} still names the erased customer: {named}"
        assert not [k for k in rows if "anon-e" in k], f"table {table} keeps the erased visitor's key"
