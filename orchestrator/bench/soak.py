"""A steady live rate over many customers for a while: does the worker's memory stay flat? (issue 27)

One worker (every stage, RocksDB, ``partitions`` partitions, the example journeys and the example
policy) is offered the generated mix (20 % visitors) at ``rate`` events/s over ``customers``
customers for ``seconds``, each event stamped with the wall clock as it is produced (live traffic:
journeys wait, timers fire). Every ``sample_s`` the worker process's RSS and CPU time, the events it
consumed (its ``orchestrator_events_consumed_total``) and the lag (offered - consumed) are sampled.

Reported: the RSS slope after the warm-up (least squares over the samples after ``warmup_s``, in MB
per 10 minutes), the RSS at the start, after the warm-up and at the end, the largest lag after the
warm-up, the CPU share, the dead letters, and the size of the worker's data directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from orchestrator.bench.e2e import PAST, _consumed, _metrics, broker
from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.kafka.deploy import prepare_deployments, publish_deployments
from orchestrator.kafka.topics import create_topics
from orchestrator.runtime.store_stats import ROCKSDB_MEMORY
from orchestrator.simulate.generate import generate_events
from orchestrator.testing import WorkerProcess, unique_settings

__all__ = ["bench_held", "bench_soak", "rss_slope_mb_per_10min"]

MB = 1024 * 1024

ROOT = Path(__file__).resolve().parents[2]


def _rss_mb(pid: int) -> float:
    """Resident memory as the page tables count it now (``smaps_rollup``): ``VmRSS`` in ``status`` is
    summed per thread with a delay and showed steps of ~16 MB that were not there (issue 27)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024 / 1024


def rss_slope_mb_per_10min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per 10 minutes (0 with fewer than 2)."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var * 600


@dataclass(frozen=True)
class _Plan:
    seconds: float
    rate: float
    customers: int
    sample_s: float
    warmup_s: float
    settings: dict[str, Any]


def _rocksdb_mb(text: str) -> dict[str, float]:
    """The worker's RocksDB memory by part (``orchestrator_rocksdb_memory_bytes``, all tables), MB."""
    total = dict.fromkeys([*ROCKSDB_MEMORY, "block_cache"], 0.0)
    for line in text.splitlines():
        if line.startswith("orchestrator_rocksdb_memory_bytes{"):
            labels, value = line.rsplit(" ", 1)
            for part in total:
                if f'part="{part}"' in labels:
                    total[part] += float(value) / MB
    return {part: round(mb, 1) for part, mb in total.items()}


def _sum(text: str, prefix: str) -> int:
    """The sum of the metric lines starting with ``prefix`` (a name, or a name and its labels)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def bench_soak(
    bootstrap: str | None,
    *,
    quick: bool = False,
    seconds: float | None = None,
    rate: float | None = None,
    customers: int | None = None,
    partitions: int = 6,
    sample_s: float | None = None,
    settings_over: dict[str, Any] | None = None,
    log_to: Path | None = None,
) -> dict[str, Any]:
    """``settings_over``: worker settings to change (e.g. the RocksDB sizes, to compare); ``log_to``:
    where to keep the worker's log."""
    length = seconds or (60.0 if quick else 1200.0)
    plan = _Plan(
        seconds=length,
        rate=rate or (200.0 if quick else 500.0),
        customers=customers or (5_000 if quick else 60_000),
        sample_s=sample_s or (2.0 if quick else 10.0),
        warmup_s=min(300.0, length / 4),
        settings=settings_over or {},
    )
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, broker(bootstrap, Path(tmp)) as boot:
        work = Path(tmp)
        settings = unique_settings(
            boot, work / "data", partitions=partitions, store="rocksdb://", **(settings_over or {})
        )
        create_topics(settings)
        # the example journeys, segments, campaign and policy
        files = sorted((ROOT / "journeys").glob("*.yaml"))
        publish_deployments(settings, prepare_deployments(files, PAST))
        worker = WorkerProcess(settings, work / "worker.log").start()
        try:
            worker.wait_ready(timeout=120)
            assert worker.proc is not None
            return _soak(worker, worker.proc.pid, settings.topics.raw_events, boot, work / "data", plan)
        finally:
            worker.stop()
            if log_to is not None:
                shutil.copyfile(work / "worker.log", log_to)


def _soak(worker: WorkerProcess, pid: int, topic: str, boot: str, data: Path, plan: _Plan) -> dict[str, Any]:
    seconds, rate, customers, sample_s, warmup_s = (
        plan.seconds, plan.rate, plan.customers, plan.sample_s, plan.warmup_s
    )  # fmt: skip
    total = int(seconds * rate)
    producer = Producer({"bootstrap.servers": boot, "linger.ms": 5})
    mix = generate_events(total, customers, seed=27, visitors=0.2)
    samples: list[dict[str, float]] = []
    base_consumed = max(0, _consumed(worker))
    cpu0, t0 = _cpu_s(pid), time.perf_counter()
    next_sample = t0
    offered = 0
    while True:
        now = time.perf_counter()
        due = min(total, int((now - t0) * rate))
        while offered < due:
            ev = next(mix)
            ev["occurred_at"] = iso_from_ms(int(time.time() * 1000))
            key = next(iter(ev["identifiers"].values())).encode()
            producer.produce(topic, key=key, value=orjson.dumps(ev))
            offered += 1
        producer.poll(0)
        if now >= next_sample:
            consumed = max(0, _consumed(worker) - base_consumed)
            text = _metrics(worker)
            samples.append(
                {
                    "t": round(now - t0, 1),
                    "rss_mb": round(_rss_mb(pid), 1),
                    "cpu_s": round(_cpu_s(pid) - cpu0, 2),
                    "offered": offered,
                    "consumed": consumed,
                    "lag": offered - consumed,
                    **{
                        f"{stage}_records": _sum(text, f'orchestrator_stage_records_total{{stage="{stage}"}}')
                        for stage in ("ingest", "identify", "customer")
                    },
                    "rocksdb_mb": round(sum(_rocksdb_mb(text).values()), 1),
                    # what else could grow, to tell a step in the RSS apart
                    "heap_in_use_mb": round(_sum(text, 'orchestrator_heap_bytes{state="in_use"}') / MB, 1),
                    "heap_free_mb": round(_sum(text, 'orchestrator_heap_bytes{state="free"}') / MB, 1),
                    "pending_timers": _sum(text, "orchestrator_pending_timers{"),
                    "identity_customers": _sum(text, "orchestrator_identity_customers"),
                    "identity_cached": _sum(text, "orchestrator_identity_cached_entries"),
                    "timers_in_memory": _sum(text, "orchestrator_timers_in_memory"),
                    "identify_held": _sum(text, "orchestrator_identify_held_events"),
                    "rereads": _sum(text, "orchestrator_rereads_total"),
                    "stuck": _sum(text, "orchestrator_partition_stuck"),
                }
            )
            next_sample += sample_s
            if now - t0 >= seconds:
                break
        time.sleep(0.005)
    producer.flush(30)
    after = [s for s in samples if s["t"] >= warmup_s]
    slope = rss_slope_mb_per_10min([(s["t"], s["rss_mb"]) for s in after])
    # what grows beside RocksDB (whose memtables and caches fill up to their bounds)
    rest = rss_slope_mb_per_10min([(s["t"], s["rss_mb"] - s["rocksdb_mb"]) for s in after])
    last = samples[-1]
    return {
        "what": __doc__,
        "seconds": seconds,
        "rate": rate,
        "settings": plan.settings,
        "customers": customers,
        "warmup_s": warmup_s,
        "offered": offered,
        "consumed": last["consumed"],
        "rss_mb_start": samples[0]["rss_mb"],
        "rss_mb_after_warmup": after[0]["rss_mb"] if after else None,
        "rss_mb_end": last["rss_mb"],
        "rss_slope_mb_per_10min": round(slope, 2),
        "rocksdb_mb_after_warmup": after[0]["rocksdb_mb"] if after else None,
        "rocksdb_mb_end": last["rocksdb_mb"],
        "rss_slope_beside_rocksdb_mb_per_10min": round(rest, 2),
        "max_lag_after_warmup": max((s["lag"] for s in after), default=0),
        "cpu_share": round(last["cpu_s"] / max(last["t"], 1e-9), 3),
        "dead_letters": _sum(_metrics(worker), "orchestrator_invalid_events_total"),
        "data_dir_mb": round(_dir_mb(data), 1),
        "samples": samples,
    }


def _one_event_each(customers: int) -> Iterator[tuple[bytes, bytes]]:
    """One event of the generated mix per customer (``m-<i>``), in the last minutes by the wall clock
    (live: journeys that wait keep a timer pending)."""
    start = int(time.time() * 1000) - customers
    for i, ev in enumerate(generate_events(customers, customers, seed=31)):
        cid = f"m-{i}"
        ev["identifiers"] = {"customer_id": cid, "email": f"{cid}@example.com"}
        ev["event_id"] = f"m-{ev['event_id']}"
        ev["occurred_at"] = iso_from_ms(start + i)
        yield cid.encode(), orjson.dumps(ev)


def bench_held(
    bootstrap: str | None,
    *,
    quick: bool = False,
    customers: int | None = None,
    partitions: int = 6,
    timeout: float = 3600.0,
    settings_over: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Memory of one worker holding many customers on RocksDB (issue 27's 1,000,000): one event each
    (the generated mix: some customers enter journeys and keep timers pending), pre-produced; once all
    are consumed and the worker has settled, its RSS against its RSS before the first event.
    ``settings_over``: worker settings to change (to compare, e.g. ``malloc_trim_s``)."""
    n = customers or (5_000 if quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-held-") as tmp, broker(bootstrap, Path(tmp)) as boot:
        work = Path(tmp)
        settings = unique_settings(
            boot, work / "data", partitions=partitions, store="rocksdb://", **(settings_over or {})
        )
        create_topics(settings)
        files = sorted((ROOT / "journeys").glob("*.yaml"))
        publish_deployments(settings, prepare_deployments(files, PAST))
        worker = WorkerProcess(settings, work / "worker.log").start()
        try:
            worker.wait_ready(timeout=120)
            assert worker.proc is not None
            pid = worker.proc.pid
            rss0 = _rss_mb(pid)
            producer = Producer({"bootstrap.servers": boot, "linger.ms": 20, "batch.num.messages": 10_000})
            for key, value in _one_event_each(n):
                while True:
                    try:
                        producer.produce(settings.topics.raw_events, key=key, value=value)
                        break
                    except BufferError:
                        producer.poll(0.05)
            if producer.flush(120):
                raise RuntimeError("pre-produced events not delivered")
            t0, cpu0 = time.perf_counter(), _cpu_s(pid)
            peak, held_peak = rss0, 0
            deadline = time.monotonic() + timeout
            while _consumed(worker) < n:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{_consumed(worker)}/{n} consumed in {timeout:.0f} s\n{worker.log_tail()}"
                    )
                peak = max(peak, _rss_mb(pid))
                held_peak = max(held_peak, _sum(_metrics(worker), "orchestrator_identify_held_events"))
                time.sleep(1.0)
            seconds = time.perf_counter() - t0
            cpu = _cpu_s(pid) - cpu0
            # the last batches written, memtables as they stay, and the heap's free memory given back
            time.sleep(10.0 if quick else max(10.0, settings.malloc_trim_s + 5.0))
            rss = _rss_mb(pid)
            text = _metrics(worker)
            return {
                "what": bench_held.__doc__,
                "customers": n,
                "partitions": partitions,
                "settings": {
                    **settings.rocksdb_options(),
                    "rocksdb_memory_mb": settings.rocksdb_memory_mb,
                    "malloc_trim_s": settings.malloc_trim_s,
                    "identity_cache": settings.identity_cache,
                    "timer_cache": settings.timer_cache,
                },
                "rss_mb_before": round(rss0, 1),
                "rss_mb_peak": round(max(peak, rss), 1),
                "rss_mb_held": round(rss, 1),
                "rss_bytes_per_customer": round((rss - rss0) * 1024 * 1024 / n, 1),
                "pending_timers": _sum(text, "orchestrator_pending_timers{"),
                "rocksdb_mb": _rocksdb_mb(text),
                "identity_customers": _sum(text, "orchestrator_identity_customers"),
                "identity_cached": _sum(text, "orchestrator_identity_cached_entries"),
                "identity_table_reads": _sum(text, "orchestrator_identity_table_reads"),
                "timers_in_memory": _sum(text, "orchestrator_timers_in_memory"),
                "timer_table_scans": _sum(text, "orchestrator_timer_table_scans"),
                "heap_in_use_mb": round(_sum(text, 'orchestrator_heap_bytes{state="in_use"}') / MB, 1),
                "heap_free_mb": round(_sum(text, 'orchestrator_heap_bytes{state="free"}') / MB, 1),
                "identify_held_peak": held_peak,
                "events_per_s": round(n / seconds, 1) if seconds > 0 else 0.0,
                "cpu_us_per_event": round(cpu * 1e6 / n, 1),
                "data_dir_mb": round(_dir_mb(work / "data"), 1),
            }
        finally:
            worker.stop()
