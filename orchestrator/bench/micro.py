"""Benchmarks without a broker (issue 8): the pure engine, the timer index, state size, simulate.

Each ``bench_*`` function returns a JSON-ready dict; :mod:`orchestrator.cli.bench` prints and saves them.
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from orchestrator.contracts.engine_event import Event, read_event
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.journey import load_journey_text
from orchestrator.core.journey.registry import JourneyRegistry
from orchestrator.core.resolution import canonical_key
from orchestrator.runtime.processor import Processor
from orchestrator.runtime.timers import TIMER_CACHE, TimerIndex
from orchestrator.simulate.generate import generate_events, write_events
from orchestrator.simulate.runner import EARLIEST_MS, load_registry, load_segments, simulate_file

__all__ = [
    "JOURNEYS_DIR",
    "bench_engine",
    "bench_simulate",
    "bench_state",
    "bench_timers",
    "build_registry",
    "nomatch_journey_yaml",
]

JOURNEYS_DIR = Path(__file__).resolve().parents[2] / "journeys"


def nomatch_journey_yaml(i: int, *, same_type: bool = False) -> str:
    """A journey that never matches the generated events.

    ``same_type=False``: entered by an event type the stream never carries (the registry's index skips
    it); ``same_type=True``: entered by ``page.viewed`` (40 % of the mix) with a condition that is false,
    so every page view evaluates it.
    """
    if same_type:
        entry = f'  event: page.viewed\n  condition: event.source == "never-{i}"\n'
    else:
        entry = f"  event: bench.never_{i}\n"
    return (
        f"id: bench_nomatch_{i}\nversion: 1\nname: No-match journey {i}\nentry:\n{entry}"
        "steps:\n  hello:\n    type: send\n    channel: email\n    category: marketing\n"
        f"    template: bench_{i}\n"
    )


def build_registry(total: int, *, same_type_share: float = 0.0) -> JourneyRegistry:
    """The example journeys of ``journeys/`` plus generated no-match journeys, ``total`` in all."""
    registry = load_registry(JOURNEYS_DIR)
    extra = max(0, total - len(registry))
    same = int(extra * same_type_share)
    for i in range(extra):
        text = nomatch_journey_yaml(i, same_type=i < same)
        registry.deploy(load_journey_text(text, f"bench_nomatch_{i}.yaml"), EARLIEST_MS)
    return registry


def _events(n: int, customers: int, seed: int = 7) -> list[tuple[str, Event]]:
    out = []
    for ev in generate_events(n, customers, seed):
        event = read_event(orjson.dumps(ev))
        out.append((canonical_key(event.identifiers), event))
    return out


def _run_engine(
    registry: JourneyRegistry, events: list[tuple[str, Event]], repeats: int
) -> tuple[float, int]:
    """Best-of-``repeats`` seconds for applying every event (fresh states each time), and the actions."""
    best = float("inf")
    actions = 0
    for _ in range(repeats):
        logic = CustomerLogic(registry)
        states: dict[str, CustomerState] = {}
        actions = 0
        gc.collect()
        t0 = time.perf_counter()
        for key, event in events:
            out = logic.on_event(key, states.get(key), event, event.occurred_ms)
            if out.state is None:
                states.pop(key, None)
            else:
                states[key] = out.state
            actions += len(out.actions)
        best = min(best, time.perf_counter() - t0)
    return best, actions


def bench_engine(quick: bool = False) -> dict[str, Any]:
    """Evaluations/s of CustomerLogic.on_event with 10, 100 and 1,000 journeys deployed."""
    n = 4_000 if quick else 40_000
    repeats = 2 if quick else 3
    events = _events(n, customers=max(500, n // 8))
    rows: list[dict[str, Any]] = []
    for variant, share in (("other_types", 0.0), ("same_type_false_condition", 0.1)):
        for total in (10, 100, 1000):
            registry = build_registry(total, same_type_share=share)
            seconds, actions = _run_engine(registry, events, repeats)
            rows.append(
                {
                    "variant": variant,
                    "journeys": len(registry),
                    "events": n,
                    "seconds": round(seconds, 4),
                    "events_per_s": round(n / seconds, 1),
                    "us_per_event": round(seconds / n * 1e6, 2),
                    "actions": actions,
                }
            )
    for variant in ("other_types", "same_type_false_condition"):
        mine = [r for r in rows if r["variant"] == variant]
        ratio = mine[-1]["us_per_event"] / mine[0]["us_per_event"]
        for r in mine:
            r["cost_vs_10"] = round(r["us_per_event"] / mine[0]["us_per_event"], 2)
        rows.append({"variant": variant, "cost_1000_vs_10": round(ratio, 2)})
    return {
        "what": "CustomerLogic.on_event over generated events (parsed beforehand), states in a dict; "
        "no-match journeys: 'other_types' = entered by event types absent from the stream, "
        "'same_type_false_condition' = 10 % of them entered by page.viewed with a false condition",
        "repeats_best_of": repeats,
        "rows": rows,
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _scan_of(table: dict[str, int]) -> Callable[[int], list[tuple[str, int]]]:
    return lambda partition: list(table.items())


def bench_timers(quick: bool = False) -> dict[str, Any]:
    """TimerIndex with growing pending wake-ups, held whole and bounded (``timer_cache``): memory, and
    the cost of firing due ones (the bounded index's scans of the table included)."""
    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    batch = 1_000
    span = 30 * 86_400_000  # wake-ups spread over 30 days
    rows = []
    for size in sizes:
        for bounded in (False, True):
            rng = random.Random(3)
            table = {f"cust-{c}": 1_000_000 + rng.randrange(span) for c in range(size)}
            gc.collect()
            tracemalloc.start()
            index = TimerIndex(TIMER_CACHE, _scan_of(table)) if bounded else TimerIndex()
            index.load(0, table.items())
            mem = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            dues = sorted(table.values())
            fire = min(size // 2, 120_000)  # past the first horizon: the bounded index reads the table again
            t0 = time.perf_counter()
            fired = 0
            while fired < fire:
                now = dues[min(fired + batch, len(dues)) - 1]
                taken = index.pop_due(0, now, limit=10 * batch)
                for customer, due in taken:  # each customer gets its next wake-up, as the runtime does
                    nxt = due + span + rng.randrange(span)
                    previous = table[customer]
                    table[customer] = nxt
                    index.set(0, customer, nxt, previous)
                fired += len(taken)
            seconds = time.perf_counter() - t0
            rows.append(
                {
                    "pending": size,
                    "index": f"bounded {TIMER_CACHE:,}" if bounded else "whole",
                    "memory_bytes": mem,
                    "bytes_per_pending": round(mem / size, 1),
                    "fired": fired,
                    "table_scans": index.scans,
                    "us_per_fired_timer": round(seconds / fired * 1e6, 3),
                }
            )
            del index, dues, table
    return {
        "what": "orchestrator.runtime.timers.TimerIndex, one partition, held whole and bounded by "
        f"timer_cache={TIMER_CACHE:,} over a dict as the table: memory by tracemalloc after load() of "
        "every pending wake-up; firing = pop_due() of 1,000 due at a time + set() of their next "
        "wake-up, until half (at most 120,000) have fired, table scans included (a dict: RocksDB's "
        "are slower)",
        "rows": rows,
    }


def _sample_records(customers: int, events: int) -> list[bytes]:
    """Stored records (the runtime's customer-table values) of customers after a simulated week, the
    example journeys and segments deployed."""
    registry = load_registry(JOURNEYS_DIR)
    processor = Processor(CustomerLogic(registry, segments=load_segments(JOURNEYS_DIR)))
    records: dict[str, bytes | None] = {}
    for off, (key, event) in enumerate(_events(events, customers, seed=11)):
        done = processor.on_event(key, records.get(key), event, off, event.occurred_ms)
        records[key] = done.record
    return [r for r in records.values() if r is not None]


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_state(quick: bool = False) -> dict[str, Any]:
    """Bytes per customer: the stored record in memory (dict of bytes, as the memory store) and in
    RocksDB (rocksdict, as the runtime's rocksdb:// store) on disk; plus the decoded engine state."""
    from rocksdict import Rdict, WriteBatch

    sizes = (10_000, 100_000) if quick else (100_000, 1_000_000)
    sample = _sample_records(customers=2_000, events=12_000 if quick else 20_000)
    sample_keys = [orjson.loads(r)["s"]["p"]["customer_key"] for r in sample]
    mean_record = statistics.mean(len(r) for r in sample)
    # the same records without what only inspect reads (finished journeys, late/future counts)
    inspect_only = ("f", "tm")
    without = []
    for r in sample:
        data = orjson.loads(r)
        if isinstance(data.get("s"), dict):
            data["s"] = {k: v for k, v in data["s"].items() if k not in inspect_only}
        without.append(len(orjson.dumps(data)))
    mean_without = statistics.mean(without)
    # decoded CustomerState objects (what simulate keeps per customer)
    gc.collect()
    tracemalloc.start()
    decoded = [CustomerState.from_dict(orjson.loads(r)["s"]) for r in sample]
    decoded_bytes = tracemalloc.get_traced_memory()[0] / len(decoded)
    tracemalloc.stop()
    del decoded
    rows = []
    for size in sizes:
        gc.collect()
        tracemalloc.start()
        table: dict[str, bytes] = {}
        for c in range(size):
            j = c % len(sample)
            key = f"{sample_keys[j]}#{c}"
            table[key] = sample[j].replace(sample_keys[j].encode(), key.encode())
        mem = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        with tempfile.TemporaryDirectory(prefix="bench-rocks-") as tmp:
            db = Rdict(str(Path(tmp) / "db"))
            t0 = time.perf_counter()
            wb = WriteBatch()
            for i, (key, value) in enumerate(table.items(), 1):
                wb.put(key.encode(), value)
                if i % 10_000 == 0:
                    db.write(wb)
                    wb = WriteBatch()
            db.write(wb)
            db.flush()
            db.compact_range(None, None)
            write_s = time.perf_counter() - t0
            db.close()
            disk = _dir_bytes(Path(tmp) / "db")
        rows.append(
            {
                "customers": size,
                "memory_bytes": mem,
                "memory_bytes_per_customer": round(mem / size, 1),
                "rocksdb_disk_bytes": disk,
                "rocksdb_bytes_per_customer": round(disk / size, 1),
                "rocksdb_write_s": round(write_s, 2),
            }
        )
        del table
    return {
        "what": "records after a generated week (20k events over 2k customers, example journeys), "
        "replicated with distinct keys; memory = tracemalloc of a dict key->record bytes (the memory "
        "store's shape); disk = rocksdict default options after flush + full compaction",
        "mean_record_bytes": round(mean_record, 1),
        "mean_record_bytes_without_inspect_fields": round(mean_without, 1),
        "records_with_finished_journeys": sum(1 for r in sample if b'"f":[' in r),
        "records": len(sample),
        "decoded_state_bytes_per_customer": round(decoded_bytes, 1),
        "rows": rows,
    }


def bench_simulate(quick: bool = False, events: int | None = None) -> dict[str, Any]:
    """events/s of simulate_file (what ``orchestrator simulate`` runs) over a generated file."""
    n = events or (20_000 if quick else 200_000)
    customers = max(1_000, n // 5)
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        path = Path(tmp) / "events.jsonl"
        write_events(path, n, customers)
        size = path.stat().st_size
        gc.collect()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        result = simulate_file(JOURNEYS_DIR, path, out_path=Path(tmp) / "actions.jsonl")
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    return {
        "what": "simulate_file(journeys/, generated file, --out actions.jsonl), "
        "including loading the journeys; python -m orchestrator.simulate.generate N --customers N/5",
        "events": n,
        "customers": customers,
        "file_bytes": size,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "events_per_s": round(n / seconds, 1),
        "actions": result.actions,
        "python": sys.version.split()[0],
    }
