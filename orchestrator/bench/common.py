"""Shared helpers of the benchmarks: event payloads, topics, timing results."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # untyped re-export

__all__ = [
    "RunResult",
    "Stopwatch",
    "create_topics",
    "delete_topics",
    "make_events",
    "new_name",
    "preproduce",
]

EVENT_TYPES = ("page_view", "add_to_cart", "email_open", "purchase", "app_open")


def new_name(prefix: str) -> str:
    """A fresh, collision-free topic / group / app name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_events(count: int, customers: int = 5000, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """``count`` JSON events of roughly 150 bytes, keyed by customer id."""
    rng = random.Random(seed)
    base_ts = 1_795_000_000_000
    out: list[tuple[bytes, bytes]] = []
    for i in range(count):
        customer = f"c{rng.randrange(customers):06d}"
        value = orjson.dumps(
            {
                "id": f"{i:012d}",
                "customer": customer,
                "type": EVENT_TYPES[i % len(EVENT_TYPES)],
                "ts": base_ts + i,
                "props": {"page": f"/p/{rng.randrange(10_000)}", "campaign": "wk47-black-friday", "v": 2},
            }
        )
        out.append((customer.encode(), value))
    return out


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topics(bootstrap: str, names: Iterable[str], partitions: int, timeout: float = 30.0) -> None:
    """Create topics (replication 1) and wait until the broker confirms each."""
    admin = _admin(bootstrap)  # keep a reference: the futures fail if the handle is destroyed
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
        operation_timeout=timeout,
    )
    for fut in futures.values():
        fut.result(timeout=timeout)


def delete_topics(bootstrap: str, names: Iterable[str], timeout: float = 30.0) -> None:
    """Delete topics, ignoring those that are already gone."""
    names = list(names)
    if not names:
        return
    admin = _admin(bootstrap)
    futures = admin.delete_topics(names, operation_timeout=timeout)
    for fut in futures.values():
        with contextlib.suppress(Exception):  # already deleted or never created
            fut.result(timeout=timeout)


def list_topics(bootstrap: str, prefix: str) -> list[str]:
    """Topic names starting with ``prefix``."""
    meta = _admin(bootstrap).list_topics(timeout=15)
    return [t for t in meta.topics if t.startswith(prefix)]


def preproduce(
    bootstrap: str, topic: str, events: list[tuple[bytes, bytes]], partitions: list[int] | None = None
) -> None:
    """Write all events to ``topic``: to ``partitions[i]`` when given, else by the default partitioner
    (murmur2 of the key, as Java/aiokafka)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "partitioner": "murmur2_random",
            "acks": "all",
        }
    )
    for i, (key, value) in enumerate(events):
        where = -1 if partitions is None else partitions[i]  # -1: the partitioner chooses
        while True:
            try:
                producer.produce(topic, value=value, key=key, partition=where)
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} pre-produced messages not delivered")


@dataclasses.dataclass(slots=True)
class Stopwatch:
    """Wall and CPU clock from the first consumed message to the last processed one."""

    wall0: float = 0.0
    cpu0: float = 0.0
    wall: float = 0.0
    cpu: float = 0.0

    def start(self) -> None:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


@dataclasses.dataclass(slots=True)
class RunResult:
    """One timed run of one variant."""

    variant: str
    partitions: int
    events: int
    seconds: float
    cpu_seconds: float
    ok: bool = True
    error: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.ok and self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["events_per_s"] = round(self.events_per_s, 1)
        d["cpu_share"] = round(self.cpu_seconds / self.seconds, 3) if self.seconds > 0 else 0.0
        return d
