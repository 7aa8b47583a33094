"""The identify stage without Kafka: what it publishes for plain events, merges and erasures, and
what it does with a message read again after a crash."""

from __future__ import annotations

from typing import Any

import orjson

from orchestrator.contracts import ResolvedEvent, parse_event
from orchestrator.runtime.identify import CONTROL_PREFIX, IdentifyStage


def _event(eid: str, etype: str, ids: dict[str, str], minute: int = 0) -> ResolvedEvent:
    raw = orjson.dumps(
        {
            "event_id": eid,
            "type": etype,
            "source": "t",
            "occurred_at": f"2025-03-10T10:{minute:02d}:00Z",
            "identifiers": ids,
        }
    )
    return ResolvedEvent(customer_key="hint", event=parse_event(raw), source_partition=0, source_offset=1)


def _messages(out: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(k.decode(), orjson.loads(v)) for k, v in out.messages]


def test_a_plain_event_goes_to_its_canonical_customer() -> None:
    stage = IdentifyStage()
    out = stage.on_event(0, _event("e1", "page.viewed", {"customer_id": "c1", "email": "A@x.io"}))
    [(key, body)] = _messages(out)
    assert key == "c1"
    assert body["customer_key"] == "c1"
    assert "merged_from" not in body
    assert out.rows["last"] == 0
    assert not any(name.startswith("o:") for name in out.rows)


def test_a_sign_in_sends_the_merge_out_before_the_event_that_awaits_it() -> None:
    stage = IdentifyStage()
    stage.on_event(0, _event("e1", "cart.updated", {"anonymous_id": "v9"}))
    out = stage.on_event(1, _event("e2", "account.created", {"customer_id": "c9", "anonymous_id": "v9"}, 5))
    messages = _messages(out)
    assert [k for k, _ in messages] == ["anonymous_id:v9", "c9"]
    assert messages[0][1]["ctl"] == "merge_out"
    assert messages[0][1]["into"] == "c9"
    assert messages[1][1]["merged_from"] == ["anonymous_id:v9"]
    assert out.merges == 1
    assert "o:1" in out.rows, "a merge's messages are kept for a replay"
    later = stage.on_event(2, _event("e3", "page.viewed", {"anonymous_id": "v9"}, 6))
    assert [k for k, _ in _messages(later)] == ["c9"], "the old key forwards"


def test_a_merge_read_again_after_a_crash_resends_the_same_messages() -> None:
    stage = IdentifyStage()
    first = stage.on_event(0, _event("e1", "cart.updated", {"anonymous_id": "v9"}))
    merge = stage.on_event(1, _event("e2", "account.created", {"customer_id": "c9", "anonymous_id": "v9"}, 5))
    rows = {**first.rows, **merge.rows}
    # a restarted worker: the table (changelog) has the rows, the offset was not committed
    again = IdentifyStage()
    again.load(rows.items())
    assert again.needs_stored(1)
    replay = again.on_event(
        1, _event("e2", "account.created", {"customer_id": "c9", "anonymous_id": "v9"}, 5), rows["o:1"]
    )
    assert replay.replayed
    assert replay.messages == merge.messages
    plain = again.on_event(0, _event("e1", "cart.updated", {"anonymous_id": "v9"}))
    assert [k for k, _ in _messages(plain)] == ["c9"], "resolved again, by the stored graph"
    assert plain.rows == {}


def test_erasure_reaches_the_aliases_and_drops_later_events() -> None:
    stage = IdentifyStage()
    stage.on_event(0, _event("e1", "page.viewed", {"anonymous_id": "v1"}))
    stage.on_event(1, _event("e2", "account.created", {"customer_id": "c1", "anonymous_id": "v1"}, 1))
    out = stage.on_event(2, _event("e3", "customer.erased", {"customer_id": "c1"}, 2))
    messages = _messages(out)
    assert [k for k, _ in messages] == ["c1", "anonymous_id:v1"]
    assert messages[1][1] == {"ctl": "erase", "into": "c1"}
    assert out.erased == 1
    assert any(v is None for k, v in out.rows.items() if k.startswith("n:")), "tombstones for the graph"
    late = stage.on_event(3, _event("e4", "page.viewed", {"anonymous_id": "v1"}, 3))
    assert late.dropped
    assert late.messages == []


def test_control_messages_are_told_apart_from_events() -> None:
    stage = IdentifyStage()
    stage.on_event(0, _event("e1", "page.viewed", {"anonymous_id": "v1"}))
    out = stage.on_event(1, _event("e2", "account.created", {"customer_id": "c1", "anonymous_id": "v1"}, 1))
    control, event = out.messages
    assert control[1].startswith(CONTROL_PREFIX)
    assert not event[1].startswith(CONTROL_PREFIX)


def test_outbox_rows_older_than_the_span_are_deleted(monkeypatch: Any) -> None:
    import orchestrator.runtime.identify as identify

    monkeypatch.setattr(identify, "OUTBOX_SPAN", 10)
    stage = IdentifyStage()
    stage.on_event(0, _event("e1", "page.viewed", {"anonymous_id": "v1"}))
    stage.on_event(1, _event("e2", "account.created", {"customer_id": "c1", "anonymous_id": "v1"}, 1))
    stage.on_event(5, _event("e3", "page.viewed", {"anonymous_id": "v2"}, 2))
    out = stage.on_event(20, _event("e4", "account.created", {"customer_id": "c2", "anonymous_id": "v2"}, 3))
    assert out.rows["o:1"] is None
    assert out.rows["o:20"]


def test_kept_messages_go_once_their_offset_is_committed() -> None:
    stage = IdentifyStage()
    stage.on_event(0, _event("e1", "page.viewed", {"anonymous_id": "v1"}))
    stage.on_event(1, _event("e2", "account.created", {"customer_id": "c1", "anonymous_id": "v1"}, 1))
    stage.on_event(2, _event("e3", "customer.erased", {"customer_id": "c1"}, 2))
    assert stage.prune(None) == {}
    assert stage.prune(2) == {"o:1": None}
    assert stage.prune(3) == {"o:2": None}
    assert stage.prune(10) == {}
