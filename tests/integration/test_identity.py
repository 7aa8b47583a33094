"""Identity stitching on the real broker (docs/identity.md): a visitor who signs in mid-journey, two
customers sharing a device, and erasure — the same as `orchestrator simulate` gives."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.testing import WorkerProcess, wait_until
from tests.integration.runtime_helpers import JOURNEYS, ActionReader, by_id, deploy, produce, simulate

pytestmark = pytest.mark.integration


def _event(eid: str, etype: str, ids: dict[str, str], at: str, **props: Any) -> bytes:
    return orjson.dumps(
        {"event_id": eid, "type": etype, "identifiers": ids, "occurred_at": at, "source": "test",
         "properties": props}
    )  # fmt: skip


def test_stitching_and_erasure_match_simulate(settings: Settings, tmp_path: Path) -> None:
    files = [JOURNEYS / "abandoned_cart.yaml"]
    deploy(settings, files)
    events = [
        _event(
            "i1", "cart.updated", {"anonymous_id": "anon-9"}, "2025-03-10T10:00:00Z", item_count=2, total=50
        ),
        _event(
            "i2",
            "account.created",
            {"customer_id": "cust-9", "email": "nine@example.com", "anonymous_id": "anon-9"},
            "2025-03-10T10:20:00Z",
        ),  # fmt: skip
        _event("i3", "page.viewed", {"anonymous_id": "anon-9"}, "2025-03-10T10:30:00Z"),
        _event("i4", "page.viewed", {"customer_id": "cust-a", "device_id": "tablet"}, "2025-03-10T10:00:00Z"),
        _event("i5", "page.viewed", {"customer_id": "cust-b", "device_id": "tablet"}, "2025-03-10T10:05:00Z"),
        _event(
            "i6",
            "cart.updated",
            {"customer_id": "cust-e", "email": "e@example.com"},
            "2025-03-10T09:00:00Z",
            item_count=1,
            total=10,
        ),  # fmt: skip
        _event("i7", "customer.erased", {"customer_id": "cust-e"}, "2025-03-10T09:10:00Z"),
        _event("i8", "page.viewed", {"email": "e@example.com"}, "2025-03-10T09:20:00Z"),
    ]
    # in time order, as producers publish them (an older event after a newer one would be "late")
    events.sort(key=lambda e: orjson.loads(e)["occurred_at"])
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
        gone = [state(k) for k in ("cust-e", "email:e@example.com", "anonymous_id:anon-9")]
    finally:
        worker.stop()
        reader.close()
    got = by_id(reader.records)
    assert got == expected, f"extra: {[got[i] for i in set(got) - set(expected)]}"
    reminder = [r for r in reader.records if r["step_id"] == "reminder"]
    assert [(r["customer_id"], r["recipient"]) for r in reminder] == [("cust-9", "nine@example.com")]
    assert nine["entries"]["abandoned_cart"][0] == 1, "one instance: the visitor's, moved over"
    assert nine["profile"]["identities"]["anonymous_id"] == ["anon-9"]
    assert "device_id" in a["profile"]["identities"]
    assert a["customer_key"] != b["customer_key"], "a shared device does not fuse two customers"
    assert gone == [None, None, None], "erased and merged-away customers leave no state"
