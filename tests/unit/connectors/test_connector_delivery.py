"""The connector runtime's pure parts: the backoff schedule, the marks' state machine and encoding, a
replica's share of a rate limit, the dead letters of actions."""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from datetime import UTC, datetime

import orjson
import pytest

from orchestrator.connectors.marks import (
    PartitionMarks,
    decode_marks,
    encode_marks,
    marks_key,
    next_step,
)
from orchestrator.connectors.ratelimit import replica_share
from orchestrator.connectors.retry import RetryPolicy
from orchestrator.connectors.runtime import SharedLimiter
from orchestrator.contracts import DeadLetter
from orchestrator.contracts.records import ACTION_DEAD_LETTER_REASONS, EVENT_DEAD_LETTER_REASONS
from orchestrator.core.policy import RateLimit
from orchestrator.runtime.metrics import INVALID_REASONS


# -- backoff -----------------------------------------------------------------------------------------
def test_backoff_ceilings_double_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=8, base_s=0.5, cap_s=10.0)
    assert [policy.ceiling(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.ceiling(10_000) == 10.0  # no float overflow far past the cap
    with pytest.raises(ValueError, match="from 1"):
        policy.ceiling(0)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_backoff_is_full_jitter_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy(base_s=1.0, cap_s=60.0)
    first = [policy.delay(n, random.Random(7)) for n in range(1, 9)]
    assert first == [policy.delay(n, random.Random(7)) for n in range(1, 9)]
    rng = random.Random(42)
    for n in range(1, 12):
        for _ in range(200):
            assert 0.0 <= policy.delay(n, rng) <= policy.ceiling(n)
    # full jitter: the waits of one retry spread over the whole range, not around its ceiling
    waits = [policy.delay(6, rng) for _ in range(2000)]
    assert min(waits) < 2.0 and max(waits) > 30.0  # noqa: PT018
    assert 14.0 < sum(waits) / len(waits) < 18.0  # the mean of U(0, 32)


def test_backoff_honours_retry_after_within_the_cap() -> None:
    policy = RetryPolicy(base_s=0.1, cap_s=30.0)
    rng = random.Random(1)
    assert policy.delay(1, rng, retry_after=5.0) == 5.0
    assert policy.delay(1, rng, retry_after=3600.0) == 30.0
    assert policy.delay(1, rng, retry_after=0.0) <= 0.1
    assert not policy.exhausted(7)
    assert policy.exhausted(8)


# -- marks -------------------------------------------------------------------------------------------
def test_next_step_of_each_mark() -> None:
    assert [next_step(s) for s in (None, "retrying", "sending", "sent", "dead")] == [
        "send",
        "send",
        "unconfirmed",
        "skip",
        "skip",
    ]


def test_marks_keys_name_no_customer_and_stay_per_channel() -> None:
    key = marks_key("email", "ann@example.com")
    assert key.startswith(b"email:")
    assert b"ann" not in key
    assert key == marks_key("email", "ann@example.com")
    assert key != marks_key("sms", "ann@example.com")
    assert key != marks_key("email", "bob@example.com")


def test_a_partition_keeps_the_last_marks_of_each_customer() -> None:
    marks = PartitionMarks(2, kept=3)
    key = marks_key("email", "c1")
    offset = 0
    for n in range(5):
        for state in ("sending", "sent"):
            value = marks.with_mark(key, f"act_{n}", state)  # type: ignore[arg-type]
            marks.written(key, value, offset)
            offset += 1
    assert [marks.state(key, f"act_{n}") for n in range(5)] == [None, None, "sent", "sent", "sent"]
    assert list(decode_marks(marks._values[key])) == ["act_2", "act_3", "act_4"]
    assert marks.end == 10
    # a mark again moves the action to the newest place
    marks.written(key, marks.with_mark(key, "act_2", "dead"), 10)
    assert list(decode_marks(marks._values[key])) == ["act_3", "act_4", "act_2"]
    assert marks.state(marks_key("email", "c2"), "act_2") is None


def test_marks_replayed_from_the_log_and_tombstones() -> None:
    key = marks_key("push", "c1")
    first = encode_marks(OrderedDict([("a", "sending")]))
    second = encode_marks(OrderedDict([("a", "sent"), ("b", "sending")]))
    marks = PartitionMarks(0)
    marks.apply(key, first, 4)
    marks.apply(key, second, 9)
    assert (marks.state(key, "a"), marks.state(key, "b"), marks.end) == ("sent", "sending", 10)
    marks.apply(key, None, 12)
    assert (marks.state(key, "a"), len(marks), marks.end) == (None, 0, 13)
    marks.apply(None, b"junk", 13)  # a record without a key only moves the end
    assert marks.end == 14


@pytest.mark.parametrize(
    "value",
    [b"not json", b"[]", b'{"v": 2, "m": []}', b'{"v": 1, "m": "x"}', b'{"v": 1, "m": [["a"]]}'],
)
def test_unreadable_marks_count_as_none(value: bytes) -> None:
    assert decode_marks(value) == OrderedDict()


def test_marks_skip_entries_with_an_unknown_state() -> None:
    value = orjson.dumps({"v": 1, "m": [["a", "sent"], ["b", "lost"], [3, "sent"]]})
    assert decode_marks(value) == OrderedDict([("a", "sent")])


# -- rate limits across replicas ---------------------------------------------------------------------
def test_replicas_shares_add_up_to_the_limit() -> None:
    limit = RateLimit("email", 200.0, 400)
    shares = [replica_share(limit, n, 12) for n in (5, 4, 3)]
    assert [s.per_second for s in shares if s] == pytest.approx([200 * 5 / 12, 200 * 4 / 12, 200 * 3 / 12])
    assert sum(s.per_second for s in shares if s) == pytest.approx(200.0)
    assert [s.burst for s in shares if s] == [166, 133, 100]
    assert replica_share(limit, 12, 12) == limit
    assert replica_share(RateLimit("sms", 1.0, 1), 1, 6) == RateLimit("sms", 1 / 6, 1)  # burst >= 1
    assert replica_share(limit, 0, 12) is None
    assert replica_share(None, 3, 12) is None


def test_a_replica_waits_for_its_share_of_tokens() -> None:
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    limiter = SharedLimiter(RateLimit("email", 60.0, 6), clock=clock)
    assert limiter.resize(1, 3) == RateLimit("email", 20.0, 2)

    async def take(n: int) -> float:
        stopping = asyncio.Event()
        return sum([await limiter.take(stopping) for _ in range(n)])

    assert asyncio.run(take(2)) == 0.0  # the burst
    clock.now = 0.1  # two more tokens at 20/s
    assert asyncio.run(take(2)) == 0.0
    limiter.resize(0, 3)
    assert asyncio.run(take(100)) == 0.0  # no partition, no bucket


# -- dead letters of actions -------------------------------------------------------------------------
def test_a_connector_dead_letter_names_the_action_and_an_event_one_is_unchanged() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    letter = DeadLetter.of(
        reason="rejected", error="orch.actions.email[1]@7 act_1: SMTP 550", topic="orch.actions.email",
        partition=1, offset=7, key=b"c1", value=b'{"action_id": "act_1"}', at=at, action_id="act_1",
        attempts=2,
    )  # fmt: skip
    again = DeadLetter.model_validate_json(letter.to_json())
    assert (again.reason, again.action_id, again.attempts) == ("rejected", "act_1", 2)
    event = DeadLetter.of(
        reason="not_json", error="x", topic="raw", partition=0, offset=1, key=None, value=b"{", at=at
    )
    assert set(orjson.loads(event.to_json())) == set(DeadLetter.model_fields) - {"action_id", "attempts"}
    assert set(ACTION_DEAD_LETTER_REASONS).isdisjoint(EVENT_DEAD_LETTER_REASONS)
    assert INVALID_REASONS == EVENT_DEAD_LETTER_REASONS  # the worker's metric keeps its own reasons
