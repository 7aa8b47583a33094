"""Dedupe marks: which actions a connector sent, kept on a compacted Kafka topic so they survive a restart.

Before a provider call the connector writes the mark ``sending`` for the action (and waits for the
broker's acknowledgement); after the provider accepted it, ``sent``. A refusal for now writes
``retrying`` (nothing is in flight), a dead letter ``dead``. An action read again — a duplicate the worker
sent after a crash, or the connector's own uncommitted records after a restart or a rebalance — is
judged by its mark (:func:`next_step`):

- ``sent`` or ``dead``: done already, skipped;
- ``sending``: the connector stopped between the mark and the provider's answer (a crash, a kill, a lost
  answer), so the message may have gone out: dead-lettered ``unconfirmed`` rather than sent twice;
- ``retrying`` or no mark: sent.

**Layout.** The marks topic has the action topics' partition count; the marks of an action read from
partition ``p`` of its action topic are written to partition ``p`` of the marks topic (explicitly, not
by hashing the key: producers of actions may use another partitioner), so the replica that owns
partition ``p`` of an action topic reads exactly one marks partition. A record's key is
``<channel>:<digest of the customer key>`` (no customer key in clear: the marks hold no personal data);
its value the customer's last ``kept`` action ids on that channel with their state, newest last:
``{"v": 1, "m": [["act_…", "sent"], …]}``. Compaction keeps the latest value per key, retention
(``connector_marks_days``) forgets customers with no action for that long.

Only the replica that owns a partition writes its marks (the consumer group gives a partition to one
member at a time, and a replica finishes its in-flight sends before it gives a partition up), so a
replica keeps the marks of its partitions in memory and each write replaces the customer's value.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any, Final, Literal

import orjson

__all__ = [
    "MARK_STATES",
    "MarkState",
    "PartitionMarks",
    "Step",
    "decode_marks",
    "encode_marks",
    "load_marks",
    "marks_key",
    "next_step",
]

log = logging.getLogger("orchestrator.connector")

MarkState = Literal["sending", "retrying", "sent", "dead"]
MARK_STATES: Final[tuple[MarkState, ...]] = ("sending", "retrying", "sent", "dead")
Step = Literal["send", "skip", "unconfirmed"]
_VERSION: Final = 1


def marks_key(channel: str, customer_id: str) -> bytes:
    """The marks record key of a customer on a channel: the channel and a digest of the customer key."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=16, person=b"orch-marks").hexdigest()
    return f"{channel}:{digest}".encode()


def next_step(state: MarkState | None) -> Step:
    """What to do with an action whose mark is ``state`` (None: no mark)."""
    if state in ("sent", "dead"):
        return "skip"
    if state == "sending":
        return "unconfirmed"
    return "send"


def encode_marks(marks: OrderedDict[str, MarkState]) -> bytes:
    return orjson.dumps({"v": _VERSION, "m": [[action_id, state] for action_id, state in marks.items()]})


def decode_marks(value: bytes | None) -> OrderedDict[str, MarkState]:
    """A record's value as action id -> state, oldest first; an unreadable value counts as no marks
    (logged): a value of a newer version this code cannot read must not stop the connector."""
    out: OrderedDict[str, MarkState] = OrderedDict()
    if not value:
        return out
    try:
        data: Any = orjson.loads(value)
        entries = data["m"] if isinstance(data, dict) and data.get("v") == _VERSION else None
        if not isinstance(entries, list):
            raise ValueError(f"not a version {_VERSION} marks value")
        for action_id, state in entries:
            if isinstance(action_id, str) and state in MARK_STATES:
                out[action_id] = state
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring an unreadable marks value (%s): %r", exc, value[:200])
        return OrderedDict()
    return out


class PartitionMarks:
    """The marks of one partition: the latest value of each key, kept as bytes (decoded when asked)."""

    def __init__(self, partition: int, kept: int = 20) -> None:
        if kept < 1:
            raise ValueError("kept must be at least 1")
        self.partition = partition
        self.kept = kept
        self._values: dict[bytes, bytes] = {}
        self.end = 0
        """The offset after the last record of the marks partition this copy has seen (read or written):
        when the partition's end offset is still this, nobody else wrote to it since."""

    def apply(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        """One record of the marks partition (read from the topic, in offset order)."""
        if key is not None:
            if value is None:
                self._values.pop(key, None)  # a tombstone
            else:
                self._values[key] = value
        self.end = max(self.end, offset + 1)

    def state(self, key: bytes, action_id: str) -> MarkState | None:
        raw = self._values.get(key)
        return None if raw is None else decode_marks(raw).get(action_id)

    def with_mark(self, key: bytes, action_id: str, state: MarkState) -> bytes:
        """The key's new value with ``action_id`` marked ``state`` (newest last, at most ``kept`` ids):
        write it, then :meth:`written` it."""
        marks = decode_marks(self._values.get(key))
        marks.pop(action_id, None)
        marks[action_id] = state
        while len(marks) > self.kept:
            marks.popitem(last=False)
        return encode_marks(marks)

    def written(self, key: bytes, value: bytes, offset: int) -> None:
        """A value this replica wrote, at ``offset`` of the marks partition (after the broker's ack)."""
        self.apply(key, value, offset)

    def __len__(self) -> int:
        return len(self._values)


async def load_marks(
    options: dict[str, Any],
    topic: str,
    partition: int,
    *,
    kept: int,
    cached: PartitionMarks | None = None,
    timeout_s: float = 120.0,
) -> PartitionMarks:
    """The marks of ``topic[partition]``, read from its beginning to its end as of now.

    ``cached`` (this replica's copy from before a rebalance) is returned as it is when the partition's
    end offset is still the one it saw: nobody wrote to the partition in between.
    ``options``: the client's connection options (:func:`orchestrator.kafka.security.aiokafka_options`).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        **options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if cached is not None and cached.end == end and cached.kept == kept:
            return cached
        marks = PartitionMarks(partition, kept)
        # (an explicit seek: seek_to_beginning right after assign() may leave the position at the end)
        consumer.seek(tp, (await consumer.beginning_offsets([tp]))[tp])
        deadline = time.monotonic() + timeout_s
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading the marks of {topic}[{partition}] took over {timeout_s:.0f} s")
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
            for record in batch.get(tp, ()):
                marks.apply(record.key, record.value, record.offset)
        marks.end = max(marks.end, end)
        return marks
    finally:
        await consumer.stop()
