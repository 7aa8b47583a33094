"""Publishing events from a JSON-lines file to the raw events topic (confluent-kafka producer)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.config import Settings
from orchestrator.contracts import parse_event
from orchestrator.core.resolution import canonical_key
from orchestrator.exceptions import InvalidEventError, KafkaSetupError
from orchestrator.kafka.client_log import client_log
from orchestrator.kafka.security import librdkafka_options

__all__ = ["BadLine", "ProduceReport", "TimeCheck", "produce_file"]


@dataclass(frozen=True)
class BadLine:
    line: int
    error: str


@dataclass
class TimeCheck:
    """The lines' times against a clock (the worker's, or this machine's): how many a worker would
    apply as late (older than ``lateness_ms`` behind ``clock_ms``: no journey starts) or as from the
    future (more than ``skew_ms`` ahead of ``now_ms``: applied at the clock)."""

    clock_ms: int
    lateness_ms: int | None
    now_ms: int
    skew_ms: int = 5_000
    source: str = "this machine's clock"
    late: int = 0
    future: int = 0
    oldest_ms: int | None = None
    newest_ms: int | None = None

    def see(self, occurred_ms: int) -> None:
        if self.lateness_ms is not None and self.clock_ms - occurred_ms > self.lateness_ms:
            self.late += 1
        elif occurred_ms > self.now_ms + self.skew_ms:
            self.future += 1
        self.oldest_ms = occurred_ms if self.oldest_ms is None else min(self.oldest_ms, occurred_ms)
        self.newest_ms = occurred_ms if self.newest_ms is None else max(self.newest_ms, occurred_ms)


@dataclass
class ProduceReport:
    sent: int = 0
    bad: list[BadLine] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    times: TimeCheck | None = None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            stripped = line.strip()
            if stripped:
                yield number, stripped


def produce_file(
    path: Path,
    settings: Settings,
    *,
    topic: str | None = None,
    validate: bool = True,
    on_bad: Callable[[BadLine], None] = lambda b: None,
    progress: bool | None = None,
    times: TimeCheck | None = None,
) -> ProduceReport:
    """Publish every line of ``path``; with ``validate`` lines that are not valid events are reported
    (line number and reason) and skipped, the others are keyed by canonical customer key, and their
    times counted against ``times`` (late, future). Without ``validate`` every non-empty line is sent
    as it is (how one feeds the dead-letter path).
    """
    from confluent_kafka import Producer

    if not path.exists():
        raise KafkaSetupError(f"{path}: no such file")
    target = topic or settings.topics.raw_events
    limits = settings.event_limits()  # the bounds the workers' ingest stage applies
    report = ProduceReport(times=times)
    producer = Producer(
        {
            **librdkafka_options(settings),
            "linger.ms": 20,
            "enable.idempotence": True,
            "acks": "all",
            "logger": client_log(),
        }
    )

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            report.failed.append(str(err))

    show = sys.stderr.isatty() if progress is None else progress
    total = path.stat().st_size
    bar: Any = None
    if show and total > 1_000_000:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"producing {path.name}", file=sys.stderr)
    for number, raw in _lines(path):
        key: bytes | None = None
        if validate:
            try:
                event = parse_event(raw, limits)
                key = canonical_key(event.identifiers).encode()
                if times is not None:
                    times.see(event.occurred_ms)
            except InvalidEventError as exc:
                bad = BadLine(number, exc.detail)
                report.bad.append(bad)
                on_bad(bad)
                continue
        while True:
            try:
                producer.produce(target, value=raw, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        report.sent += 1
        producer.poll(0)
        if bar is not None:
            bar.update(len(raw) + 1)
    remaining = producer.flush(60)
    if bar is not None:
        bar.close()
    if remaining:
        report.failed.append(f"{remaining} messages not delivered within 60 s")
    return report
