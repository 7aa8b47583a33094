"""No state row outgrows the producer's limit: every table the runtime writes, pushed to its bound.

- ``identities``: a catch-up burst of large events is released over several messages, each ``o:`` row
  (what one message published) under the budget; a graph node with the most identifiers of the
  longest allowed length stays small;
- ``customers``: a record over the row limit is trimmed (finished journeys, history, seen ids, outbox)
  and counted; one that attributes fill is refused (``StateLimitError``: the message is set aside, the
  state unchanged);
- ``wakeups``: one small string per customer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from orchestrator.contracts import ResolvedEvent, parse_event
from orchestrator.contracts.events import DEFAULT_LIMITS
from orchestrator.core.customer import CustomerLogic
from orchestrator.core.identity import MAX_IDENTIFIERS
from orchestrator.core.journey import JourneyRegistry, load_journey_file
from orchestrator.exceptions import StateLimitError
from orchestrator.runtime.identify import RELEASE_BYTES, IdentifyStage
from orchestrator.runtime.processor import MAX_RECORD_BYTES, Processor
from orchestrator.runtime.record_fit import fit_record

ROOT = Path(__file__).resolve().parents[3]
KAFKA_LIMIT = 1_000_000
BASE = 1741600800000


def _raw(n: int, size: int, etype: str = "app.custom_thing", **ids: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "type": etype,
            "source": "t",
            "occurred_at": datetime.fromtimestamp(BASE / 1000 + n, UTC).isoformat(),
            "identifiers": ids or {"customer_id": f"c{n}"},
            # quotes: the worst case of JSON-in-JSON escaping; strings within max_event_string_chars
            "properties": {
                f"b{i}": '"' * min(size - i * 15_000, 15_000) for i in range(max(1, -(-size // 15_000)))
            },
        }
    )


def test_a_catch_up_burst_is_released_over_several_rows_each_under_the_limit() -> None:
    stage = IdentifyStage(sources=1, partitions=2, erasure_key="k")
    stage.load([])
    offset = 0
    # 200 events of ~5 kB, and 40 of the largest size an event may have, held until one watermark
    events = [_raw(n, 5_000) for n in range(200)]
    events += [_raw(200 + n, DEFAULT_LIMITS.max_bytes // 2 - 2_000) for n in range(40)]
    for raw in events:
        assert len(raw) <= DEFAULT_LIMITS.max_bytes
        resolved = ResolvedEvent(
            customer_key="hint", event=parse_event(raw), source_partition=0, source_offset=offset
        )
        out = stage.on_event(offset, resolved, resolved.event.occurred_ms)
        for row in out.rows.values():
            assert len(orjson.dumps(row)) < KAFKA_LIMIT
        offset += 1
    released = 0
    rows = 0
    for _ in range(100):  # one watermark per tick until everything is out
        out = stage.on_watermark(offset, 0, BASE + 10_000_000)
        offset += 1
        released += out.released
        for name, row in out.rows.items():
            size = len(orjson.dumps(row))
            assert size < KAFKA_LIMIT, (name, size)
            if name.startswith("o:"):
                rows += 1
                assert size < max(2 * RELEASE_BYTES, 2 * DEFAULT_LIMITS.max_bytes) + 10_000
        if stage.held() == 0:
            break
    assert released == len(events)
    assert rows > 2  # spread over several messages


def test_a_graph_node_full_of_the_longest_identifiers_stays_small() -> None:
    stage = IdentifyStage(sources=1, partitions=2, erasure_key="k")
    stage.load([])
    offset = 0
    for n in range(MAX_IDENTIFIERS + 10):
        raw = _raw(n, 10, customer_id="big", device_id=f"d{n}-" + "x" * 500)
        resolved = ResolvedEvent(
            customer_key="hint", event=parse_event(raw), source_partition=0, source_offset=n
        )
        stage.on_event(offset, resolved, resolved.event.occurred_ms)
        offset += 1
    out = stage.on_watermark(offset, 0, BASE + 10_000_000)
    for name, row in out.rows.items():
        assert len(orjson.dumps(row)) < 100_000, name


def _processor(limit: int = MAX_RECORD_BYTES) -> Processor:
    registry = JourneyRegistry()
    registry.deploy(load_journey_file(ROOT / "journeys" / "welcome.yaml"), 0)
    return Processor(CustomerLogic(registry), max_record_bytes=limit)


def _profile_update(n: int, attributes: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"u{n}",
            "type": "profile.updated",
            "source": "t",
            "occurred_at": datetime.fromtimestamp(BASE / 1000 + n, UTC).isoformat(),
            "identifiers": {"customer_id": "c1"},
            "properties": attributes,
        }
    )


def test_history_and_seen_ids_are_trimmed_to_fit() -> None:
    proc = _processor(limit=12_000)  # a small limit: the same rule as the real one, reached sooner
    record = None
    trimmed: set[str] = set()
    for n in range(400):
        done = proc.on_event("c1", record, parse_event(_raw(n, 10, customer_id="c1")), n, BASE + n * 1000)
        record = done.record
        assert record is not None
        assert len(record) <= 12_000
        trimmed |= set(done.trimmed)
    assert "history" in trimmed
    state = orjson.loads(record or b"{}")["s"]
    assert len(state["p"]["history"]) < 200


def test_a_record_that_attributes_fill_is_refused_and_the_state_kept() -> None:
    proc = _processor()
    record = None
    n = 0
    while True:  # 200 kB of new attributes per event: the third would pass 512 kB
        event = parse_event(_profile_update(n, {f"a{n}-{i}": "v" * 25_000 for i in range(8)}))
        if n == 2:
            with pytest.raises(StateLimitError, match=f"over the limit of {MAX_RECORD_BYTES}"):
                proc.on_event("c1", record, event, n, BASE + n * 1000)
            break
        done = proc.on_event("c1", record, event, n, BASE + n * 1000)
        record = done.record
        assert record is not None
        assert len(record) <= MAX_RECORD_BYTES
        n += 1
    attributes = orjson.loads(record or b"{}")["s"]["p"]["attributes"]
    assert {k.split("-")[0] for k in attributes} == {"a0", "a1"}


def test_fit_record_leaves_a_small_record_alone() -> None:
    record = {"s": {"p": {"history": [[1], [2]]}, "d": {"a": 1}}, "out": [[1], [2]], "off": {}}
    data, trimmed = fit_record(record, 10_000)
    assert trimmed == []
    assert orjson.loads(data) == record


def test_finished_journeys_go_first_and_oldest_first() -> None:
    done = [
        {"j": f"j{i}", "v": 1, "e": 1, "at": 0, "end": i, "k": "exited", "r": "x" * 200, "s": "a"}
        for i in range(5)
    ]
    record = {"s": {"p": {"history": [["h"] * 50]}, "f": done}, "out": [], "off": {}}
    data, trimmed = fit_record(record, len(orjson.dumps(record)) - 500)
    assert trimmed == ["finished"]
    assert [f["j"] for f in orjson.loads(data)["s"]["f"]] == ["j2", "j3", "j4"]
    assert orjson.loads(data)["s"]["p"]["history"] == [["h"] * 50]  # the rules' data untouched


def test_a_wakeup_row_is_one_small_string() -> None:
    proc = _processor()
    done = proc.on_event(
        "c1", None, parse_event(_raw(1, 10, etype="account.created", customer_id="c1")), 1, BASE
    )
    entry = f"{5}:{done.next_wakeup_ms}".encode()
    assert len(entry) < 64


def _large_customer(proc: Processor, size: int) -> bytes:
    """A customer whose record is about ``size`` bytes of quote-heavy attributes (the worst case for the
    JSON-in-JSON of a hand-over)."""
    record = None
    n = 0
    while record is None or len(record) < size:
        event = parse_event(_profile_update(n, {f"q{n}-{i}": '"' * 6_000 for i in range(2)}))
        record = proc.on_event("c1", record, event, n, BASE + n * 1000).record
        n += 1
    return record


def test_a_merge_out_of_a_large_customer_is_never_refused() -> None:
    proc = _processor()
    record = _large_customer(proc, 400_000)
    done = proc.on_merge_out("c1", record, 100, "c2", BASE + 100_000)
    assert done.record is not None
    assert len(done.record) <= MAX_RECORD_BYTES
    assert "outbox" in done.trimmed  # the hand-over's copy of the state went; the hand-over itself is sent
    assert [k for k, _ in done.forwards] == [b"c2"]


def test_a_merge_in_of_two_large_customers_completes() -> None:
    proc = _processor()
    big = orjson.loads(_large_customer(proc, 300_000))["s"]
    mine = _large_customer(proc, 300_000)
    done = proc.on_merge_in("c1", mine, 200, "c9", big, BASE + 200_000, None)
    assert done.record is not None
    assert len(done.record) <= MAX_RECORD_BYTES


def test_a_wakeup_of_a_customer_at_the_limit_is_never_refused() -> None:
    proc = _processor()
    record = _large_customer(proc, 470_000)
    done = proc.on_wakeup("c1", record, 300, BASE + 10 * 86_400_000)
    assert done.record is None or len(done.record) <= MAX_RECORD_BYTES
