"""Smoke test of ``orchestrator bench --quick`` on the session broker: it runs and reports every part.

No threshold is asserted: shared CI machines are too noisy for that (docs/performance.md has the figures).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest


@pytest.mark.timeout(600)
def test_bench_quick_reports_every_section(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "bench", "--quick", "--bootstrap", kafka_bootstrap,
         "--json", str(out)],
        capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = orjson.loads(out.read_bytes())
    assert report["errors"] == {}
    s = report["sections"]
    assert set(s) == {
        "e2e", "engine", "cel", "segments", "processor", "timers", "state", "simulate", "stages", "lateness",
    }  # fmt: skip
    assert {r["segments"] for r in s["segments"]["rows"]} == {"0", "5", "20", "20+5 campaigns"}
    assert s["segments"]["release"]["us_per_customer_bytes"] > 0
    late = s["lateness"]
    assert late["fired"] == late["wakeups"] > 0, late  # every wake-up fired, none lost
    assert late["pending_at_end"] >= late["pending_held"], late
    assert late["p99_s"] >= late["p50_s"] >= 0
    runs = {(r["stage"], r["store"]): r for r in s["stages"]["stages"]}
    assert set(runs) == {
        ("ingest", "rocksdb://"),
        ("identify", "rocksdb://"),
        ("customer", "memory://"),
        ("customer", "rocksdb://"),
    }
    for (stage, _), run in runs.items():
        assert run["records"] >= s["stages"]["records"][stage] * 0.9, run  # the clock saw (nearly) all
        assert min(run["records_per_s"], run["cpu_us_per_record"], run["ratio_to_raw"]) > 0, run
    assert s["stages"]["records"]["customer"] > s["stages"]["events"]  # events, watermarks, hand-overs
    assert {r["shape"] for r in s["processor"]["rows"]} == {"spread", "hot"}
    assert all(r["batched"]["us_per_message"] > 0 for r in s["processor"]["rows"])
    e2e = s["e2e"]
    assert e2e["worker"]["events_per_s"] > 0
    assert e2e["raw_passthrough_aiokafka"]["events_per_s"] > 0
    assert e2e["ratio_worker_vs_raw"] > 0
    assert e2e["worker"]["fast_path_events"] > 0, e2e["worker"]  # the known customers' events
    assert e2e["writer_only"]["events_per_s"] > 0
    assert e2e["ratio_fast_path_vs_writer_only"] > 0
    assert e2e["latency"]["actions_matched"] > 0
    assert e2e["latency"]["p99_ms"] >= e2e["latency"]["p50_ms"] >= 0
    journeys = {r["journeys"] for r in s["engine"]["rows"] if "journeys" in r}
    assert journeys == {10, 100, 1000}
    assert all(r["events_per_s"] > 0 for r in s["engine"]["rows"] if "journeys" in r)
    assert all(r["memory_bytes"] > 0 and r["us_per_fired_timer"] > 0 for r in s["timers"]["rows"])
    assert len(s["timers"]["rows"]) >= 2
    assert all(
        r["memory_bytes_per_customer"] > 0 and r["rocksdb_bytes_per_customer"] > 0 for r in s["state"]["rows"]
    )
    assert s["simulate"]["events_per_s"] > 0
    assert s["simulate"]["actions"] > 0
    assert "e2e" in proc.stdout
    assert "simulate" in proc.stdout
    assert "stages   customer" in proc.stdout
    assert "lateness " in proc.stdout
    assert "segments  20 deployed" in proc.stdout


@pytest.mark.timeout(300)
def test_bench_soak_samples_memory_cpu_and_lag(kafka_bootstrap: str, tmp_path: Path) -> None:
    stdout, report = _quick_section(
        kafka_bootstrap, tmp_path, "soak", "--soak-seconds", "30", "--soak-rate", "100"
    )
    soak = report["sections"]["soak"]
    assert len(soak["samples"]) >= 10
    assert soak["offered"] == 3000
    assert 0 < soak["consumed"] <= soak["offered"]
    assert soak["dead_letters"] == 0
    assert soak["rss_mb_end"] > 0
    assert soak["data_dir_mb"] > 0
    assert soak["cpu_share"] > 0
    assert soak["rocksdb_mb_end"] > 0  # the worker's RocksDB memory, read from its /metrics
    assert all(s["rocksdb_mb"] > 0 for s in soak["samples"][-3:])
    assert "soak     30 s at 100 ev/s" in stdout


@pytest.mark.timeout(300)
def test_bench_held_reports_memory_per_customer(kafka_bootstrap: str, tmp_path: Path) -> None:
    stdout, report = _quick_section(kafka_bootstrap, tmp_path, "held", "--held-customers", "2000")
    held = report["sections"]["held"]
    assert held["customers"] == 2000
    assert held["rss_mb_held"] >= held["rss_mb_before"] > 0
    assert held["rss_mb_peak"] >= held["rss_mb_held"]
    assert held["pending_timers"] > 0  # some customers wait in a journey
    assert held["settings"]["write_buffer_size"] == 4 * 1024 * 1024
    assert held["rocksdb_mb"]["memtables"] > 0
    assert "held     2,000 customers on RocksDB" in stdout


def _quick_section(kafka: str, tmp_path: Path, section: str, *options: str) -> tuple[str, dict[str, Any]]:
    """``orchestrator bench --quick --only <section>`` on the session broker: its output and report,
    which must have no errors."""
    out = tmp_path / f"{section}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "bench", "--quick", "--only", section, "--bootstrap", kafka,
         *options, "--json", str(out)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    assert report["errors"] == {}
    return proc.stdout, report
