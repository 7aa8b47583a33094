"""Scale-out (issue 17): the same backlog caught up by one worker and by two workers of one group, on the
same partitions, with the fast path on. Reported as events/s and CPU-seconds per event of each worker
process, with what the broker's JVM took meanwhile (this machine has 2 shared cores: with two workers
and the broker on them, the figure says what the cores allow, not what a second machine would add).

The events: the e2e mix (:func:`~orchestrator.bench.e2e._events`: 20 % visitors), after the known
customers signed up; the backlog produced while every worker is stopped (SIGSTOP).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.bench.e2e import _consumed, _counter, _deploy, _events, _known, _produce
from orchestrator.kafka.local_broker import LocalBroker, free_port
from orchestrator.kafka.topics import create_topics
from orchestrator.testing import WorkerProcess, unique_settings

__all__ = ["bench_scale"]


@contextlib.contextmanager
def _broker(bootstrap: str | None, workdir: Path) -> Iterator[tuple[str, int | None]]:
    """(bootstrap, the broker's pid when it runs here)."""
    if bootstrap:
        yield bootstrap, None
        return
    local = LocalBroker(port=free_port(), controller_port=free_port(), run_dir=workdir / "kafka")
    info = local.up(timeout=120)
    try:
        yield info.bootstrap, info.pid
    finally:
        local.down()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sum(workers: list[WorkerProcess], metric: str | None = None) -> int:
    return sum(max(0, _consumed(w) if metric is None else _counter(w, metric)) for w in workers)


def _run(
    boot: str, broker_pid: int | None, work: Path, count: int, n: int, customers: int, store: str,
    partitions: int, timeout: float,
) -> dict[str, Any]:  # fmt: skip
    settings = unique_settings(
        boot, work / f"w{count}", partitions=partitions, store=store, lateness_hours=0, fast_path=True
    )
    create_topics(settings)
    _deploy(settings, work, 20)
    workers = [WorkerProcess(settings, work / f"w{count}-{i}.log").start() for i in range(count)]
    try:
        for w in workers:
            w.wait_ready(timeout=180)
        now_ms = int(time.time() * 1000)
        known = _known(customers, 0.2, now_ms - 7_200_000, "s-")
        _produce(boot, settings.topics.raw_events, known)
        deadline = time.monotonic() + timeout
        while _sum(workers) < len(known) or any(
            _counter(w, "orchestrator_claims_read_total") < 2 * len(known) for w in workers
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} workers: the known customers were not taken in {timeout:.0f}s")
            time.sleep(0.2)
        base = _sum(workers)
        pids = [w.proc.pid for w in workers if w.proc is not None]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            _produce(
                boot,
                settings.topics.raw_events,
                _events(n, customers, now_ms - 3_600_000, 3_600_000, "s-", 0.2),
            )
        finally:
            cpu0 = [_cpu_s(pid) for pid in pids]
            broker0 = _cpu_s(broker_pid) if broker_pid else 0.0
            t0 = time.perf_counter()
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        while _sum(workers) < base + n:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{count} workers took {_sum(workers) - base}/{n} events in {timeout:.0f}s"
                )
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        cpu = [_cpu_s(pid) - c for pid, c in zip(pids, cpu0, strict=True)]
        broker_cpu = (_cpu_s(broker_pid) - broker0) if broker_pid else None
        taken = [max(0, _consumed(w)) for w in workers]
        fast = _sum(workers, "orchestrator_fast_path_events_total")
    finally:
        for w in workers:
            w.stop()
    return {
        "workers": count,
        "events": n,
        "seconds": round(seconds, 3),
        "events_per_s": round(n / seconds, 1) if seconds else 0.0,
        "events_taken_per_worker": taken,
        "cpu_s_per_worker": [round(c, 2) for c in cpu],
        "cpu_us_per_event_per_worker": [round(c * 1e6 / n, 1) for c in cpu],
        "cpu_us_per_event_all_workers": round(sum(cpu) * 1e6 / n, 1),
        "broker_cpu_s": None if broker_cpu is None else round(broker_cpu, 2),
        "fast_path_events": fast,
    }


def bench_scale(
    bootstrap: str | None,
    *,
    quick: bool = False,
    events: int | None = None,
    partitions: int = 6,
    store: str = "memory://",
    timeout: float = 900.0,
) -> dict[str, Any]:
    n = events or (3_000 if quick else 50_000)
    customers = max(100, n * 2 // 5)
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp,
        _broker(bootstrap, Path(tmp)) as (boot, pid),
    ):
        work = Path(tmp)
        runs = [_run(boot, pid, work, count, n, customers, store, partitions, timeout) for count in (1, 2)]
    one, two = runs
    return {
        "what": __doc__,
        "partitions": partitions,
        "store": store,
        "customers": customers,
        "cpus": os.cpu_count(),
        "runs": runs,
        "ratio_two_vs_one": round(two["events_per_s"] / one["events_per_s"], 3)
        if one["events_per_s"]
        else 0.0,
    }
