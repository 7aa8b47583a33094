"""Each stage of the worker on its own (issue 16): events/s and CPU µs per record of ingest, identify and
the customer stage, on a real broker, beside a raw aiokafka passthrough of the same records.

A worker runs one stage (``ORCH_STAGES``) over a backlog of that stage's own input, produced before it
starts: the generated mix with visitors (anonymous identifiers, ~20 %) over ``partitions`` partitions,
re-timed into the last hour, the example journeys and ``nomatch`` never-matching ones deployed.

- **ingest**: the raw events;
- **identify**: what ingest writes for them (``route_raw``), with the raw partitions' watermarks every
  500 events, as the ingest ticker sends them;
- **customer**: what the identify stage writes for them (computed offline by the same
  :class:`~orchestrator.runtime.identify.IdentifyStage`): resolved events, merge hand-overs and the
  customer partitions' watermarks — the "pre-resolved input" of the issue's target.

Clock: from the first change of the worker's ``orchestrator_stage_records_total{stage}`` (polled on
``/metrics`` every 0.1 s) to the poll that saw every input record taken. CPU: the worker process's user +
system time over the same polls (``/proc/<pid>/stat``), per record. The passthrough (aiokafka, one
``send`` per record, same broker, same raw records) runs in the same session: compare ratios, not
absolute numbers, on a shared machine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from orchestrator.bench.baseline import run_raw_aiokafka
from orchestrator.bench.common import create_topics as create_plain_topics
from orchestrator.bench.common import preproduce
from orchestrator.bench.e2e import _deploy, _metrics, broker
from orchestrator.config import Settings
from orchestrator.contracts import ResolvedEvent, parse_event
from orchestrator.core.engine.clock import iso_from_ms
from orchestrator.core.resolution import canonical_key
from orchestrator.kafka.topics import create_topics
from orchestrator.runtime.identify import WATERMARK_KEY, IdentifyStage
from orchestrator.runtime.ingest import route_raw
from orchestrator.simulate.generate import generate_events
from orchestrator.testing import WorkerProcess, unique_settings

__all__ = ["bench_stages"]

WATERMARK_EVERY = 500
"""Input events between two rounds of watermarks (the ingest ticker sends one per raw partition per tick)."""

Record = tuple[int, bytes, bytes]
"""(partition, key, value)."""


@dataclass(frozen=True)
class Inputs:
    raw: list[Record]
    identify: list[Record]
    resolved: list[Record]


def _inputs(n: int, partitions: int, topics: Any, visitors: float = 0.2) -> Inputs:
    """The three stages' inputs for ``n`` generated events (see the module docstring)."""
    choose = DefaultPartitioner()
    every = list(range(partitions))
    start_ms = int(time.time() * 1000) - 3_600_000
    step = 3_600_000 / max(n, 1)
    raw: list[Record] = []
    for i, ev in enumerate(generate_events(n, max(100, n // 10), seed=5, visitors=visitors)):
        ev["occurred_at"] = iso_from_ms(start_ms + int(i * step))
        value = orjson.dumps(ev)
        key = canonical_key(parse_event(value).identifiers).encode()
        raw.append((choose(key, every, every), key, value))
    identify: list[Record] = []
    resolved: list[Record] = []
    stage = IdentifyStage(sources=partitions, partitions=partitions, erasure_key=b"bench-stages")
    offsets = [0] * partitions
    at = datetime.now(UTC)

    def publish(messages: Any) -> None:
        for key, value, partition in messages:
            resolved.append((choose(key, every, every) if partition is None else partition, key, value))

    def mark(at_ms: int) -> None:
        for r in every:
            identify.append((0, WATERMARK_KEY, orjson.dumps({"r": r, "t": at_ms})))
            publish(stage.on_watermark(len(identify) - 1, r, at_ms).messages)

    last_ms = start_ms
    for i, (p, key, value) in enumerate(raw):
        routed = route_raw(
            value, key, topic=topics.raw_events, partition=p, offset=offsets[p], topics=topics, at=at
        )
        offsets[p] += 1
        if routed.topic != topics.identify:
            raise AssertionError(f"a generated event was not resolved: {routed.reason}")
        identify.append((0, routed.key or b"", routed.value))
        event = ResolvedEvent.model_validate_json(routed.value)
        last_ms = event.event.occurred_ms
        publish(stage.on_event(len(identify) - 1, event, last_ms).messages)
        if (i + 1) % WATERMARK_EVERY == 0:
            mark(last_ms)
    # then the clock moves on (as the ticker's watermarks do when the backlog is read): all released
    mark(last_ms + 60_000)
    while stage.held():
        mark(last_ms + 60_000)
    return Inputs(raw, identify, resolved)


def _produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    preproduce(bootstrap, topic, [(k, v) for _, k, v in records], partitions=[p for p, _, _ in records])


def _taken(worker: WorkerProcess, stage: str) -> int:
    prefix = f'orchestrator_stage_records_total{{stage="{stage}"}}'
    for line in _metrics(worker).splitlines():
        if line.startswith(prefix):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(worker: WorkerProcess, stage: str, expected: int, timeout: float) -> dict[str, Any]:
    """The worker is stopped (SIGSTOP) with its input produced: the clock starts, then it goes on."""
    assert worker.proc is not None
    pid = worker.proc.pid
    deadline = time.monotonic() + timeout
    first: tuple[float, int, float] | None = None  # (time, records, cpu) at the last poll before work
    last = (time.perf_counter(), 0, _cpu_s(pid))
    os.kill(pid, signal.SIGCONT)
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{stage}: {last[1]}/{expected} records in {timeout:.0f}s\n{worker.log_tail()}"
            )
        now, cpu = time.perf_counter(), _cpu_s(pid)
        taken = _taken(worker, stage)
        if first is None and taken > 0:
            first = last  # the poll before the first record: the clock starts there
        last = (now, taken, cpu)
        if taken >= expected:
            break
        time.sleep(0.1)
    assert first is not None
    seconds = last[0] - first[0]
    records = last[1] - first[1]
    return {
        "records": records,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds, 1) if seconds > 0 else 0.0,
        "cpu_us_per_record": round((last[2] - first[2]) * 1e6 / max(records, 1), 1),
    }


def _one_stage(
    boot: str,
    work: Path,
    stage: str,
    store: str,
    inputs: Inputs,
    partitions: int,
    nomatch: int,
    timeout: float,
) -> dict[str, Any]:
    settings: Settings = unique_settings(
        boot,
        work / f"{stage}-{store[:3]}",
        partitions=partitions,
        store=store,
        lateness_hours=0,
        stages=stage,
    )
    create_topics(settings)
    _deploy(settings, work, nomatch)
    t = settings.topics
    topic, records = {
        "ingest": (t.raw_events, inputs.raw),
        "identify": (t.identify, inputs.identify),
        "customer": (t.resolved_events, inputs.resolved),
    }[stage]
    worker = WorkerProcess(settings, work / f"{stage}-{store[:3]}.log").start()
    try:
        worker.wait_ready(timeout=120)
        # Produced while the worker is stopped: it is a backlog to catch up on, and the clock starts
        # before the first record is taken (a fast stage once took all of a quick run before the
        # first poll: 0 seconds).
        assert worker.proc is not None
        os.kill(worker.proc.pid, signal.SIGSTOP)
        try:
            _produce(boot, topic, records)
        except BaseException:
            os.kill(worker.proc.pid, signal.SIGCONT)
            raise
        result = _measure(worker, stage, len(records), timeout)
    finally:
        worker.stop()
    return {"stage": stage, "store": store, **result}


def bench_stages(
    bootstrap: str | None,
    *,
    quick: bool = False,
    events: int | None = None,
    partitions: int = 6,
    stores: tuple[str, ...] = ("memory://", "rocksdb://"),
    nomatch: int = 20,
    timeout: float = 600.0,
) -> dict[str, Any]:
    n = events or (2_000 if quick else 60_000)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp, broker(bootstrap, Path(tmp)) as boot:
        work = Path(tmp)
        names = unique_settings(boot, work, partitions=partitions).topics
        inputs = _inputs(n, partitions, names)
        raw_topic = f"{names.raw_events}.raw"
        out_topic = f"{names.raw_events}.passthrough"
        create_plain_topics(boot, [raw_topic, out_topic], partitions)
        _produce(boot, raw_topic, inputs.raw)
        raw = asyncio.run(
            run_raw_aiokafka(boot, raw_topic, out_topic, n, timeout, transform=None, name="raw_passthrough")
        )
        runs = [_one_stage(boot, work, "ingest", "rocksdb://", inputs, partitions, nomatch, timeout)]
        runs.append(_one_stage(boot, work, "identify", "rocksdb://", inputs, partitions, nomatch, timeout))
        for store in stores:
            runs.append(_one_stage(boot, work, "customer", store, inputs, partitions, nomatch, timeout))
        for run in runs:
            run["ratio_to_raw"] = (
                round(run["records_per_s"] / raw.events_per_s, 4) if raw.events_per_s else 0.0
            )
        return {
            "what": __doc__,
            "events": n,
            "partitions": partitions,
            "records": {
                "ingest": len(inputs.raw),
                "identify": len(inputs.identify),
                "customer": len(inputs.resolved),
            },
            "raw_passthrough_aiokafka": {"records": raw.events, "records_per_s": round(raw.events_per_s, 1)},
            "stages": runs,
        }
