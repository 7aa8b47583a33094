"""The fast path on the real broker (docs/runtime.md, "The fast path"): once the identity writer has
claimed known customers' identifiers, ingest sends their events straight to their partitions, where they
wait their turn beside the writer's; the actions are exactly `orchestrator simulate`'s for the same
events — visitors signing in, new customers and an erasure among them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.kafka.topics import create_topics
from orchestrator.testing import WorkerProcess, unique_settings, wait_until
from tests.integration.metrics_helpers import scrape
from tests.integration.runtime_helpers import (
    JOURNEYS,
    ActionReader,
    assert_exactly,
    by_id,
    deploy,
    produce,
    simulate,
)

pytestmark = pytest.mark.integration

CUSTOMERS = 40
VISITORS = 10


def _event(eid: str, etype: str, ids: dict[str, str], at: datetime, **props: Any) -> bytes:
    body = {
        "event_id": eid,
        "type": etype,
        "identifiers": ids,
        "occurred_at": at.isoformat(),
        "source": "test",
    }
    return orjson.dumps({**body, "properties": props})


def _known(start: datetime) -> list[bytes]:
    """Customers sign up (their identifiers are claimed); visitors fill carts."""
    out = [
        _event(f"a{i}", "account.created", {"customer_id": f"c{i}", "email": f"c{i}@example.com"},
               start + timedelta(seconds=i))
        for i in range(CUSTOMERS)
    ]  # fmt: skip
    out += [
        _event(f"v{j}", "cart.updated", {"anonymous_id": f"v{j}"}, start + timedelta(seconds=60 + j),
               item_count=1, total=10 + j)
        for j in range(VISITORS)
    ]  # fmt: skip
    return out


def _later(start: datetime) -> list[bytes]:
    """Known customers by customer_id or by email alone (the fast path), visitors signing in and new
    customers (the writer), an erasure and an event of the erased customer right after it."""
    out: list[tuple[datetime, bytes]] = []
    for i in range(CUSTOMERS):
        at = start + timedelta(seconds=2 * i)
        ids = {"customer_id": f"c{i}"} if i % 2 else {"email": f"c{i}@example.com"}
        out.append((at, _event(f"b{i}", "cart.updated", ids, at, item_count=2, total=20 + i)))
        if i % 3 == 0:
            at2 = at + timedelta(seconds=1)
            out.append((at2, _event(f"o{i}", "order.completed", {"customer_id": f"c{i}"}, at2, total=20 + i)))
    for j in range(VISITORS):
        at = start + timedelta(seconds=30 + 3 * j)
        ids = {"customer_id": f"vc{j}", "email": f"vc{j}@example.com", "anonymous_id": f"v{j}"}
        out.append((at, _event(f"s{j}", "account.created", ids, at)))
    for k in range(5):
        at = start + timedelta(seconds=50 + k)
        out.append(
            (at, _event(f"n{k}", "account.created", {"customer_id": f"n{k}", "email": f"n{k}@x.io"}, at))
        )
    erased_at = start + timedelta(seconds=90)
    out.append((erased_at, _event("e1", "customer.erased", {"customer_id": "c1"}, erased_at)))
    after = erased_at + timedelta(seconds=1)
    out.append((after, _event("e2", "cart.updated", {"customer_id": "c1"}, after, item_count=9, total=99)))
    return [line for _, line in sorted(out, key=lambda row: row[0])]


def _counter(worker: WorkerProcess, name: str) -> float:
    return sum(v for (sample, _), v in scrape(worker)[1].items() if sample == name)


def test_known_customers_take_the_fast_path_and_the_actions_match_simulate(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # on RocksDB: ingest's copy of the claims is a database of its own, in the worker's budget
    settings = unique_settings(
        kafka_bootstrap, tmp_path / "worker", store="rocksdb://", erasure_key="fast", fast_path=True
    )
    create_topics(settings)
    files = [JOURNEYS / "abandoned_cart.yaml", JOURNEYS / "welcome.yaml"]
    deploy(settings, files)
    now = datetime.now(UTC)
    first, second = _known(now - timedelta(hours=3)), _later(now - timedelta(minutes=3))
    until = int(time.time() * 1000)
    expected_first = by_id(simulate(files, first, until_ms=until))
    expected = by_id(simulate(files, first + second, until_ms=until))
    worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={"ORCH_LATENESS_HOURS": "0"})
    reader = ActionReader(settings)
    try:
        worker.start().wait_ready()
        produce(settings, first)
        reader.wait_for_ids(set(expected_first), describe=expected_first)
        # the writer claimed each customer's customer_id and email; ingest has read them
        wait_until(
            lambda: _counter(worker, "orchestrator_claims_read_total") >= 2 * CUSTOMERS,
            timeout=30, what="ingest's copy of the claims",
        )  # fmt: skip
        produce(settings, second)
        assert_exactly(reader, expected)
        fast = _counter(worker, "orchestrator_fast_path_events_total")
    finally:
        worker.stop()
        reader.close()
    # every later event of a known customer came straight: b*, o* (and the erased customer's last one,
    # unless ingest had read the tombstone of its claim by then)
    assert fast >= CUSTOMERS + CUSTOMERS // 3, fast
    assert not [a for a in reader.records if a["customer_id"] == "c1" and a["step_id"] == "reminder"]
