"""``orchestrator bench [--quick] [--only e2e,engine,...] [--bootstrap HOST:PORT] [--json FILE]``.

Measures the orchestrator (issue 8; docs/performance.md): end-to-end throughput of one worker on a real
broker against a raw passthrough, event -> action latency, each stage on its own, the pure engine
with 10/100/1,000 journeys, the timer index, bytes of state per customer, and ``orchestrator simulate``.
Without ``--bootstrap`` the e2e and stages parts start a local Apache Kafka on free ports (and stop it).
``--quick``: small sizes, for CI.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["DEFAULT_SECTIONS", "SECTIONS", "bench_command", "register", "summary_table"]

SECTIONS = (
    "engine", "cel", "segments", "learning", "processor", "timers", "state", "simulate", "stages", "lateness",
    "e2e", "scale", "soak", "held",
)  # fmt: skip
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s not in ("scale", "soak", "held", "learning"))
"""What a bare ``orchestrator bench`` runs: the scale-out (two runs of 50,000 events), the soak (20
minutes) and held (1,000,000 customers) only when asked for; so is learning (the run stage's cost to
journeys that do not use it, ~1 minute): a question asked of one change, not a figure of every run."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks: e2e on Kafka, engine, timers, state, simulate")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run, < 2 minutes)")
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_SECTIONS),
        metavar="LIST",
        help=f"comma-separated of {','.join(SECTIONS)} (default: all but scale, soak, held and learning)",
    )
    parser.add_argument("--bootstrap", default=None, help="broker for e2e (default: start a local one)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the results as JSON")
    parser.add_argument(
        "--events", type=int, default=None, help="e2e backlog size (default 50,000; quick 3,000)"
    )
    parser.add_argument("--sim-events", type=int, default=None, help="simulate file size (default 200,000)")
    parser.add_argument("--partitions", type=int, default=1, help="e2e: partitions of the worker's topics")
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=None,
        help="e2e: offered events/s (default: half the measured max)",
    )
    parser.add_argument("--store", default="rocksdb://", help="e2e: the worker's table store")
    parser.add_argument(
        "--stage-events",
        type=int,
        default=None,
        help="stages: events per stage (default 60,000; quick 2,000)",
    )
    parser.add_argument("--stage-partitions", type=int, default=6, help="stages: partitions of the topics")
    parser.add_argument(
        "--lateness-seconds", type=float, default=None, help="lateness: idle window (default 660; quick 33)"
    )
    parser.add_argument(
        "--lateness-pending", type=int, default=None, help="lateness: timers held pending (default 1,000)"
    )
    parser.add_argument(
        "--soak-seconds", type=float, default=None, help="soak: duration (default 1,200; quick 60)"
    )
    parser.add_argument("--soak-rate", type=float, default=None, help="soak: offered events/s (default 500)")
    parser.add_argument(
        "--soak-customers", type=int, default=None, help="soak: customers (default 60,000; quick 5,000)"
    )
    parser.add_argument(
        "--held-customers", type=int, default=None, help="held: customers (default 1,000,000; quick 5,000)"
    )
    parser.set_defaults(func=bench_command)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("faust-streaming", "aiokafka", "confluent-kafka", "orjson", "rocksdict", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "-"
    return out


def summary_table(report: dict[str, Any]) -> str:
    """The headline figures of a report, one per line."""
    lines: list[str] = []
    add = lines.append
    s = report.get("sections", {})
    if "e2e" in s:
        e = s["e2e"]
        add(f"e2e      worker {e['worker']['events_per_s']:>12,.0f} ev/s  ({e['worker']['events']:,} events)")
        add(f"e2e      raw passthrough {e['raw_passthrough_aiokafka']['events_per_s']:>9,.0f} ev/s aiokafka")
        add(f"e2e      ratio worker/raw {e['ratio_worker_vs_raw']:>18.4f}")
        if "fast_path_events" in e["worker"]:
            w = e["worker"]
            add(f"e2e      fast path: {w['fast_path_events']:,} of {w['events']:,} events")
        if "writer_only" in e:
            add(
                f"e2e      every event through the writer {e['writer_only']['events_per_s']:>9,.0f} ev/s "
                f"(fast path x{e['ratio_fast_path_vs_writer_only']})"
            )
        lat = e["latency"]
        add(
            f"e2e      latency at {lat['offered_events_per_s']:,.0f} ev/s: p50 {lat['p50_ms']:,.1f} ms, "
            f"p99 {lat['p99_ms']:,.1f} ms ({lat['actions_matched']} actions)"
        )
        h = lat.get("worker_histogram")
        if h:
            add(f"e2e      worker's own histogram: p50 <= {h['p50_le_ms']} ms, p99 <= {h['p99_le_ms']} ms")
    if "stages" in s:
        st = s["stages"]
        raw = st["raw_passthrough_aiokafka"]["records_per_s"]
        add(f"stages   raw passthrough {raw:>12,.0f} rec/s aiokafka ({st['partitions']} partitions)")
        for r in st["stages"]:
            add(
                f"stages   {r['stage']:<8} {r['store']:<11} {r['records_per_s']:>9,.0f} rec/s "
                f"{r['cpu_us_per_record']:>6.1f} us CPU/rec  x{r['ratio_to_raw']} of raw "
                f"({r['records']:,} rec)"
            )
    if "lateness" in s:
        la = s["lateness"]
        add(
            f"lateness {la['fired']:,}/{la['wakeups']:,} wake-ups over {la['window_s']:.0f} idle s, "
            f"{la['pending_held']:,} held: p50 {la['p50_s']:.3f} s, p99 {la['p99_s']:.3f} s, "
            f"max {la['max_s']:.3f} s; overlapping ticks {la['overlapping_warnings']}"
        )
    if "engine" in s:
        for r in s["engine"]["rows"]:
            if "journeys" in r:
                add(
                    f"engine   {r['variant']:<26} {r['journeys']:>5} jrn {r['events_per_s']:>9,.0f} ev/s "
                    f"({r['us_per_event']:.1f} us, x{r['cost_vs_10']})"
                )
    if "processor" in s:
        for r in s["processor"]["rows"]:
            b, o = r["batched"], r["one_by_one"]
            add(
                f"processor {r['shape']:<6} {r['journeys']} jrn: batched {b['us_per_message']:.1f} us/msg, "
                f"one by one {o['us_per_message']:.1f} (x{r['batched_vs_one_by_one']}), "
                f"record {b['mean_record_bytes']:,.0f} B"
            )
            add("          batched, us/msg: " + ", ".join(f"{k} {v:.1f}" for k, v in b["parts_us"].items()))
    if "cel" in s:
        for r in s["cel"]["rows"]:
            add(
                f"cel      {r['condition']:<24} {r['us_with_budget']:8.2f} us with the cost budget, "
                f"{r['us_without']:8.2f} without ({r['ratio']:.2f}x)"
            )
        m = s["cel"]["matches"]
        add(
            f"cel      matches {m['pattern']!r}: RE2 {m['re2_us']:.2f} us, "
            f"Python re {m['python_re_us']:.2f} us "
            f"({m['ratio']:.2f}x); {m['backtracking_case']}: RE2 {m['re2_backtracking_us']:.1f} us, "
            f"Python re {m['python_re_backtracking_s']:.1f} s"
        )
    if "segments" in s:
        for r in s["segments"]["rows"]:
            add(
                f"segments {r['segments']:>3} deployed: {r['us_per_event']:8.2f} us/event "
                f"({r['cost_vs_none']:.2f}x none), record {r['mean_record_bytes']:,} B, "
                f"{r['memberships_per_customer']:.2f} memberships per customer"
            )
        rel = s["segments"].get("release")
        if rel:
            add(
                f"segments release of a campaign over {rel['customers']:,} stored customers: "
                f"{rel['us_per_customer_bytes']:.2f} us/customer by bytes, "
                f"{rel['us_per_customer_decoded']:.2f} decoded ({rel['decoded_vs_bytes']:.1f}x)"
            )
    if "learning" in s:
        _learning_lines(s["learning"], add)
    if "timers" in s:
        for r in s["timers"]["rows"]:
            add(
                f"timers   {r['pending']:>9,} pending, {r['index']:<14} {r['bytes_per_pending']:>7.0f} B "
                f"each, {r['us_per_fired_timer']:.2f} us per fired timer ({r['table_scans']} table scans)"
            )
    if "state" in s:
        st = s["state"]
        for r in st["rows"]:
            add(
                f"state    {r['customers']:>9,} customers: memory {r['memory_bytes_per_customer']:,.0f} B, "
                f"rocksdb {r['rocksdb_bytes_per_customer']:,.0f} B per customer"
            )
        add(
            f"state    stored record {st['mean_record_bytes']:,.0f} B mean (limit 4,096), "
            f"{st['mean_record_bytes_without_inspect_fields']:,.0f} B without the finished journeys and "
            f"late counts ({st['records_with_finished_journeys']:,} of {st['records']:,} records have some)"
        )
        add(f"state    decoded engine state {st['decoded_state_bytes_per_customer']:,.0f} B per customer")
    if "simulate" in s:
        sim = s["simulate"]
        add(f"simulate {sim['events_per_s']:>12,.0f} ev/s  ({sim['events']:,} events, {sim['seconds']} s)")
    if "scale" in s:
        for r in s["scale"]["runs"]:
            add(
                f"scale    {r['workers']} worker(s) {r['events_per_s']:>10,.0f} ev/s, CPU µs/event per "
                f"worker {r['cpu_us_per_event_per_worker']}, broker {r['broker_cpu_s']} CPU s"
            )
        add(f"scale    two workers / one {s['scale']['ratio_two_vs_one']:>12}")
    if "soak" in s:
        so = s["soak"]
        add(
            f"soak     {so['seconds']:.0f} s at {so['rate']:,.0f} ev/s over {so['customers']:,} customers: "
            f"RSS {so['rss_mb_start']:.0f} -> {so['rss_mb_end']:.0f} MB, slope after warm-up "
            f"{so['rss_slope_mb_per_10min']:+.1f} MB/10 min "
            f"({so['rss_slope_beside_rocksdb_mb_per_10min']:+.1f} beside RocksDB, which went "
            f"{so['rocksdb_mb_after_warmup']:.0f} -> {so['rocksdb_mb_end']:.0f} MB), "
            f"max lag {so['max_lag_after_warmup']:,}, "
            f"CPU {so['cpu_share']:.0%}, data {so['data_dir_mb']:.0f} MB, dead letters {so['dead_letters']}"
        )
    if "held" in s:
        he = s["held"]
        add(
            f"held     {he['customers']:,} customers on RocksDB: RSS {he['rss_mb_before']:.0f} -> "
            f"{he['rss_mb_held']:.0f} MB (peak {he['rss_mb_peak']:.0f}), "
            f"{he['rss_bytes_per_customer']:,.0f} B per customer, data {he['data_dir_mb']:.0f} MB, "
            f"{he['pending_timers']:,} timers pending, RocksDB "
            f"{', '.join(f'{k} {v:.0f}' for k, v in he['rocksdb_mb'].items())} MB"
        )
    for name, err in report.get("errors", {}).items():
        add(f"{name:<8} FAILED: {err}")
    return "\n".join(lines)


def _learning_lines(le: dict[str, Any], add: Callable[[str], None]) -> None:
    for r in le["rows"]:
        add(
            f"learning {r['variant']:<2} {r['us_per_event']:8.2f} us/event CPU (x{r['vs_A']:.3f} of A; best "
            f"{r['best_us_per_event']:.2f}, x{r['best_vs_A']:.3f}), median of {le['rounds']}: {r['name']}"
        )
    add(
        f"learning B/A {le['ratio_B_vs_A']:.3f}, C/A {le['ratio_C_vs_A']:.3f} "
        f"(A2/A {le['ratio_A2_vs_A']:.3f}: the noise) over {le['events']:,} events "
        f"(same actions: {le['same_actions']})"
    )
    ins = le["in_situ"]
    add(
        f"learning in B's run: {ins['calls_per_event']:.3f} record_engagement calls per event x "
        f"{ins['us_per_call']:.2f} us = +{ins['us_per_event']:.2f} us/event: x{ins['ratio_vs_A_median']:.3f} "
        f"of A's median, x{ins['ratio_vs_A_best']:.3f} of its best"
    )
    m = le["micro"]
    add(
        f"learning alone: record_engagement {m['record_engagement_us']:.2f} us, choose_send_time "
        f"{m['choose_send_time_us']:.1f} us, choose_channel {m['choose_channel_us']:.1f} us per call"
    )
    u = le["using_it"]
    add(
        f"learning using it (smart_winback): {u['using_us_per_event']:.2f} us/event against "
        f"{u['plain_us_per_event']:.2f} without the options (x{u['ratio_using_vs_plain']:.2f}), "
        f"+{u['extra_us_per_send_decision']} us per send decision ({u['send_decisions']:,}); the choices "
        f"{u['profile']['choices_share']:.0%} of the profiled run"
    )


def bench_command(args: argparse.Namespace) -> int:
    from orchestrator.bench import (
        cel,
        e2e,
        lateness,
        learning,
        micro,
        processor,
        scale,
        segments,
        soak,
        stages,
    )

    wanted = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        print(f"orchestrator bench: unknown sections {unknown}; choose from {list(SECTIONS)}")
        return 2
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "engine": lambda: micro.bench_engine(args.quick),
        "cel": lambda: cel.bench_cel(args.quick),
        "segments": lambda: segments.bench_segments(args.quick),
        "learning": lambda: learning.bench_learning(args.quick),
        "processor": lambda: processor.bench_processor(args.quick),
        "timers": lambda: micro.bench_timers(args.quick),
        "state": lambda: micro.bench_state(args.quick),
        "simulate": lambda: micro.bench_simulate(args.quick, args.sim_events),
        "stages": lambda: stages.bench_stages(
            args.bootstrap, quick=args.quick, events=args.stage_events, partitions=args.stage_partitions
        ),
        "lateness": lambda: lateness.bench_lateness(
            args.bootstrap, quick=args.quick, seconds=args.lateness_seconds, pending=args.lateness_pending
        ),
        "e2e": lambda: e2e.bench_e2e(
            args.bootstrap,
            quick=args.quick,
            events=args.events,
            partitions=args.partitions,
            store=args.store,
            latency_rate=args.latency_rate,
        ),
        "soak": lambda: soak.bench_soak(
            args.bootstrap,
            quick=args.quick,
            seconds=args.soak_seconds,
            rate=args.soak_rate,
            customers=args.soak_customers,
        ),
        "held": lambda: soak.bench_held(args.bootstrap, quick=args.quick, customers=args.held_customers),
        "scale": lambda: scale.bench_scale(args.bootstrap, quick=args.quick, events=args.events),
    }
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "quick": args.quick,
        "machine": {"cpus": _cpu_count(), "platform": platform.platform()},
        "versions": _versions(),
        "sections": {},
        "seconds": {},
        "errors": {},
    }
    t_all = time.perf_counter()
    for name in SECTIONS:
        if name not in wanted:
            continue
        print(f"bench {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            report["sections"][name] = runs[name]()
        except Exception as exc:  # report and go on: one failed part must not hide the others
            report["errors"][name] = repr(exc)[:2000]
        report["seconds"][name] = round(time.perf_counter() - t0, 1)
    report["seconds"]["total"] = round(time.perf_counter() - t_all, 1)
    print(summary_table(report))
    print(f"total {report['seconds']['total']} s")
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 1 if report["errors"] else 0


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0
