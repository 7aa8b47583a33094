"""One Faust benchmark variant, run as its own process by :mod:`orchestrator.bench.baseline`.

``python -m orchestrator.bench.faust_worker '<json spec>'``; the spec names the variant, topics, app id,
store, data dir, Faust settings and a result file.  The worker times from the first event its agent sees to
the last one processed (and, for variants that produce, until the producer has flushed), writes the result
file and exits with ``os._exit`` -- the parent kills it anyway if it has not finished in time.

Variants (``kind``):
  decode      ``async for key, value in stream.items()`` + orjson decode
  send        decode + ``await out.send(...)`` per event (Faust defers it to the event's ack)
  send_soon   decode + ``out.send_soon(...)`` per event
  send_wait   decode + ``await (await out.send(..., force=True))``: waits for delivery of every event
  table       send + ``counts[customer] += 1`` per event (changelog write per event)
  batch       ``stream.take_events(n, within=s)`` + send_soon per event + one table write (and one
              changelog record) per customer per batch
  verify      recovery check: on the first event, read back the table and report the sum of all counts
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.streams import _current_event
from faust.types import EventT

from orchestrator.bench.common import Stopwatch

__all__ = ["build_app", "main"]


def _write(path: str | Path, text: str) -> None:
    Path(path).write_text(text)


def build_app(spec: dict[str, Any]) -> faust.App:
    """The Faust app of one benchmark variant."""
    settings: dict[str, Any] = {
        "broker": f"kafka://{spec['bootstrap']}",
        "store": spec.get("store", "memory://"),
        "datadir": spec["data_dir"],
        "web_enabled": False,
        "topic_partitions": spec["partitions"],
        "topic_replication_factor": 1,
        "consumer_auto_offset_reset": "earliest",
        "autodiscover": False,
    }
    settings.update(spec.get("settings", {}))
    app = faust.App(spec["app_id"], **settings)
    kind: str = spec["kind"]
    n_events: int = spec["events"]
    result_path = Path(spec["result"])
    source = app.topic(
        spec["topic"],
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec["partitions"],
    )
    out = app.topic(
        spec["out_topic"],
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec["partitions"],
    )
    counts: Any = None
    if kind in ("table", "batch", "verify"):  # key serializer "raw", value "json" (the app defaults)
        counts = app.Table(
            "counts", default=int, partitions=spec["partitions"], key_type=bytes, value_type=int
        )
    clock = Stopwatch()
    done = asyncio.Event()
    state: dict[str, Any] = {"n": 0, "extra": {}}
    profiler: Any = None
    if spec.get("pyinstrument"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")

    spy: list[subprocess.Popen[bytes]] = []

    def on_first() -> None:
        state["extra"]["log_levels"] = {
            name: logging.getLevelName(logging.getLogger(name).getEffectiveLevel())
            for name in ("", "faust", "aiokafka", "mode", "faust.topics")
        }
        clock.start()
        if profiler is not None:
            profiler.start()
        if spec.get("pyspy"):  # attach to ourselves: the profile covers the timed window only
            exe = str(Path(sys.executable).with_name("py-spy"))
            spy.append(
                subprocess.Popen(
                    [
                        exe,
                        "record",
                        "--pid",
                        str(os.getpid()),
                        "--format",
                        "raw",
                        "--threads",
                        "--idle",
                        "--rate",
                        "200",
                        "--nonblocking",
                        "-o",
                        spec["pyspy"],
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def tick(k: int = 1) -> None:
        if state["n"] == 0:
            on_first()
        state["n"] += k
        if state["n"] >= n_events:
            done.set()

    async def finisher() -> None:
        await done.wait()
        if kind not in ("decode", "verify"):
            await app.producer.flush()
        clock.stop()
        if profiler is not None:
            profiler.stop()
            _write(spec["pyinstrument"], profiler.output_text(unicode=False, color=False))
        result = {
            "events": state["n"],
            "seconds": clock.wall,
            "cpu_seconds": clock.cpu,
            "extra": state["extra"],
        }
        _write(result_path, json.dumps(result))
        for proc in spy:  # SIGINT makes py-spy write its output
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    app.task(finisher)

    if kind == "decode":

        async def agent(stream: faust.StreamT[bytes]) -> None:
            async for _key, value in stream.items():
                orjson.loads(value)
                tick()

    elif kind in ("send", "send_soon", "send_wait"):

        async def agent(stream: faust.StreamT[bytes]) -> None:
            async for key, value in stream.items():
                doc = orjson.loads(value)
                payload = orjson.dumps({"customer": doc["customer"], "action": "noop", "src": doc["id"]})
                if kind == "send":
                    await out.send(key=key, value=payload)
                elif kind == "send_soon":
                    out.send_soon(key=key, value=payload)
                else:
                    await (await out.send(key=key, value=payload, force=True))
                tick()

    elif kind == "table":

        async def agent(stream: faust.StreamT[bytes]) -> None:
            async for key, value in stream.items():
                doc = orjson.loads(value)
                counts[key] += 1
                payload = orjson.dumps({"customer": doc["customer"], "action": "noop", "src": doc["id"]})
                await out.send(key=key, value=payload)
                tick()

    elif kind == "batch":
        size = int(spec.get("batch_size", 1000))
        within = float(spec.get("batch_within", 0.05))

        async def agent(stream: faust.StreamT[bytes]) -> None:
            batches = 0
            producer = app.producer
            out_name = out.get_topic_name()
            async for events in stream.take_events(size, within=within):  # type: ignore[attr-defined]
                latest: dict[bytes, tuple[EventT[Any], int]] = {}  # customer -> (last event, new count)
                futures = []
                for event in events:
                    key: bytes = event.key
                    doc = orjson.loads(event.value)
                    prev = latest.get(key)
                    latest[key] = (event, (prev[1] if prev is not None else counts[key]) + 1)
                    payload = orjson.dumps({"customer": doc["customer"], "action": "noop", "src": doc["id"]})
                    # Faust's thin transport producer (aiokafka send): no FutureMessage/sensors per event.
                    futures.append(await producer.send(out_name, key, payload, None, None, None))
                for key, (event, n) in latest.items():
                    # a table write needs "the current event" (its partition); take_events() does not set it
                    _current_event.set(weakref.ref(event))
                    counts[key] = n
                _current_event.set(None)
                await asyncio.gather(*futures)
                batches += 1
                state["extra"]["batches"] = batches
                tick(len(events))

    elif kind == "verify":

        async def agent(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                _check(event)
                tick()

        def _check(event: EventT[Any]) -> None:
            total = sum(v for _k, v in counts.data.items())
            state["extra"].update(
                {
                    "table_sum": total,
                    "table_keys": len(list(counts.data.keys())),
                    "probe_key": event.key.decode() if isinstance(event.key, bytes) else None,
                    "probe_count": counts.data.get(event.key, 0),
                    "probe_partition_offset": [event.message.partition, event.message.offset],
                }
            )

    else:
        raise SystemExit(f"unknown kind {kind!r}")

    app.agent(source, name=f"bench-{kind}")(agent)
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m orchestrator.bench.faust_worker '<json spec>'``."""
    args = sys.argv[1:] if argv is None else argv
    spec: dict[str, Any] = json.loads(args[0])
    app = build_app(spec)
    asyncio.set_event_loop(asyncio.new_event_loop())
    worker = faust.Worker(app, loglevel=spec.get("loglevel", "WARNING"), quiet=True)
    if spec.get("fix_logging"):
        # faust.Worker at loglevel >= WARN installs a progress-spinner log handler and sets the ROOT logger
        # to DEBUG, so every logger.debug() in faust/aiokafka/mode builds a LogRecord.  No spinner, no DEBUG.
        worker.spinner = None
    started = time.time()
    try:
        worker.execute_from_commandline()
    finally:
        Path(spec["result"] + ".exit").write_text(json.dumps({"uptime": time.time() - started}))


if __name__ == "__main__":
    main()
