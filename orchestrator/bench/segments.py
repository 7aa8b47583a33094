"""``orchestrator bench --only segments``: what segments and campaigns cost per event, in the stored
record, and in a worker's release of a campaign.

The same generated events (the example journeys deployed) run through :class:`CustomerLogic` with no
segment, with 5 and with 20 segments (half of them time-dependent: seen()/count() windows), and with the
20 segments plus 5 daily campaigns (a release a day each: a timer of every customer), interleaved, best of
the repeats; the ratio to the run without segments is the figure. The stored record's mean size is
measured at the end of each run (the customers' memberships and segment timers included).

The release: the records the 20-segment run stored, looked through for the members of one segment as a
worker does when a campaign is released (:func:`~orchestrator.runtime.releases.members_to_wake`: a byte
test, then the key's partition), against decoding every record and reading its memberships.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import orjson

from orchestrator.bench.micro import _events, build_registry
from orchestrator.core.campaign import CampaignRegistry, load_campaign_text
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.engine.state import CustomerState
from orchestrator.core.segment import SegmentRegistry, load_segment_text
from orchestrator.runtime.releases import members_to_wake, partition_of
from orchestrator.runtime.segment_sizes import members_of
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


def campaign_registry(count: int) -> CampaignRegistry:
    """``count`` campaigns to segments s0.., at 10:00 local every day of March 2025 (the generated
    events' month)."""
    registry = CampaignRegistry()
    for i in range(count):
        text = (
            f"kind: campaign\nid: c{i}\nversion: 1\naudience: {{segment: s{i}}}\n"
            "send: {channel: email, template: t}\n"
            'schedule: {date: 2025-03-01, local_time: "10:00", every: 1d, occurrences: 31}\n'
        )
        registry.deploy(load_campaign_text(text, f"c{i}.yaml"), EARLIEST_MS)
    return registry


def _release(records: list[tuple[str, bytes]], segment: str, repeats: int) -> dict[str, Any]:
    """Microseconds per stored customer to find a segment's members of one partition (of 12)."""
    best_bytes = best_decode = float("inf")
    found = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        found = sum(1 for key in members_to_wake(records, segment) if partition_of(key, 12) == 0)
        best_bytes = min(best_bytes, time.perf_counter() - t0)
        t0 = time.perf_counter()
        decoded = sum(
            1
            for key, value in records
            if segment in members_of(orjson.loads(value)) and partition_of(key, 12) == 0
        )
        best_decode = min(best_decode, time.perf_counter() - t0)
        assert decoded == found
    return {
        "customers": len(records),
        "members_in_partition": found,
        "us_per_customer_bytes": round(best_bytes / len(records) * 1e6, 2),
        "us_per_customer_decoded": round(best_decode / len(records) * 1e6, 2),
        "decoded_vs_bytes": round(best_decode / best_bytes, 1),
    }


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
    variants: dict[str, tuple[SegmentRegistry | None, CampaignRegistry | None]] = {
        "0": (None, None),
        "5": (segment_registry(5), None),
        "20": (segment_registry(20), None),
        "20+5 campaigns": (segment_registry(20), campaign_registry(5)),
    }
    best = dict.fromkeys(variants, float("inf"))
    sizes: dict[str, tuple[float, float]] = {}
    stored: list[tuple[str, bytes]] = []
    for _ in range(repeats):  # (interleaved: the machine's noise falls on every variant alike)
        for name, (segments, campaigns) in variants.items():
            seconds, states = _run(CustomerLogic(journeys, segments=segments, campaigns=campaigns), events)
            best[name] = min(best[name], seconds)
            encoded = [(k, orjson.dumps({"s": s.to_dict()})) for k, s in states.items()]
            if name == "20":
                stored = encoded
            members = sum(len(s.profile.segments) for s in states.values())
            sizes[name] = (sum(len(v) for _, v in encoded) / len(encoded), members / len(states))
    rows = [
        {
            "segments": name,
            "us_per_event": round(best[name] / n * 1e6, 2),
            "cost_vs_none": round(best[name] / best["0"], 2),
            "mean_record_bytes": round(sizes[name][0]),
            "memberships_per_customer": round(sizes[name][1], 2),
        }
        for name in variants
    ]
    return {
        "what": "CustomerLogic.on_event over generated events with 0, 5 and 20 segments deployed (half "
        "time-dependent), interleaved, best of the repeats; the stored record's mean size at the end",
        "events": n,
        "repeats_best_of": repeats,
        "rows": rows,
        "release": _release(stored, "s0", repeats),
    }
