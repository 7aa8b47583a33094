"""``orchestrator bench --only segments``: what segments cost per event, and in the stored record.

The same generated events (the example journeys deployed) run through :class:`CustomerLogic` with no
segment, with 5 and with 20 segments (half of them time-dependent: seen()/count() windows), interleaved,
best of the repeats; the ratio to the run without segments is the figure. The stored record's mean size
is measured at the end of each run (the customers' memberships and segment timers included).
"""

from __future__ import annotations

import gc
import time
from typing import Any

import orjson

from orchestrator.bench.micro import _events, build_registry
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.segment import SegmentRegistry, load_segment_text
from orchestrator.simulate.runner import EARLIEST_MS

__all__ = ["bench_segments", "segment_registry"]

_CONDITIONS = (
    'seen("page.viewed", duration("1h"))',
    'count("cart.updated", duration("24h")) >= 2 && !seen("order.completed", duration("24h"))',
    "profile.consent.email.marketing && profile.counts['order.completed'] > 0",
    'profile.country == "US" || profile.tier == "gold"',
)


def segment_registry(count: int) -> SegmentRegistry:
    """``count`` segments cycling through four conditions (two time-dependent), the last one reading
    the first (a dependency)."""
    registry = SegmentRegistry()
    for i in range(count):
        condition = _CONDITIONS[i % len(_CONDITIONS)]
        if i == count - 1 and count > 1:
            condition = f'({condition}) && !("s0" in profile.segments)'
        text = f"kind: segment\nid: s{i}\nversion: 1\ncondition: |\n  {condition}\n"
        registry.deploy(load_segment_text(text, f"s{i}.yaml"), EARLIEST_MS)
    return registry


def _run(logic: CustomerLogic, events: list[Any]) -> tuple[float, dict[str, CustomerState]]:
    states: dict[str, CustomerState] = {}
    gc.collect()
    t0 = time.perf_counter()
    for key, event in events:
        out = logic.on_event(key, states.get(key), event, event.occurred_ms)
        if out.state is None:
            states.pop(key, None)
        else:
            states[key] = out.state
    return time.perf_counter() - t0, states


def bench_segments(quick: bool = False) -> dict[str, Any]:
    n = 4_000 if quick else 30_000
    repeats = 2 if quick else 3
    events = _events(n, customers=max(500, n // 8))
    journeys = build_registry(10)
    variants = {count: segment_registry(count) if count else None for count in (0, 5, 20)}
    best = dict.fromkeys(variants, float("inf"))
    sizes: dict[int, tuple[float, float]] = {}
    for _ in range(repeats):  # (interleaved: the machine's noise falls on every variant alike)
        for count, segments in variants.items():
            seconds, states = _run(CustomerLogic(journeys, segments=segments), events)
            best[count] = min(best[count], seconds)
            records = [len(orjson.dumps(s.to_dict())) for s in states.values()]
            members = sum(len(s.profile.segments) for s in states.values())
            sizes[count] = (sum(records) / len(records), members / len(states))
    rows = [
        {
            "segments": count,
            "us_per_event": round(best[count] / n * 1e6, 2),
            "cost_vs_none": round(best[count] / best[0], 2),
            "mean_record_bytes": round(sizes[count][0]),
            "memberships_per_customer": round(sizes[count][1], 2),
        }
        for count in variants
    ]
    return {
        "what": "CustomerLogic.on_event over generated events with 0, 5 and 20 segments deployed (half "
        "time-dependent), interleaved, best of the repeats; the stored record's mean size at the end",
        "events": n,
        "repeats_best_of": repeats,
        "rows": rows,
    }
