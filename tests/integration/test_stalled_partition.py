"""A raw partition that stops (its ingest worker frozen with SIGSTOP): after ``watermark_idle_s`` the
identify stage leaves it out of the event-time order, so the other partitions' customers get their
actions; readiness and the metric say so, and when the worker goes on the partition is back."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from orchestrator.config import Settings
from orchestrator.kafka.local_broker import free_port
from orchestrator.testing import WorkerProcess, wait_until
from tests.integration.metrics_helpers import scrape
from tests.integration.runtime_helpers import ActionReader, deploy

pytestmark = pytest.mark.integration

# the frozen worker stays in the group (longer than the test's checks): no takeover hides the wait
ENV = {"ORCH_SESSION_TIMEOUT_S": "60", "ORCH_WATERMARK_IDLE_S": "4"}

JOURNEY = """
id: welcome_ping
version: 1
name: Welcome ping
entry:
  event: app.opened
re_entry:
  policy: always
steps:
  hello:
    type: send
    channel: email
    category: transactional
    template: hello
"""


def _worker(settings: Settings, tmp: Path, name: str, **env: str) -> WorkerProcess:
    own = settings.model_copy(update={"web_port": free_port(), "data_dir": tmp / name})
    return WorkerProcess(own, tmp / f"{name}.log", extra_env={**ENV, **env})


def _open(customer: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{customer}-open",
            "type": "app.opened",
            "identifiers": {"customer_id": customer, "email": f"{customer}@example.com"},
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "test",
        }
    )


def _raw_partitions(worker: WorkerProcess) -> set[int]:
    try:
        status, body = worker.get_json("/clock/")
    except OSError:  # not listening yet
        return set()
    return {int(p) for p in body.get("raw_partitions", {})} if status == 200 else set()


def _metric(worker: WorkerProcess, partition: int) -> float | None:
    _, samples = scrape(worker)
    return samples.get(("orchestrator_raw_partition_idle", frozenset({("partition", str(partition))})))


@pytest.mark.timeout(240)
def test_a_frozen_raw_partition_no_longer_holds_the_others(
    settings: Settings, tmp_path: Path, actions: ActionReader
) -> None:
    path = tmp_path / "welcome.yaml"
    path.write_text(JOURNEY)
    deploy(settings, [path])
    main = _worker(settings, tmp_path, "main").start().wait_ready()
    ingest = _worker(settings, tmp_path, "ingest", ORCH_STAGES="ingest").start()
    frozen = False
    try:
        wait_until(
            lambda: bool(_raw_partitions(ingest)),
            timeout=90,
            what="the ingest-only worker owns a raw partition",
        )
        wait_until(lambda: main.get_json("/readyz")[0] == 200, timeout=60, what="the main worker ready again")
        theirs = _raw_partitions(ingest)
        ours = _raw_partitions(main)
        assert ours, "both workers read raw partitions"
        assert ingest.proc is not None
        os.kill(ingest.proc.pid, signal.SIGSTOP)
        frozen = True
        stopped = time.monotonic()
        # events on the main worker's raw partitions only
        producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 5})
        customers = [f"stall-{n}" for n in range(6)]
        for n, customer in enumerate(customers):
            producer.produce(settings.topics.raw_events, value=_open(customer), key=customer.encode(),
                             partition=sorted(ours)[n % len(ours)])  # fmt: skip
        assert producer.flush(30) == 0
        wait_until(
            lambda: (actions.poll(), {r["customer_id"] for r in actions.records} >= set(customers))[1],
            timeout=40,
            what="the emails of the customers on the partitions still heard",
        )
        assert time.monotonic() - stopped < 55, "before any takeover (session timeout 60 s)"
        status, body = main.get_json("/readyz")
        assert status == 503
        assert set(body["idle_raw_partitions"]) == theirs
        assert all(_metric(main, p) == 1.0 for p in theirs)
        assert all(_metric(main, p) == 0.0 for p in ours)
        assert "left out of the event-time order" in (tmp_path / "main.log").read_text()
        os.kill(ingest.proc.pid, signal.SIGCONT)
        frozen = False
        wait_until(lambda: main.get_json("/readyz")[0] == 200, timeout=60, what="ready once heard again")
        assert all(_metric(main, p) == 0.0 for p in theirs)
        assert "is heard again" in (tmp_path / "main.log").read_text()
    finally:
        if frozen and ingest.proc is not None:
            os.kill(ingest.proc.pid, signal.SIGCONT)
        ingest.stop()
        main.stop()
    actions.settle(2.0)
    sent: dict[str, Any] = {}
    for record in actions.records:
        sent.setdefault(record["customer_id"], record)
    assert set(sent) == set(customers)
