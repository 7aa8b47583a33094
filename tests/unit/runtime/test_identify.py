"""The identify stage without Kafka: event-time order across raw partitions, what it publishes
for plain events, merges and erasures, and what it does with a message read again after a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from orchestrator.contracts import ResolvedEvent, parse_event
from orchestrator.runtime.claims import claim_key, read_claim
from orchestrator.runtime.identify import (
    CONTROL_PREFIX,
    WATERMARK_KEY,
    HeldEvent,
    Identified,
    IdentifyStage,
    _HeldQueue,
)

BASE = 1741600800000  # 2025-03-10T10:00:00Z


def _event(
    eid: str,
    etype: str,
    ids: dict[str, str],
    minute: float = 0,
    raw_partition: int = 0,
    raw_offset: int | None = None,
) -> ResolvedEvent:
    raw = orjson.dumps(
        {
            "event_id": eid,
            "type": etype,
            "source": "t",
            "occurred_at": datetime.fromtimestamp(BASE / 1000 + minute * 60, UTC).isoformat(),
            "identifiers": ids,
        }
    )
    return ResolvedEvent(
        customer_key="hint",
        event=parse_event(raw),
        source_partition=raw_partition,
        source_offset=int(minute) if raw_offset is None else raw_offset,
    )


class Feed:
    """One raw partition (unless told), an offset per message, a watermark after each event."""

    def __init__(self, sources: int = 1, paged: int | None = None, key: bytes | None = None) -> None:
        """``paged``: the stage reads the graph from :attr:`rows` with that cache (as the worker does)."""
        self.stage = IdentifyStage(sources=sources, partitions=2, erasure_key=key)
        self.offset = 0
        self.rows: dict[str, Any] = {}
        if paged is not None:
            self.stage.load([], read=self.rows.get, cache=paged)

    def event(self, ev: ResolvedEvent) -> Identified:
        return self._keep(self.stage.on_event(self._next(), ev, ev.event.occurred_ms))

    def mark(self, raw_partition: int, at_ms: int) -> Identified:
        return self._keep(self.stage.on_watermark(self._next(), raw_partition, at_ms))

    def through(self, ev: ResolvedEvent) -> Identified:
        """The event, then a watermark just past it: released at once."""
        self.event(ev)
        return self.mark(0, ev.event.occurred_ms + 1)

    def _next(self) -> int:
        self.offset += 1
        return self.offset - 1

    def _keep(self, out: Identified) -> Identified:
        for k, v in out.rows.items():
            if v is None:
                self.rows.pop(k, None)
            else:
                self.rows[k] = orjson.loads(orjson.dumps(v))  # as the table stores it
        return out


def _customer_messages(out: Identified) -> list[tuple[str, dict[str, Any]]]:
    return [(k.decode(), orjson.loads(v)) for k, v, _ in out.messages if k != WATERMARK_KEY]


def test_a_plain_event_goes_to_its_canonical_customer_then_the_watermark() -> None:
    feed = Feed()
    held = feed.event(_event("e1", "page.viewed", {"customer_id": "c1", "email": "A@x.io"}))
    assert held.messages == [], "held until every raw partition has passed its time"
    assert any(k.startswith("b:") for k in held.rows)
    out = feed.mark(0, BASE + 1)
    [(key, body)] = _customer_messages(out)
    assert key == "c1"
    assert body["customer_key"] == "c1"
    assert "merged_from" not in body
    marks = [(v, p) for k, v, p in out.messages if k == WATERMARK_KEY]
    assert marks == [(orjson.dumps({"r": 0, "t": BASE + 1}), 0), (orjson.dumps({"r": 0, "t": BASE + 1}), 1)]
    assert not any(k.startswith("b:") for k in feed.rows), "released: no longer held"


def test_events_of_several_raw_partitions_are_released_in_time_order() -> None:
    feed = Feed(sources=2)
    # the sign-in (raw partition 1) is read before the visitor's cart (raw partition 0) that preceded it
    feed.event(
        _event("e2", "account.created", {"customer_id": "c9", "anonymous_id": "v9"}, 5, raw_partition=1)
    )
    feed.event(_event("e1", "cart.updated", {"anonymous_id": "v9"}, 1, raw_partition=0))
    assert feed.mark(1, BASE + 10 * 60_000).messages == [], "raw partition 0 has not reported"
    out = feed.mark(0, BASE + 10 * 60_000)
    messages = _customer_messages(out)
    assert [k for k, _ in messages] == ["anonymous_id:v9", "anonymous_id:v9", "c9"]
    assert messages[0][1]["event"]["event_id"] == "e1"
    assert messages[1][1]["ctl"] == "merge_out"
    assert messages[2][1]["merged_from"] == ["anonymous_id:v9"]
    assert out.merges == 1


def test_a_late_event_is_released_at_once() -> None:
    feed = Feed()
    feed.mark(0, BASE + 60 * 60_000)
    out = feed.event(_event("e1", "page.viewed", {"customer_id": "c1"}, 1))
    assert [k for k, _ in _customer_messages(out)] == ["c1"]


def test_a_sign_in_sends_the_merge_out_before_the_event_that_awaits_it() -> None:
    feed = Feed()
    feed.through(_event("e1", "cart.updated", {"anonymous_id": "v9"}))
    out = feed.through(_event("e2", "account.created", {"customer_id": "c9", "anonymous_id": "v9"}, 5))
    messages = _customer_messages(out)
    assert [k for k, _ in messages] == ["anonymous_id:v9", "c9"]
    assert messages[0][1]["ctl"] == "merge_out"
    assert messages[0][1]["into"] == "c9"
    assert messages[1][1]["merged_from"] == ["anonymous_id:v9"]
    later = feed.through(_event("e3", "page.viewed", {"anonymous_id": "v9"}, 6))
    assert [k for k, _ in _customer_messages(later)] == ["c9"], "the old key forwards"


def test_a_message_read_again_after_a_crash_resends_what_it_published() -> None:
    feed = Feed()
    feed.event(_event("e1", "cart.updated", {"anonymous_id": "v9"}))
    feed.event(_event("e2", "account.created", {"customer_id": "c9", "anonymous_id": "v9"}, 5))
    release = feed.mark(0, BASE + 6 * 60_000)  # offset 2
    # a restarted worker: the table (changelog) has the rows, offsets 0-2 were not committed
    again = IdentifyStage(sources=1, partitions=2)
    again.load(feed.rows.items())
    assert again.held() == 0
    for offset in (0, 1):
        assert again.needs_stored(offset)
        assert (
            again.on_event(offset, _event("x", "page.viewed", {"anonymous_id": "v9"}), BASE, None).messages
            == []
        )
    replay = again.on_watermark(2, 0, BASE + 6 * 60_000, feed.rows["o:2"])
    assert replay.replayed
    assert replay.messages == release.messages
    plain = again.on_event(3, _event("e3", "page.viewed", {"anonymous_id": "v9"}, 7), BASE + 7 * 60_000)
    assert again.on_watermark(4, 0, BASE + 8 * 60_000).messages[0][0] == b"c9", "by the stored graph"
    assert plain.rows["b:3"]


def test_held_events_survive_a_restart() -> None:
    feed = Feed()
    feed.event(_event("e1", "page.viewed", {"customer_id": "c1"}, 1))
    again = IdentifyStage(sources=1, partitions=2)
    again.load(feed.rows.items())
    assert again.held() == 1
    out = again.on_watermark(1, 0, BASE + 2 * 60_000)
    assert next(k for k, _, _ in out.messages) == b"c1"


def test_erasure_reaches_the_aliases_and_drops_later_events() -> None:
    feed = Feed()
    feed.through(_event("e1", "page.viewed", {"anonymous_id": "v1"}))
    feed.through(_event("e2", "account.created", {"customer_id": "c1", "anonymous_id": "v1"}, 1))
    out = feed.through(_event("e3", "customer.erased", {"customer_id": "c1"}, 2))
    messages = _customer_messages(out)
    assert [k for k, _ in messages] == ["c1", "anonymous_id:v1"]
    assert messages[1][1] == {"ctl": "erase", "into": "c1"}
    assert out.erased == 1
    assert not [k for k in feed.rows if k.startswith("n:")], "tombstones for the graph"
    late = feed.through(_event("e4", "page.viewed", {"anonymous_id": "v1"}, 3))
    assert late.dropped == 1
    assert _customer_messages(late) == []


def test_control_messages_are_told_apart_from_events() -> None:
    feed = Feed()
    feed.through(_event("e1", "page.viewed", {"anonymous_id": "v1"}))
    out = feed.through(_event("e2", "account.created", {"customer_id": "c1", "anonymous_id": "v1"}, 1))
    control, event = [(k, v) for k, v, _ in out.messages if k != WATERMARK_KEY]
    assert control[1].startswith(CONTROL_PREFIX)
    assert not event[1].startswith(CONTROL_PREFIX)


def test_kept_messages_go_once_their_offset_is_committed() -> None:
    feed = Feed()
    feed.through(_event("e1", "page.viewed", {"anonymous_id": "v1"}))  # offsets 0, 1
    feed.through(_event("e2", "account.created", {"customer_id": "c1", "anonymous_id": "v1"}, 1))  # 2, 3
    assert feed.stage.prune(None) == {}
    assert feed.stage.prune(2) == {"o:1": None}
    assert feed.stage.prune(4) == {"o:3": None}
    assert feed.stage.prune(10) == {}


def test_kept_messages_older_than_the_span_are_deleted(monkeypatch: Any) -> None:
    import orchestrator.runtime.identify as identify

    monkeypatch.setattr(identify, "OUTBOX_SPAN", 3)
    feed = Feed()
    feed.through(_event("e1", "page.viewed", {"anonymous_id": "v1"}))
    feed.through(_event("e2", "page.viewed", {"anonymous_id": "v2"}, 1))
    feed.through(_event("e3", "page.viewed", {"anonymous_id": "v3"}, 2))
    assert sorted(k for k in feed.rows if k.startswith("o:")) == ["o:3", "o:5"]


def test_a_raw_partition_keeps_its_own_order_when_its_event_times_do_not() -> None:
    # Offsets 3 then 4 of one raw partition, the second older: released in read order, because the
    # customers take a raw offset at or below one already applied for a re-resolved copy.
    feed = Feed(sources=2)
    newer = _event("e1", "page.viewed", {"customer_id": "c1"}, 5, raw_partition=0, raw_offset=3)
    older = _event("e2", "page.viewed", {"customer_id": "c1"}, 2, raw_partition=0, raw_offset=4)
    other = _event("e3", "page.viewed", {"customer_id": "c2"}, 3, raw_partition=1)
    for ev in (newer, older, other):
        feed.event(ev)
    feed.mark(1, BASE + 10 * 60_000)
    out = feed.mark(0, BASE + 10 * 60_000)
    order = [body["event"]["event_id"] for _, body in _customer_messages(out)]
    assert order == ["e3", "e1", "e2"]


def test_a_late_event_is_held_at_its_order_time_and_published_with_it() -> None:
    # Ingest gives a late event (older than an earlier event of its raw partition) the order time of
    # that earlier event: the stage holds it there and passes it on, for the customer partitions.
    feed = Feed(sources=1)
    newer = _event("e1", "page.viewed", {"customer_id": "c1"}, 5, raw_offset=3)
    older = _event("e2", "page.viewed", {"customer_id": "c1"}, 2, raw_offset=4)
    feed.event(newer.model_copy(update={"order_ms": newer.event.occurred_ms}))
    feed.event(older.model_copy(update={"order_ms": newer.event.occurred_ms}))
    assert [row[0] for k, row in feed.rows.items() if k.startswith("b:")] == [newer.event.occurred_ms] * 2
    out = feed.mark(0, BASE + 10 * 60_000)
    bodies = [body for _, body in _customer_messages(out)]
    assert [(b["event"]["event_id"], b["order_ms"]) for b in bodies] == [
        ("e1", newer.event.occurred_ms),
        ("e2", newer.event.occurred_ms),
    ]


def _watermarks(out: Identified) -> set[int]:
    return {orjson.loads(v)["t"] for k, v, _ in out.messages if k == WATERMARK_KEY}


def test_the_watermark_never_passes_an_event_still_held_behind_a_newer_one() -> None:
    # Issue 26: raw partition 0 reads a day-20 event, then a day-3 one (files concatenated). A watermark
    # of partition 0 at day 6 (the latest it had read when the ticker asked) releases nothing of it:
    # its head is day 20. Published as it was, day 6 made the held day-3 event late at its customer
    # (no journey entry). Now the published time stops at the held event until it is released.
    day = 24 * 60
    feed = Feed(sources=2)
    feed.event(_event("new", "page.viewed", {"customer_id": "c1"}, 20 * day, raw_partition=0, raw_offset=0))
    feed.event(
        _event("old", "account.created", {"customer_id": "c2"}, 3 * day, raw_partition=0, raw_offset=1)
    )
    feed.event(_event("other", "page.viewed", {"customer_id": "c3"}, 1 * day, raw_partition=1, raw_offset=0))
    feed.mark(1, BASE + 30 * day * 60_000)
    out = feed.mark(0, BASE + 6 * day * 60_000)
    assert [body["event"]["event_id"] for _, body in _customer_messages(out)] == ["other"]
    assert _watermarks(out) == {BASE + 3 * day * 60_000}  # not day 6: "old" is still held
    out = feed.mark(0, BASE + 21 * day * 60_000)
    assert [body["event"]["event_id"] for _, body in _customer_messages(out)] == ["new", "old"]
    assert _watermarks(out) == {BASE + 21 * day * 60_000}
    # a restart with the stored rows publishes nothing older than what is held either
    again = IdentifyStage(sources=2, partitions=2)
    again.load(feed.rows.items())
    assert again.released_ms == BASE + 21 * day * 60_000


def test_one_message_releases_a_bounded_number_of_events(monkeypatch: Any) -> None:
    # after a takeover thousands of events can be due at once; what one message releases is one row
    # of the table, which must stay under Kafka's message size limit
    import orchestrator.runtime.identify as identify

    monkeypatch.setattr(identify, "MAX_RELEASE", 2)
    feed = Feed()
    for minute in range(5):
        feed.event(_event(f"e{minute}", "page.viewed", {"customer_id": f"c{minute}"}, minute))
    first = feed.mark(0, BASE + 60 * 60_000)
    assert first.released == 2
    marks = {v for k, v, _ in first.messages if k == WATERMARK_KEY}
    assert marks == {orjson.dumps({"r": 0, "t": BASE + 2 * 60_000})}, "up to the oldest event still held"
    assert feed.mark(0, BASE + 60 * 60_000).released == 2
    assert feed.mark(0, BASE + 60 * 60_000).released == 1
    assert feed.stage.held() == 0


def test_a_raw_record_resolved_again_is_dropped_where_all_copies_meet() -> None:
    # After a crash or a takeover the ingest stage reads raw records again and sends copies; after a
    # merge a copy could resolve to another key than the original, so the identify stage drops it.
    feed = Feed()
    feed.through(_event("e1", "cart.updated", {"anonymous_id": "v1"}, 1, raw_offset=10))
    feed.through(
        _event("e2", "account.created", {"customer_id": "c1", "anonymous_id": "v1"}, 2, raw_offset=11)
    )
    copy = feed.event(_event("e1", "cart.updated", {"anonymous_id": "v1"}, 1, raw_offset=10))
    assert copy.copies == 1
    assert copy.messages == []
    assert feed.stage.held() == 0
    again = IdentifyStage(sources=1, partitions=2)
    again.load(feed.rows.items())
    assert again.raw_read == {0: 11}, "kept in the table"


def test_a_raw_offset_below_a_watermarks_cover_is_a_copy_though_the_writer_never_read_it() -> None:
    # With the fast path, ingest sends some raw offsets straight to the customers; its watermark says
    # which raw offsets are on the broker by either path. One of them sent again to the writer (by a
    # worker that took the raw partition over, its claims different) is a copy: never applied twice.
    feed = Feed()
    feed.through(_event("e1", "page.viewed", {"customer_id": "c1"}, 1, raw_offset=10))
    out = feed.stage.on_watermark(feed._next(), 0, BASE + 2 * 60_000, covered=14)
    feed._keep(out)
    assert feed.stage.raw_read == {0: 13}
    copy = feed.event(_event("e3", "page.viewed", {"customer_id": "c1"}, 1, raw_offset=12))  # was fast
    assert copy.copies == 1
    assert copy.messages == []
    again = IdentifyStage(sources=1, partitions=2)
    again.load(feed.rows.items())
    assert again.raw_read == {0: 13}, "kept in the table"
    new = feed.event(_event("e4", "page.viewed", {"customer_id": "c1"}, 3, raw_offset=14))
    assert new.copies == 0
    feed.stage.on_watermark(feed._next(), 0, BASE, covered=5)  # (never back)
    assert feed.stage.raw_read == {0: 14}


def _erase_ann(feed: Feed, minute: int = 0) -> None:
    feed.through(_event(f"a{minute}", "page.viewed", {"customer_id": "ann", "email": "ann@x.io"}, minute))
    feed.through(_event(f"e{minute}", "customer.erased", {"customer_id": "ann"}, minute + 1))


def _dropped(stage: IdentifyStage, rows: dict[str, Any], minute: int) -> int:
    stage.load(rows.items())
    late = _event(f"l{minute}", "page.viewed", {"email": "ann@x.io"}, minute)
    stage.on_event(10_000 + minute, late, late.event.occurred_ms)
    return stage.on_watermark(10_001 + minute, 0, BASE + (minute + 1) * 60_000).dropped


def test_without_an_erasure_key_a_generated_one_is_kept_in_the_table_and_reused() -> None:
    feed = Feed()
    _erase_ann(feed)
    key = feed.rows["key"]
    assert len(bytes.fromhex(key)) == 32
    markers = [v for k, v in feed.rows.items() if k.startswith("h:")]
    assert len(markers) == 2
    assert not any(k.startswith("x:") for k in feed.rows)
    # another worker taking the partition over reads the same key back: the markers still match
    assert _dropped(IdentifyStage(sources=1, partitions=2), feed.rows, 5) == 1
    assert feed.rows["key"] == key


def test_a_configured_key_is_never_stored_and_markers_follow_it() -> None:
    feed = Feed()
    feed.stage = IdentifyStage(sources=1, partitions=2, erasure_key=SecretStr("operator secret"))
    _erase_ann(feed)
    assert "key" not in feed.rows
    text = orjson.dumps({k: v for k, v in feed.rows.items() if not k.startswith("o:")})  # (o: go soon)
    assert b"operator secret" not in text
    assert b"ann@x.io" not in text
    assert _dropped(IdentifyStage(sources=1, partitions=2, erasure_key="operator secret"), feed.rows, 5) == 1
    # a rotated key does not recognise the old markers (docs/identity.md) ...
    assert _dropped(IdentifyStage(sources=1, partitions=2, erasure_key="rotated"), feed.rows, 5) == 0
    # ... unless the old one is given as a previous key
    rotated = IdentifyStage(sources=1, partitions=2, erasure_key="rotated", previous_keys=["operator secret"])
    assert _dropped(rotated, feed.rows, 5) == 1


def test_setting_a_key_keeps_honouring_the_generated_keys_markers_then_forgets_that_key() -> None:
    feed = Feed()
    _erase_ann(feed)
    generated = feed.rows["key"]
    feed.stage = IdentifyStage(sources=1, partitions=2, erasure_key="operator secret")
    feed.stage.load(feed.rows.items())
    feed.through(_event("l1", "page.viewed", {"email": "ann@x.io"}, 10))
    assert feed.rows["key"] == generated, "kept while markers of it are kept"
    # thirty days later every marker of the generated key has expired and is swept by an erasure
    month = 31 * 24 * 60
    feed.through(_event("b1", "page.viewed", {"customer_id": "bob"}, month))
    feed.through(_event("b2", "customer.erased", {"customer_id": "bob"}, month + 1))
    feed.stage.load(feed.rows.items())
    feed.mark(0, BASE + (month + 2) * 60_000)
    assert "key" not in feed.rows


def test_local_compaction_after_an_erasure_is_delayed_and_rate_limited() -> None:
    # (orchestrator/runtime/erasure.py: when the worker compacts its RocksDB stores)
    from orchestrator.runtime.erasure import CompactionPlan

    plan = CompactionPlan(delay_s=10, every_s=300)
    plan.noted(0, erasure=False)  # the start-up run
    assert not plan.take(9)
    assert plan.take(10)
    plan.noted(20)  # an erasure: not held back by the start-up run
    plan.noted(25)  # joins it
    assert not plan.take(29)
    assert plan.take(30)
    plan.noted(40)  # the next erasure waits for the rate limit
    assert not plan.take(100)
    assert plan.take(330)
    assert not plan.take(1_000), "nothing noted: nothing to do"
    assert plan.runs == 3


@given(st.lists(st.one_of(st.integers(0, 50), st.none()), max_size=200))
def test_a_held_queue_knows_its_oldest_event_as_events_come_and_go(steps: list[int | None]) -> None:
    # (the stage asked every held event for it on each message: quadratic in a backlog)
    queue = _HeldQueue()
    shadow: list[int] = []
    offset = 0
    for step in steps:
        if step is None:
            if shadow:
                assert queue.popleft()[0] == shadow.pop(0)
        else:
            queue.append((step, 0, offset, offset, None))  # type: ignore[arg-type]
            shadow.append(step)
            offset += 1
        assert queue.oldest() == (min(shadow) if shadow else None)
        assert len(queue) == len(shadow)


@given(
    st.integers(0, 299),
    st.sampled_from([None, ["anonymous_id:v1"], ["anonymous_id:v1", "email:a@x.io"]]),
    st.sampled_from(["", "+02:00", ".123456Z", ".5-07:30", "Z"]),
    st.booleans(),
    st.sampled_from([None, 0, 3_600_000]),
)
def test_a_held_event_publishes_the_bytes_the_model_would(
    n: int, merged: list[str] | None, zone: str, sent: bool, later: int | None
) -> None:
    # The stage keeps held events as JSON and publishes them without the model: the resolved topic
    # must carry exactly what ResolvedEvent.to_json wrote (customers and stored rows read it). The
    # input is what ingest writes for a raw event.
    from orchestrator.config import TopicNames
    from orchestrator.runtime.ingest import route_raw
    from orchestrator.simulate.generate import generate_events

    raw = list(generate_events(300, 60, seed=7, visitors=0.3))[n]
    raw["occurred_at"] = raw["occurred_at"].replace("Z", "")[:19] + (zone or "Z")
    if sent:  # an engagement event of an action: the optional fields
        raw.update(action_id=f"act_{n}", journey="welcome", campaign="spring")
    routed = route_raw(
        orjson.dumps(raw), b"k", topic="raw", partition=n % 6, offset=n, topics=TopicNames(),
        at=datetime(2026, 1, 1, tzinfo=UTC), order=None if later is None else (lambda ms: ms + later),
    )  # fmt: skip
    assert routed.reason == "resolved", routed
    held = HeldEvent.read(routed.value)
    model = ResolvedEvent.model_validate_json(routed.value)
    assert held == HeldEvent.of(model)
    assert held.occurred_ms == model.event.occurred_ms
    assert held.identifiers == tuple(model.event.identifiers.items())
    assert held.order_ms == (None if later is None else model.event.occurred_ms + later)
    final = model.model_copy(update={"customer_key": "c-1", "merged_from": merged})
    assert held.to_json("c-1", merged) == final.to_json()


def test_a_record_that_is_not_a_resolved_event_is_refused_with_a_reason() -> None:
    good = orjson.loads(_event("x", "page.viewed", {"anonymous_id": "v"}).to_json())
    assert HeldEvent.read(orjson.dumps(good)).identifiers == (("anonymous_id", "v"),)
    receipt = orjson.loads(_event("r", "email.opened", {"customer_key": "email:a@x.io"}).to_json())
    assert HeldEvent.read(orjson.dumps(receipt)).identifiers == (("customer_key", "email:a@x.io"),)
    broken = []
    for path, value in (
        (("identifiers",), {}),
        (("identifiers",), {"shoe_size": "42"}),
        (("identifiers",), {"anonymous_id": 7}),
        (("identifiers",), {"anonymous_id": ""}),
        (("identifiers",), {"customer_key": "c1", "email": "a@x.io"}),  # a customer key comes alone
        (("occurred_at",), "2025-03-01T10:00:00"),
        (("type",), None),
    ):
        event = {**good["event"], path[0]: value}
        broken.append(orjson.dumps({**good, "event": event}))
    for bad in (b"not json", b"{}", b'{"event": {"identifiers": {}}}', b"[1]", *broken):
        with pytest.raises(ValueError, match="not a resolved event of the identify topic"):
            HeldEvent.read(bad)


def _journey_of_identities() -> list[ResolvedEvent]:
    """Visitors, sign-ins (merges), shared identifiers and an erasure, one a minute."""
    events: list[ResolvedEvent] = []
    for n in range(12):
        events.append(
            _event(f"v{n}", "page.viewed", {"anonymous_id": f"v{n}", "device_id": f"d{n % 5}"}, 3 * n)
        )
        events.append(_event(f"s{n}", "account.created", {"customer_id": f"c{n % 7}", "anonymous_id": f"v{n}",
                                                         "email": f"C{n % 7}@x.io"}, 3 * n + 1))  # fmt: skip
        events.append(_event(f"p{n}", "page.viewed", {"email": f"c{(n * 3) % 7}@x.io"}, 3 * n + 2))
        if n == 8:
            events.append(_event("erase", "customer.erased", {"customer_id": "c1"}, 3 * n + 2))
    return events


@pytest.mark.parametrize("cache", [1, 3, 1000])
def test_a_paged_graph_publishes_what_the_whole_graph_publishes(cache: int) -> None:
    whole, paged = Feed(key=b"feed"), Feed(paged=cache, key=b"feed")
    for event in _journey_of_identities():
        assert paged.through(event).messages == whole.through(event).messages
    assert paged.stage.graph is not None
    assert paged.stage.graph.cache_misses() > (0 if cache < 100 else -1)
    assert {k: v for k, v in paged.rows.items() if k != "v"} == whole.rows
    # a restart: the paged stage reads the table it wrote
    again = IdentifyStage(sources=1, partitions=2, erasure_key=b"feed")
    again.load(paged.rows.items(), read=paged.rows.get, cache=cache)
    late = _event("late", "page.viewed", {"anonymous_id": "v3"}, 99)
    again_out = again.on_event(paged.offset, late, late.event.occurred_ms)
    whole_out = whole.event(late)
    assert again_out.messages == whole_out.messages


def test_a_table_of_the_older_layout_gets_its_owner_and_alias_rows_on_the_next_message() -> None:
    feed = Feed(key=b"feed")
    events = _journey_of_identities()
    for event in events[:20]:
        feed.through(event)
    old = {k: v for k, v in feed.rows.items() if not k.startswith(("i:", "a:"))}
    old.pop("v", None)
    stage = IdentifyStage(sources=1, partitions=2, erasure_key=b"feed")
    stage.load(old.items(), read=old.get, cache=2)
    out = stage.on_watermark(feed.offset, 0, BASE + 1)
    assert out.rows["v"] == 2
    assert {k: v for k, v in out.rows.items() if k.startswith(("i:", "a:"))} == {
        k: v for k, v in feed.rows.items() if k.startswith(("i:", "a:"))
    }
    # held whole, the same rows come with the next message too
    whole = IdentifyStage(sources=1, partitions=2, erasure_key=b"feed")
    whole.load(old.items())
    assert whole.on_watermark(feed.offset, 0, BASE + 1).rows == out.rows


def test_a_silent_raw_partition_is_left_out_of_the_order_then_taken_back() -> None:
    feed = Feed(sources=2)
    stage = IdentifyStage(sources=2, partitions=2, idle_ms=5_000)
    feed.stage = stage

    def mark(raw: int, minute: float, sent_ms: int) -> Identified:
        return feed._keep(stage.on_watermark(feed._next(), raw, BASE + int(minute * 60_000), None, sent_ms))

    mark(0, 0, 0)
    mark(1, 0, 0)
    feed.event(_event("e1", "page.viewed", {"customer_id": "c1"}, 1, raw_partition=0))
    assert _customer_messages(mark(0, 2, 1_000)) == [], "raw partition 1 has not passed minute 1"
    assert _customer_messages(mark(0, 2, 5_000)) == [], "heard 5 s ago: not silent yet"
    out = mark(0, 2, 5_001)
    assert stage.idle() == [1]
    assert [k for k, _ in _customer_messages(out)] == ["c1"], "released without the silent partition"
    assert (WATERMARK_KEY, orjson.dumps({"r": 0, "t": BASE + 2 * 60_000}), 0) in out.messages
    # a restart keeps who was heard when
    again = IdentifyStage(sources=2, partitions=2, idle_ms=5_000)
    again.load(feed.rows.items())
    assert again.idle() == [1]
    # heard again: back in the order at once; what it and the others send waits for its watermark again
    feed.event(_event("e2", "page.viewed", {"customer_id": "c2"}, 3, raw_partition=0))
    back = mark(1, 0.5, 6_000)
    assert stage.idle() == []
    assert _customer_messages(back) == [], "c2 (minute 3) waits for raw partition 1 again"
    late = feed.event(_event("e3", "page.viewed", {"customer_id": "c3"}, 0.75, raw_partition=1))
    assert _customer_messages(late) == []
    after = mark(1, 4, 6_500)
    assert [k for k, _ in _customer_messages(after)] == ["c3"]
    assert not [m for m in after.messages if m[0] == WATERMARK_KEY], "the clocks never go back"
    both = mark(0, 5, 7_000)
    assert [k for k, _ in _customer_messages(both)] == ["c2"]
    assert (WATERMARK_KEY, orjson.dumps({"r": 0, "t": BASE + 4 * 60_000}), 0) in both.messages


def test_without_an_idle_bound_a_silent_partition_holds_everything() -> None:
    stage = IdentifyStage(sources=2, partitions=2)
    stage.on_watermark(0, 0, BASE, None, 0)
    stage.on_watermark(1, 1, BASE, None, 0)
    stage.on_event(2, _event("e1", "page.viewed", {"customer_id": "c1"}, 1), BASE + 60_000)
    out = stage.on_watermark(3, 0, BASE + 10 * 60_000, None, 10**9)
    assert stage.idle() == []
    assert not [m for m in out.messages if m[0] != WATERMARK_KEY]


def _ordered(ev: ResolvedEvent) -> ResolvedEvent:
    return ev.model_copy(update={"order_ms": ev.event.occurred_ms})


def _claims(out: Identified) -> dict[bytes, tuple[str, tuple[int, ...]] | None]:
    return {k: None if v is None else read_claim(v) for k, v in out.claims}


def test_the_writer_claims_a_known_customers_identifiers_once_and_takes_them_back_at_erasure() -> None:
    feed = Feed(key=b"k" * 32)
    visitor = feed.through(_ordered(_event("e1", "page.viewed", {"anonymous_id": "v1"}, 1)))
    assert visitor.claims == []  # an anonymous customer's identifiers move when it signs in
    signup = _ordered(_event("e2", "account.created", {"customer_id": "c1", "anonymous_id": "v1"}, 2))
    out = feed.through(signup)
    released_at = feed.offset - 1  # (the watermark that released it)
    order = (signup.order_ms, 0, 2, 1)  # after the visitor's merge_out
    assert _claims(out) == {
        claim_key("customer_id:c1"): ("c1", order),
        claim_key("anonymous_id:v1"): ("c1", order),
    }
    again = feed.through(_ordered(_event("e3", "page.viewed", {"customer_id": "c1", "email": "A@x.io"}, 3)))
    assert list(_claims(again)) == [claim_key("email:a@x.io")]  # only what is new
    # a message read again after a crash re-sends its claims with its other messages
    stored = feed.rows[f"o:{released_at}"]
    replayed = feed.stage.on_watermark(released_at, 0, signup.event.occurred_ms + 1, stored)
    assert replayed.replayed
    assert replayed.claims == out.claims
    assert replayed.messages == out.messages
    erased = feed.through(_ordered(_event("e4", "customer.erased", {"customer_id": "c1"}, 4)))
    assert _claims(erased) == {
        claim_key(token): None for token in ("customer_id:c1", "anonymous_id:v1", "email:a@x.io")
    }
    # events without a raw source (no order key) claim nothing
    plain = feed.through(_event("e5", "page.viewed", {"customer_id": "c9"}, 5))
    assert plain.claims == []


def _graph_rows(out: Identified) -> dict[str, Any]:
    return {k: v for k, v in out.rows.items() if k[:2] in ("n:", "i:", "a:", "h:", "x:")}


def test_a_receipt_goes_to_its_customer_as_it_is_now_and_writes_no_graph_row() -> None:
    """Issue 23: receipts (``customer_key``) resolve without changing the graph; a sign-in after one
    still merges the visitor; one naming a key the graph does not know is dropped and counted."""
    feed = Feed(key=b"k" * 32)
    feed.through(_event("e1", "page.viewed", {"email": "ann@x.io"}, 1))
    receipt = feed.through(_event("r1", "email.opened", {"customer_key": "email:ann@x.io"}, 2))
    [(key, body)] = _customer_messages(receipt)
    assert (key, body["customer_key"]) == ("email:ann@x.io", "email:ann@x.io")
    assert _graph_rows(receipt) == {}
    signed_in = feed.through(_event("e2", "account.created", {"customer_id": "C", "email": "ann@x.io"}, 3))
    assert [k for k, _ in _customer_messages(signed_in)] == ["email:ann@x.io", "C"], "merge_out, then C"
    assert signed_in.merges == 1
    later = feed.through(_event("r2", "email.clicked", {"customer_key": "email:ann@x.io"}, 4))
    assert [k for k, _ in _customer_messages(later)] == ["C"], "merged away: to the survivor"
    assert _graph_rows(later) == {}
    nobody = feed.through(_event("r3", "email.opened", {"customer_key": "email:nobody@x.io"}, 5))
    assert (_customer_messages(nobody), nobody.unknown, nobody.dropped) == ([], 1, 0)
    assert _graph_rows(nobody) == {}
    feed.through(_event("e3", "customer.erased", {"customer_id": "C"}, 6))
    erased = feed.through(_event("r4", "email.opened", {"customer_key": "email:ann@x.io"}, 7))
    assert (_customer_messages(erased), erased.dropped, erased.unknown) == ([], 1, 0)
    assert _graph_rows(erased) == {}, "an erased customer's receipt brings nothing back"


FOLLOW_UP = """\
id: follow_up
version: 1
entry: {event: account.created}
steps:
  check:
    type: branch
    branches:
      - {when: 'profile.engagement.email.opened > 0', next: engaged}
    default: cold
  engaged: {type: send, channel: email, category: transactional, template: engaged_v1}
  cold: {type: send, channel: email, category: transactional, template: cold_v1}
"""


def test_receipts_then_a_sign_in_give_the_runtime_what_simulate_gives() -> None:
    """The same events through the identify stage and the customer processor (LocalPipeline) and
    through simulate: one customer, whose sign-in sees the visitor's open, and the same actions."""
    from orchestrator.contracts import ChannelAction
    from orchestrator.core.customer import CustomerLogic
    from orchestrator.core.engine.state import CustomerState
    from orchestrator.core.journey import JourneyRegistry, load_journey_text
    from orchestrator.simulate import Simulator
    from orchestrator.testing.pipeline import LocalPipeline

    def logic() -> CustomerLogic:
        registry = JourneyRegistry()
        registry.deploy(load_journey_text(FOLLOW_UP, "follow_up.yaml"), 0)
        return CustomerLogic(registry)

    def line(eid: str, etype: str, ids: dict[str, str], minute: int, **extra: str) -> bytes:
        at = datetime.fromtimestamp(BASE / 1000 + minute * 60, UTC).isoformat()
        return orjson.dumps(
            {"event_id": eid, "type": etype, "source": "t", "occurred_at": at, "identifiers": ids, **extra}
        )

    ann = {"customer_key": "email:ann@x.io"}
    lines = [
        line("v1", "page.viewed", {"email": "ann@x.io"}, 0),
        line("r1", "email.delivered", ann, 1, action_id="act_1", campaign="promo"),
        line("r2", "email.opened", ann, 2, action_id="act_1", campaign="promo"),
        line("r3", "email.opened", {"customer_key": "nobody"}, 3, action_id="act_2"),
        line("s1", "account.created", {"customer_id": "C", "email": "ann@x.io"}, 10),
    ]
    simulated: list[ChannelAction] = []
    sim = Simulator(logic().registry, on_action=simulated.append)
    for n, raw in enumerate(lines, 1):
        sim.feed_line(n, raw)
    sim.finish()
    pipeline = LocalPipeline(logic(), partitions=3)
    pipeline.resolve(lines, until_ms=BASE + 3_600_000)
    out = pipeline.run()
    assert [orjson.loads(a) for a in out.actions] == [orjson.loads(a.to_json()) for a in simulated]
    assert [(a.customer_id, a.template_id) for a in simulated] == [("C", "engaged_v1")]
    assert set(sim.states) == {"C"}
    stored = {k: orjson.loads(v) for k, v in pipeline.records.items()}
    live = [k for k, v in stored.items() if "moved" not in v]
    assert live == ["C"], "one profile"
    profile = CustomerState.from_dict(stored["C"]["s"]).profile
    assert profile.engagement == sim.states["C"].profile.engagement
    assert profile.engagement["email.opened"][0] == 1
