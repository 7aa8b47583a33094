"""Per-event throughput: raw aiokafka / confluent-kafka against Faust variants (issue 2).

    .venv/bin/python -m orchestrator.bench.baseline --bootstrap 127.0.0.1:19092 --events 100000 \
        [--partitions 1,6] [--repeats 3] [--variants raw_aiokafka,faust_decode,...] [--json out.json]

Every run uses fresh uuid-named topics (and consumer group / Faust app id), creates them with the admin
client, pre-produces the same events, then times from the first message consumed to the last one
processed (producer flushed).  Faust variants run in their own subprocess, killed at the end in any case.
``--check-recovery`` runs the Kafka-compatibility check: tables with changelog, a restart that recovers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaException, Producer

from orchestrator.bench.common import (
    RunResult,
    Stopwatch,
    create_topics,
    delete_topics,
    list_topics,
    make_events,
    new_name,
    preproduce,
)

__all__ = ["FAUST_VARIANTS", "RAW_VARIANTS", "main", "run_faust", "run_raw_aiokafka", "run_raw_confluent"]

#: Faust settings that plausibly matter for throughput (see docs/performance.md).
TUNED: dict[str, Any] = {
    "stream_buffer_maxsize": 131_072,
    "broker_max_poll_records": 10_000,
    "consumer_max_fetch_size": 8 * 1024**2,
    "stream_wait_empty": False,
    "producer_linger": 0.005,
    "producer_max_batch_size": 256 * 1024,
    "broker_commit_every": 50_000,
}

#: variant name -> worker spec fragment
FIX = {"fix_logging": True}
FAUST_VARIANTS: dict[str, dict[str, Any]] = {
    # as shipped: `faust worker` defaults (loglevel WARN => root logger at DEBUG, see faust_worker.py)
    "faust_decode": {"kind": "decode"},
    "faust_send": {"kind": "send"},
    "faust_send_soon": {"kind": "send_soon"},
    "faust_send_wait": {"kind": "send_wait"},
    "faust_table_mem": {"kind": "table"},
    "faust_table_rocks": {"kind": "table", "store": "rocksdb://"},
    # logging fixed (no spinner handler, root stays at WARNING)
    "faust_decode_fixlog": {"kind": "decode", **FIX},
    "faust_send_fixlog": {"kind": "send", **FIX},
    "faust_table_mem_fixlog": {"kind": "table", **FIX},
    # logging fixed + settings that plausibly matter
    "faust_decode_tuned": {"kind": "decode", "settings": TUNED, **FIX},
    "faust_send_soon_tuned": {"kind": "send_soon", "settings": TUNED, **FIX},
    "faust_table_mem_tuned": {"kind": "table", "settings": TUNED, **FIX},
    "faust_table_rocks_tuned": {"kind": "table", "store": "rocksdb://", "settings": TUNED, **FIX},
    # take_events batches, one table write + changelog record per customer per batch
    "faust_batch_table_mem": {"kind": "batch", "settings": TUNED, **FIX},
    "faust_batch_table_rocks": {"kind": "batch", "store": "rocksdb://", "settings": TUNED, **FIX},
}
RAW_VARIANTS = ("raw_aiokafka", "raw_confluent")
DEFAULT_VARIANTS = (*RAW_VARIANTS, *FAUST_VARIANTS)


def _output(value: bytes) -> bytes:
    doc = orjson.loads(value)
    return orjson.dumps({"customer": doc["customer"], "action": "noop", "src": doc["id"]})


async def run_raw_aiokafka(
    bootstrap: str,
    topic: str,
    out_topic: str,
    n: int,
    limit_s: float,
    *,
    transform: Callable[[bytes], bytes] | None = _output,
    name: str = "raw_aiokafka",
) -> RunResult:
    """getmany -> ``transform`` (orjson decode/encode; None: the value unchanged) -> send (not awaited
    per message) -> gather + commit per batch."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=new_name("g-raw-aio"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    await consumer.start()
    clock = Stopwatch()
    seen = 0
    deadline = time.monotonic() + limit_s
    try:
        while seen < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw_aiokafka: {seen}/{n} after {limit_s}s")
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches:
                continue
            if seen == 0:
                clock.start()
            futs = []
            for records in batches.values():
                for rec in records:
                    value = rec.value if transform is None else transform(rec.value)
                    futs.append(await producer.send(out_topic, value, key=rec.key))
                    seen += 1
            await asyncio.gather(*futs)
            await consumer.commit()
        clock.stop()
    finally:
        await consumer.stop()
        await producer.stop()
    return RunResult(name, 0, seen, clock.wall, clock.cpu)


def run_raw_confluent(bootstrap: str, topic: str, out_topic: str, n: int, timeout: float) -> RunResult:
    """consume(num_messages=1000) -> orjson -> produce -> flush + commit per batch."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": new_name("g-raw-ck"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"})
    consumer.subscribe([topic])
    clock = Stopwatch()
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw_confluent: {seen}/{n} after {timeout}s")
            msgs = consumer.consume(num_messages=1000, timeout=1.0)
            if not msgs:
                continue
            if seen == 0:
                clock.start()
            for msg in msgs:
                if msg.error():
                    raise KafkaException(msg.error())
                producer.produce(out_topic, _output(msg.value() or b""), key=msg.key())
                seen += 1
            producer.poll(0)
            if producer.flush(30):
                raise RuntimeError("raw_confluent: flush timed out")
            consumer.commit(asynchronous=False)
        clock.stop()
    finally:
        consumer.close()
    return RunResult("raw_confluent", 0, seen, clock.wall, clock.cpu)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def _spawned(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` in its own process group; always kill the group on exit."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            _kill_group(proc)


def run_faust(
    variant: str,
    spec: dict[str, Any],
    workdir: Path,
    timeout: float,
) -> RunResult:
    """Run one Faust variant in a subprocess and read its result file."""
    result = workdir / f"{spec['app_id']}.{variant}.result.json"
    result.unlink(missing_ok=True)  # never read a previous run's result
    spec = {**spec, "result": str(result)}
    spec.setdefault("data_dir", str(workdir / spec["app_id"]))
    cmd = [sys.executable, "-m", "orchestrator.bench.faust_worker", json.dumps(spec)]
    log = workdir / f"{spec['app_id']}.{variant}.log"
    with _spawned(cmd, log) as proc, contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    if not result.exists():
        tail = log.read_text(errors="replace")[-1500:]
        return RunResult(variant, spec["partitions"], 0, 0.0, 0.0, ok=False, error=f"no result; log: {tail}")
    data = json.loads(result.read_text())
    return RunResult(
        variant, spec["partitions"], data["events"], data["seconds"], data["cpu_seconds"], extra=data["extra"]
    )


def one_run(
    variant: str,
    args: argparse.Namespace,
    events: list[tuple[bytes, bytes]],
    partitions: int,
    workdir: Path,
) -> RunResult:
    """Fresh topics, pre-produce, time one variant, delete the topics."""
    topic, out_topic = new_name("bench-in"), new_name("bench-out")
    app_id = new_name("bench-app")
    create_topics(args.bootstrap, [topic, out_topic], partitions)
    preproduce(args.bootstrap, topic, events)
    n = len(events)
    try:
        if variant == "raw_aiokafka":
            res = asyncio.run(run_raw_aiokafka(args.bootstrap, topic, out_topic, n, args.timeout))
        elif variant == "raw_confluent":
            res = run_raw_confluent(args.bootstrap, topic, out_topic, n, args.timeout)
        else:
            spec = {
                **FAUST_VARIANTS[variant],
                "bootstrap": args.bootstrap,
                "topic": topic,
                "out_topic": out_topic,
                "app_id": app_id,
                "partitions": partitions,
                "events": n,
            }
            if args.profile == "py-spy":
                spec["pyspy"] = str(workdir / f"{variant}-p{partitions}.pyspy.txt")
            if args.pyinstrument:
                spec["pyinstrument"] = str(workdir / f"{variant}-p{partitions}.pyinstrument.txt")
            res = run_faust(variant, spec, workdir, args.timeout)
    except Exception as exc:
        res = RunResult(variant, partitions, 0, 0.0, 0.0, ok=False, error=repr(exc))
    finally:
        delete_topics(args.bootstrap, [topic, out_topic, *list_topics(args.bootstrap, app_id)])
    res.partitions = partitions
    return res


def check_recovery(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Faust on this broker: consume, produce, table + changelog, restart that recovers the table.

    Run 1 counts events per customer (memory or rocksdb store), run 2 starts the same app id again
    (memory: fresh data dir, so only the changelog can restore it; rocksdb: same data dir) and reads the
    table back when the first new event arrives.
    """
    n = min(args.events, 20_000)
    partitions = 6
    report: dict[str, Any] = {}
    for store in ("memory://", "rocksdb://"):
        topic, out_topic, app_id = new_name("chk-in"), new_name("chk-out"), new_name("chk-app")
        create_topics(args.bootstrap, [topic, out_topic], partitions)
        events = make_events(n)
        preproduce(args.bootstrap, topic, events)
        base = {
            "bootstrap": args.bootstrap,
            "topic": topic,
            "out_topic": out_topic,
            "app_id": app_id,
            "partitions": partitions,
            "store": store,
            "data_dir": str(workdir / f"{app_id}-run1"),
        }
        first = run_faust("check_run1", {**base, "kind": "table", "events": n}, workdir, args.timeout)
        probe = make_events(1, seed=99)
        preproduce(args.bootstrap, topic, probe)
        second_dir = str(workdir / (f"{app_id}-run2" if store == "memory://" else f"{app_id}-run1"))
        second = run_faust(
            "check_run2",
            {**base, "kind": "verify", "events": 1, "data_dir": second_dir, "app_id": app_id},
            workdir,
            args.timeout,
        )
        changelog = [t for t in list_topics(args.bootstrap, app_id) if t.endswith("changelog")]
        from confluent_kafka.admin import AdminClient

        meta = AdminClient({"bootstrap.servers": args.bootstrap}).list_topics(timeout=15)
        out_parts = len(meta.topics[out_topic].partitions) if out_topic in meta.topics else 0
        # the first event run 2 sees: the probe if run 1's offsets were committed, else a re-delivered one
        seen_key = str(second.extra.get("probe_key", "")).encode()
        expected_probe = sum(1 for k, _ in events if k == seen_key)
        report[store] = {
            "run1": first.as_dict(),
            "run2": second.as_dict(),
            "expected_table_sum": n,
            "expected_probe_count": expected_probe,
            "changelog_topics": changelog,
            "out_topic_partitions": out_parts,
            "recovered": second.ok
            and second.extra.get("table_sum") == n
            and second.extra.get("probe_count") == expected_probe,
        }
        delete_topics(args.bootstrap, [topic, out_topic, *list_topics(args.bootstrap, app_id)])
    return report


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'variant':<26} {'parts':>5} {'median ev/s':>12} {'runs ev/s':<30} {'cpu/wall':>8}",
        "-" * 86,
    ]
    for r in rows:
        runs = ", ".join(f"{x:,.0f}" for x in r["runs_events_per_s"])
        lines.append(
            f"{r['variant']:<26} {r['partitions']:>5} {r['median_events_per_s']:>12,.0f} {runs:<30} "
            f"{r['median_cpu_share']:>8.2f}"
        )
    return "\n".join(lines)


def summarize(results: list[RunResult]) -> list[dict[str, Any]]:
    """Median per (variant, partitions)."""
    keys: list[tuple[str, int]] = []
    for r in results:
        if (r.variant, r.partitions) not in keys:
            keys.append((r.variant, r.partitions))
    rows = []
    for variant, parts in keys:
        runs = [r for r in results if r.variant == variant and r.partitions == parts and r.ok]
        rows.append(
            {
                "variant": variant,
                "partitions": parts,
                "median_events_per_s": statistics.median(r.events_per_s for r in runs) if runs else 0.0,
                "runs_events_per_s": [round(r.events_per_s, 1) for r in runs],
                "median_cpu_share": statistics.median(r.cpu_seconds / r.seconds for r in runs)
                if runs
                else 0.0,
                "failed_runs": sum(
                    1 for r in results if r.variant == variant and r.partitions == parts and not r.ok
                ),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.bench.baseline", description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", default="1", help="comma-separated, e.g. 1,6")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument("--timeout", type=float, default=240.0, help="per run, seconds")
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--profile", choices=["py-spy"], help="py-spy the Faust worker over the timed window")
    parser.add_argument(
        "--pyinstrument", action="store_true", help="pyinstrument the Faust worker's main thread"
    )
    parser.add_argument("--workdir", help="keep logs/profiles here (default: a temp dir, removed)")
    parser.add_argument(
        "--check-recovery", action="store_true", help="run the Kafka/Faust compatibility check"
    )
    args = parser.parse_args(argv)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in DEFAULT_VARIANTS]
    if unknown:
        parser.error(f"unknown variants: {unknown}")
    events = make_events(args.events)
    sizes = [len(v) for _, v in events]
    print(f"{len(events)} events, mean value {statistics.mean(sizes):.0f} B", flush=True)

    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = Path(args.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        report: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "events": len(events),
            "mean_value_bytes": statistics.mean(sizes),
            "bootstrap": args.bootstrap,
        }
        results: list[RunResult] = []
        for parts in (int(p) for p in args.partitions.split(",")):
            for rep in range(args.repeats):
                for variant in variants:
                    res = one_run(variant, args, events, parts, workdir)
                    results.append(res)
                    share = res.cpu_seconds / max(res.seconds, 1e-9)
                    status = f"{res.events_per_s:,.0f} ev/s cpu/wall {share:.2f}"
                    print(
                        f"[p={parts} r={rep}] {variant:<26} {status if res.ok else 'FAILED ' + res.error}",
                        flush=True,
                    )
        rows = summarize(results)
        report["summary"] = rows
        report["runs"] = [r.as_dict() for r in results]
        if args.check_recovery:
            report["recovery_check"] = check_recovery(args, workdir)
            print(json.dumps(report["recovery_check"], indent=1, default=str))
        print(_table(rows))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
