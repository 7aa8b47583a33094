"""End-to-end on a real broker (issue 8): one ``orchestrator worker`` catching up on a backlog, against a
raw aiokafka passthrough on the same broker and messages; then event -> action latency at a fixed rate.

Throughput: N generated events (the simulate mix, many customers) are produced to the raw topic
before the worker starts; the clock runs from the worker's first resolved event taken by the
customer stage to the last one (its ``orchestrator_events_consumed_total`` counter, polled on
``/metrics`` every 0.1 s). Both stages (resolve and customer) run in that one worker.

Latency: the generated mix is produced at a fixed rate to the running worker; one event in ten is a
probe, a fresh customer's ``account.created`` (the welcome journey sends an email at once).
Latency = the action record's timestamp (CreateTime, stamped by the worker's producer when it sends)
minus the raw record's timestamp (CreateTime, stamped by our producer at produce time); one host clock.
``worker_histogram``: the same window seen by the worker's own ``orchestrator_event_to_action_seconds``
(resolved record -> action handed to the producer, docs/metrics.md), as upper bucket bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from orchestrator.bench.baseline import run_raw_aiokafka
from orchestrator.bench.common import create_topics as create_plain_topics
from orchestrator.bench.micro import JOURNEYS_DIR, nomatch_journey_yaml
from orchestrator.config import Settings
from orchestrator.contracts.events import Identifiers
from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.resolution import canonical_key
from orchestrator.kafka.deploy import prepare_deployments, publish_deployments
from orchestrator.kafka.local_broker import LocalBroker, free_port
from orchestrator.kafka.topics import create_topics
from orchestrator.simulate.generate import generate_events
from orchestrator.testing import WorkerProcess, unique_settings

__all__ = ["bench_e2e", "broker"]

PAST = datetime(2025, 1, 1, tzinfo=UTC)


@contextlib.contextmanager
def broker(bootstrap: str | None, workdir: Path) -> Iterator[str]:
    """The given broker, or a local Apache Kafka on free ports in ``workdir`` (stopped afterwards)."""
    if bootstrap:
        yield bootstrap
        return
    local = LocalBroker(port=free_port(), controller_port=free_port(), run_dir=workdir / "kafka")
    info = local.up(timeout=120)
    try:
        yield info.bootstrap
    finally:
        local.down()


def _events(
    n: int, customers: int, start_ms: int, span_ms: int, prefix: str, visitors: float = 0.0
) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``n`` generated events, re-timed into [start_ms, start_ms + span_ms); with
    ``visitors``, that share of the customers is anonymous until it signs up (the generator's rule)."""
    out = []
    step = span_ms / max(n, 1)
    for i, ev in enumerate(generate_events(n, customers, seed=5, visitors=visitors)):
        ev["identifiers"] = {k: f"{prefix}{v}" for k, v in ev["identifiers"].items()}
        ev["event_id"] = f"{prefix}{ev['event_id']}"
        ev["occurred_at"] = iso_from_ms(start_ms + int(i * step))
        key = canonical_key(Identifiers(**ev["identifiers"]))
        out.append((key.encode(), orjson.dumps(ev)))
    return out


def _known(customers: int, visitors: float, at_ms: int, prefix: str) -> list[tuple[bytes, bytes]]:
    """Each customer that is not a visitor signs up once, before the backlog: the customers a live
    system knows (the identity writer claims their identifiers, so their later events can take the fast
    path). Visitors stay anonymous until the backlog signs them in."""
    every = round(1 / visitors) if visitors > 0 else 0
    out = []
    for c in range(customers):
        if every and c % every == 0:
            continue
        cid = f"{prefix}cust-{c}"
        ids = {"customer_id": cid, "email": f"{cid}@example.com"}
        ev = {"event_id": f"{prefix}k{c}", "type": "profile.updated", "source": "bench", "properties": {},
              "identifiers": ids, "occurred_at": iso_from_ms(at_ms)}  # fmt: skip
        out.append((cid.encode(), orjson.dumps(ev)))
    return out


def _key_rule_check(key: bytes, value: bytes) -> None:
    from orchestrator.contracts import parse_event
    from orchestrator.core.resolution import canonical_key

    expected = canonical_key(parse_event(value).identifiers).encode()
    if expected != key:
        raise AssertionError(f"bench key {key!r} is not the canonical key {expected!r}")


def _produce(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000})
    for key, value in events:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise RuntimeError("pre-produced events not delivered")


def _metrics(worker: WorkerProcess) -> str:
    try:
        with urllib.request.urlopen(worker.url + "/metrics", timeout=2) as resp:
            return str(resp.read().decode())
    except OSError:
        return ""


def _buckets(text: str) -> dict[float, float]:
    """Cumulative buckets of the worker's orchestrator_event_to_action_seconds histogram."""
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("orchestrator_event_to_action_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def _bucket_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """p50/p99 upper bucket bounds (seconds) of the observations between two scrapes."""
    delta = sorted((le, after.get(le, 0.0) - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0
    res: dict[str, Any] = {"observations": int(total)}
    for name, q in (("p50_le_ms", 0.5), ("p99_le_ms", 0.99)):
        res[name] = next((le * 1000 for le, c in delta if total and c >= q * total), None)
    return res


def _consumed(worker: WorkerProcess) -> int:
    text = _metrics(worker)
    if not text:
        return -1
    total = 0.0
    for line in text.splitlines():
        if line.startswith("orchestrator_events_consumed_total"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _deploy(settings: Settings, workdir: Path, nomatch: int) -> int:
    files = sorted(p for p in JOURNEYS_DIR.glob("*.yaml") if "kind: policy" not in p.read_text())
    for i in range(nomatch):
        path = workdir / f"bench_nomatch_{i}.yaml"
        path.write_text(nomatch_journey_yaml(i, same_type=i % 10 == 0))
        files.append(path)
    publish_deployments(settings, prepare_deployments(files, PAST))
    return len(files)


def _counter(worker: WorkerProcess, name: str) -> int:
    """A counter of the worker's /metrics, summed over its labels (-1: no answer)."""
    text = _metrics(worker)
    if not text:
        return -1
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)))


def _throughput(worker: WorkerProcess, n: int, timeout: float, base: int = 0) -> dict[str, Any]:
    """How fast the worker's customer stage took ``n`` events past ``base`` already taken."""
    deadline = time.monotonic() + timeout
    first = last = 0.0
    seen = first_count = base
    while seen < base + n:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"worker caught up {seen - base}/{n} events in {timeout:.0f}s:\n{worker.log_tail()}"
            )
        now_seen = _consumed(worker)
        now = time.perf_counter()
        if now_seen > base and first == 0.0:
            first = now
            first_count = now_seen
        if now_seen > seen:
            seen, last = now_seen, now
        time.sleep(0.1)
    seconds = last - first
    return {
        "events": n,
        "seconds": round(seconds, 3),
        "events_per_s": round((base + n - first_count) / seconds, 1) if seconds > 0 else 0.0,
    }


def _latency(settings: Settings, rate: float, seconds: float) -> dict[str, Any]:
    """Offer ``rate`` events/s for ``seconds``: the generated mix (as the backlog), one event in ten
    replaced by a probe, a new customer's ``account.created`` (whose welcome email is timed)."""
    n = max(20, int(rate * seconds))
    t = settings.topics
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"bench-lat-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([t.action_email])
    deadline = time.monotonic() + 15
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 0})
    tag = uuid.uuid4().hex[:6]
    sent: dict[str, int] = {}
    probes = 0

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            sent[msg.key().decode()] = msg.timestamp()[1]

    mix = generate_events(n, max(100, n // 10), seed=9)
    t0 = time.perf_counter()
    for i, ev in enumerate(mix):
        now_iso = iso_from_ms(int(time.time() * 1000))
        if i % 10 == 0:
            cid = f"lat-{tag}-{i}"
            ev = {"event_id": cid, "type": "account.created", "source": "bench"}
            probes += 1
        else:
            cid = f"l-{tag}-{ev['identifiers']['customer_id']}"
            ev["event_id"] = f"l-{tag}-{ev['event_id']}"
        ev["identifiers"] = {"customer_id": cid, "email": f"{cid}@example.com"}
        ev["occurred_at"] = now_iso
        if i % 10 == 0:
            producer.produce(t.raw_events, key=cid.encode(), value=orjson.dumps(ev), on_delivery=on_delivery)
        else:
            producer.produce(t.raw_events, key=cid.encode(), value=orjson.dumps(ev))
        producer.poll(0)
        target = t0 + (i + 1) / rate
        while time.perf_counter() < target:
            producer.poll(max(0.0, min(0.001, target - time.perf_counter())))
    producer.flush(30)
    got: dict[str, int] = {}
    deadline = time.monotonic() + 90
    while not set(sent) <= set(got) and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=0.5):
            key = msg.key()
            if msg.error() is None and key is not None:
                got.setdefault(key.decode(), msg.timestamp()[1])
    consumer.close()
    lat = sorted(got[c] - sent[c] for c in got if c in sent)
    if not lat:
        raise RuntimeError("latency run: no actions matched")
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    return {
        "offered_events_per_s": round(rate, 1),
        "events": n,
        "probes": probes,
        "actions_matched": len(lat),
        "p50_ms": round(q[49], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": lat[-1],
    }


def _warm_then_backlog(
    settings: Settings, worker: WorkerProcess, n: int, customers: int, visitors: float, timeout: float
) -> dict[str, Any]:
    """The customers a live system knows sign up first (their events taken, the writer's claims read by
    ingest); then the backlog of ``n`` events is produced while the worker is stopped (SIGSTOP: it is
    pre-produced, and the producer does not compete for the CPU), and the clock runs as it catches up."""
    boot = settings.bootstrap_servers
    now_ms = int(time.time() * 1000)
    known = _known(customers, visitors, now_ms - 7_200_000, "b-")
    _produce(boot, settings.topics.raw_events, known)
    deadline = time.monotonic() + timeout
    while _consumed(worker) < len(known) or (
        settings.fast_path and _counter(worker, "orchestrator_claims_read_total") < 2 * len(known)
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the known customers were not taken in {timeout:.0f}s:\n{worker.log_tail()}")
        time.sleep(0.2)
    backlog = _events(n, customers, now_ms - 3_600_000, 3_600_000, "b-", visitors)
    _key_rule_check(*backlog[0])
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        _produce(boot, settings.topics.raw_events, backlog)
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)
    fast_before = _counter(worker, "orchestrator_fast_path_events_total")
    tput = _throughput(worker, n, timeout, base=len(known))
    tput["known_customers"] = len(known)
    tput["fast_path_events"] = max(
        0, _counter(worker, "orchestrator_fast_path_events_total") - max(0, fast_before)
    )
    return tput


def bench_e2e(
    bootstrap: str | None,
    *,
    quick: bool = False,
    events: int | None = None,
    partitions: int = 1,
    store: str = "rocksdb://",
    nomatch: int = 20,
    latency_seconds: float | None = None,
    latency_rate: float | None = None,
    timeout: float = 600.0,
    settings_over: dict[str, Any] | None = None,
    visitors: float = 0.2,
    compare: bool = True,
) -> dict[str, Any]:
    """``settings_over``: worker settings to change (to compare, e.g. ``fetch_min_kb``); ``visitors``:
    the share of customers anonymous until they sign up; ``compare``: also run the same events with
    every event through the identity writer (``fast_path`` off), in the same run."""
    n = events or (3_000 if quick else 50_000)
    customers = max(100, n * 2 // 5)
    lat_s = latency_seconds or (5.0 if quick else 30.0)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp, broker(bootstrap, Path(tmp)) as boot:
        work = Path(tmp)
        runs: dict[str, dict[str, Any]] = {}
        latency: dict[str, Any] = {}
        journeys = 0
        raw_n = 0
        raw_topic = ""
        for name, fast in (("worker", True), ("writer_only", False))[: 2 if compare else 1]:
            over = {**(settings_over or {}), "fast_path": fast}
            settings = unique_settings(
                boot, work / name, partitions=partitions, store=store, lateness_hours=0, **over
            )
            create_topics(settings)
            journeys = _deploy(settings, work, nomatch)
            worker = WorkerProcess(settings, work / f"{name}.log").start()
            try:
                worker.wait_ready(timeout=120)
                runs[name] = _warm_then_backlog(settings, worker, n, customers, visitors, timeout)
                if name == "worker":
                    raw_n = runs[name]["known_customers"] + n
                    raw_topic = settings.topics.raw_events
                    rate = latency_rate or max(5.0, runs[name]["events_per_s"] / 2)
                    before = _buckets(_metrics(worker))
                    latency = _latency(settings, rate, lat_s)
                    latency["worker_histogram"] = _bucket_quantiles(before, _buckets(_metrics(worker)))
            finally:
                worker.stop()
        # raw passthrough: same client family as Faust (aiokafka), same broker, same messages
        out_topic = f"{raw_topic}.passthrough"
        create_plain_topics(boot, [out_topic], partitions)
        raw = asyncio.run(
            run_raw_aiokafka(
                boot, raw_topic, out_topic, raw_n, timeout, transform=None, name="raw_passthrough_aiokafka"
            )
        )
        tput = runs["worker"]
        report: dict[str, Any] = {
            "what": __doc__,
            "bootstrap": "given" if bootstrap else "local Apache Kafka (LocalBroker)",
            "partitions": partitions,
            "store": store,
            "customers": customers,
            "visitors": visitors,
            "journeys_deployed": journeys,
            "worker": tput,
            "raw_passthrough_aiokafka": {
                "events": raw.events,
                "seconds": round(raw.seconds, 3),
                "events_per_s": round(raw.events_per_s, 1),
            },
            "ratio_worker_vs_raw": round(tput["events_per_s"] / raw.events_per_s, 4)
            if raw.events_per_s
            else 0.0,
            "latency": latency,
        }
        if "writer_only" in runs:
            report["writer_only"] = runs["writer_only"]
            slow = runs["writer_only"]["events_per_s"]
            report["ratio_fast_path_vs_writer_only"] = round(tput["events_per_s"] / slow, 3) if slow else 0.0
        return report
