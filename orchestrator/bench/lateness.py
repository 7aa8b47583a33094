"""Timers on an idle worker (issue 16): how late wake-ups fire, by the wall clock, with many pending.

One worker (RocksDB store, ``partitions`` partitions) runs with ten bench journeys, each "on
``bench.wait<k>``, wait k slots, send a transactional email" (a slot = ``seconds`` / 11), and one that
waits a week (``bench.hold``: its customers keep ``pending`` timers pending all along). At the start,
``pending`` customers send ``bench.hold`` and ``pending`` others a ``bench.wait<k>`` spread over the ten
waits, live (``occurred_at`` = now); then nothing more arrives for ``seconds``: the worker is idle but
for its ticker.

Lateness of a wake-up = the email's record timestamp (CreateTime, stamped by the worker's producer)
minus (its event's ``occurred_at`` + the wait); it includes the hop from the timers topic to the
customer stage and the send. Also reported: the worker's own ``orchestrator_timer_lateness_seconds``
(``clock="wall"``) buckets over the window, and the "overlapping" warnings Faust logs when a timer
callback runs longer than its interval.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from orchestrator.bench.e2e import _metrics, broker
from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.kafka.deploy import prepare_deployments, publish_deployments
from orchestrator.kafka.topics import create_topics
from orchestrator.testing import WorkerProcess, unique_settings

__all__ = ["bench_lateness"]

SLOTS = 10


def _journey(jid: str, event: str, wait_ms: int) -> str:
    return f"""id: {jid}
version: 1
name: {jid}
entry:
  event: {event}
re_entry:
  policy: never
steps:
  wait:
    type: wait
    duration: {wait_ms}ms
    next: send
  send:
    type: send
    channel: email
    category: transactional
    template: bench_timer_v1
"""


def _lateness_buckets(text: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("orchestrator_timer_lateness_seconds_bucket{") and 'clock="wall"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def _p99_le(before: dict[float, float], after: dict[float, float]) -> float | None:
    delta = sorted((le, after.get(le, 0.0) - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0
    return next((le for le, c in delta if total and c >= 0.99 * total), None)


def bench_lateness(
    bootstrap: str | None,
    *,
    quick: bool = False,
    seconds: float | None = None,
    pending: int | None = None,
    partitions: int = 6,
) -> dict[str, Any]:
    window = seconds or (33.0 if quick else 660.0)
    many = pending or (200 if quick else 1000)
    slot_ms = int(window * 1000 / (SLOTS + 1))
    with tempfile.TemporaryDirectory(prefix="bench-lateness-") as tmp, broker(bootstrap, Path(tmp)) as boot:
        work = Path(tmp)
        settings = unique_settings(
            boot, work / "worker", partitions=partitions, store="rocksdb://", lateness_hours=0
        )
        create_topics(settings)
        files = []
        for k in range(1, SLOTS + 1):
            files.append(work / f"bench_wait_{k}.yaml")
            files[-1].write_text(_journey(f"bench_wait_{k}", f"bench.wait{k}", k * slot_ms))
        files.append(work / "bench_hold.yaml")
        files[-1].write_text(_journey("bench_hold", "bench.hold", 7 * 86_400_000))
        publish_deployments(settings, prepare_deployments(files, datetime(2025, 1, 1, tzinfo=UTC)))
        t = settings.topics
        consumer = Consumer(
            {
                "bootstrap.servers": boot,
                "group.id": f"bench-lateness-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([t.action_email])
        worker = WorkerProcess(settings, work / "worker.log").start()
        try:
            worker.wait_ready(timeout=120)
            before = _lateness_buckets(_metrics(worker))
            producer = Producer({"bootstrap.servers": boot, "linger.ms": 5})
            due: dict[str, int] = {}
            tag = uuid.uuid4().hex[:6]
            for i in range(2 * many):
                cid = f"tl-{tag}-{i}"
                now = int(time.time() * 1000)
                if i < many:
                    kind = "bench.hold"
                else:
                    k = 1 + i % SLOTS
                    kind = f"bench.wait{k}"
                    due[cid] = now + k * slot_ms
                event = {
                    "event_id": f"{cid}-e",
                    "type": kind,
                    "occurred_at": iso_from_ms(now),
                    "source": "bench",
                    "identifiers": {"customer_id": cid, "email": f"{cid}@example.com"},
                }
                producer.produce(t.raw_events, key=cid.encode(), value=orjson.dumps(event))
                producer.poll(0)
            producer.flush(30)
            fired: dict[str, int] = {}
            end = time.monotonic() + window + 30
            while len(fired) < len(due) and time.monotonic() < end:
                for msg in consumer.consume(num_messages=1000, timeout=0.5):
                    key = msg.key()
                    if msg.error() is None and key is not None:
                        fired.setdefault(key.decode(), msg.timestamp()[1])
            after = _lateness_buckets(_metrics(worker))
            pending_now = _pending(_metrics(worker))
        finally:
            worker.stop()
            consumer.close()
        log = (work / "worker.log").read_text(errors="replace")
        late = sorted((fired[c] - due[c]) / 1000 for c in fired if c in due)
        if not late:
            raise RuntimeError("lateness: no wake-up fired")
        q = statistics.quantiles(late, n=100) if len(late) > 1 else [late[0]] * 99
        return {
            "what": __doc__,
            "window_s": window,
            "pending_held": many,
            "pending_at_end": pending_now,
            "wakeups": len(due),
            "fired": len(late),
            "p50_s": round(q[49], 3),
            "p99_s": round(q[98], 3),
            "max_s": round(late[-1], 3),
            "worker_p99_le_s": _p99_le(before, after),
            "overlapping_warnings": log.count("is overlapping"),
        }


def _pending(text: str) -> int:
    """Timers pending in the worker's index, over its partitions."""
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("orchestrator_pending_timers{")
    )
