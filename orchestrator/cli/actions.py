"""``orchestrator actions``: what went out, and what the policy decided, read from the topics.

Reads the action topics (one per channel) and the decisions topic: the last ``--last N`` records that
match the filters (``--customer``, ``--journey``, ``--channel``), oldest first, then with ``--follow``
the new ones as they come. Readable lines, or one JSON object per line with ``--json``. Recipients are
masked (``a***@example.com``) unless ``--show-recipients``: the topics hold personal data.

With ``--customer`` only that customer's partition of each topic is read (the topics are keyed by
customer); otherwise the last ``--scan`` records of every partition are looked at.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.config import Settings
from orchestrator.contracts.actions import CHANNELS
from orchestrator.contracts.decision import DECISION_REASONS
from orchestrator.exceptions import OrchestratorError
from orchestrator.kafka.security import connection_check, librdkafka_options

__all__ = ["Filters", "Output", "describe", "mask", "matches", "register"]


class ActionsError(OrchestratorError):
    """The topics cannot be read."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "actions", help="the actions that went out and the policy's decisions, filtered, from the topics"
    )
    parser.add_argument("--customer", metavar="KEY", help="only this customer (its canonical key)")
    parser.add_argument("--journey", metavar="ID", help="only this journey")
    parser.add_argument("--channel", choices=CHANNELS, help="only this channel")
    parser.add_argument(
        "--only", choices=("actions", "decisions"), default=None, help="only actions, or only decisions"
    )
    parser.add_argument(
        "--last", type=int, default=20, metavar="N", help="the last N matching records (default 20)"
    )
    parser.add_argument(
        "--scan",
        type=int,
        default=10_000,
        metavar="M",
        help="without --customer: how many of the latest records of each partition to look at "
        "(default 10000)",
    )
    parser.add_argument("--follow", action="store_true", help="then print new records as they come")
    parser.add_argument(
        "--for",
        dest="follow_s",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --follow: stop after this many seconds (default: until Ctrl-C)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--show-recipients", action="store_true", help="print addresses in full (they are personal data)"
    )
    add_config_option(parser)
    parser.set_defaults(func=actions_command)


@dataclass(frozen=True, slots=True)
class Filters:
    customer: str | None = None
    journey: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Output:
    """One record of an action or decisions topic."""

    kind: str
    """``action`` or ``decision``."""
    topic: str
    partition: int
    offset: int
    record: dict[str, Any]

    @property
    def at(self) -> str:
        return str(self.record.get("created_at" if self.kind == "action" else "at", ""))

    def to_json(self, show_recipients: bool) -> bytes:
        record = self.record if show_recipients else _masked(self.record)
        where = {"kind": self.kind, "topic": self.topic, "partition": self.partition, "offset": self.offset}
        return orjson.dumps({**where, "record": record})


def mask(address: str) -> str:
    """``a***@example.com``, ``+1555***01``, ``tok***``: enough to tell addresses apart, not to use them."""
    if "@" in address:
        name, _, domain = address.partition("@")
        return f"{name[:1]}***@{domain}"
    if address.startswith("+"):
        return f"{address[:5]}***{address[-2:]}" if len(address) > 8 else "+***"
    return f"{address[:3]}***"


def _masked(record: dict[str, Any]) -> dict[str, Any]:
    if "recipient" not in record:
        return record
    return {**record, "recipient": mask(str(record["recipient"]))}


def matches(out: Output, filters: Filters) -> bool:
    r = out.record
    if filters.customer is not None and r.get("customer_id") != filters.customer:
        return False
    if filters.journey is not None and r.get("journey_id") != filters.journey:
        return False
    return filters.channel is None or r.get("channel") == filters.channel


def describe(out: Output, show_recipients: bool = False) -> str:
    """One readable line."""
    r = out.record
    where = f"{r.get('journey_id')} v{r.get('journey_version')}/{r.get('step_id')}"
    head = f"{out.at:24}  {out.kind:8}  {r.get('channel', '?'):5}  {r.get('customer_id')}  {where}"
    if out.kind == "action":
        to = str(r.get("recipient", ""))
        later = f", not before {r['not_before']}" if r.get("not_before") else ""
        return (
            f"{head}  template {r.get('template_id')} to {to if show_recipients else mask(to)}"
            f"{later}  ({r.get('action_id')})"
        )
    reason = str(r.get("reason", ""))
    why = DECISION_REASONS.get(reason)
    rule = f" {r['rule']}" if r.get("rule") and r.get("rule") != "quiet_hours" else ""
    text = f"{head}  {r.get('kind')}: {reason}{rule}" + (f" ({why})" if why else "")
    if r.get("original_channel") and r.get("original_channel") != r.get("channel"):
        text += f", asked for {r['original_channel']}"
    if r.get("release_at"):
        text += f", until {r['release_at']}"
    return text


def _topics(settings: Settings, only: str | None, channel: str | None) -> list[tuple[str, str]]:
    t = settings.topics
    out: list[tuple[str, str]] = []
    if only != "decisions":
        out += [("action", t.action_topic(c)) for c in CHANNELS if channel is None or c == channel]
    if only != "actions":
        out.append(("decision", t.decisions))
    return out


class _Reader:
    """The assigned partitions of the topics, from the chosen offsets on (no consumer group commits)."""

    def __init__(self, settings: Settings, topics: list[tuple[str, str]], customer: str | None, scan: int):
        from aiokafka.partitioner import DefaultPartitioner
        from confluent_kafka import Consumer, TopicPartition

        self.kinds = {topic: kind for kind, topic in topics}
        self.consumer = Consumer(
            {**librdkafka_options(settings), "group.id": "orchestrator-actions", "enable.auto.commit": False}
        )
        self.ends: dict[tuple[str, int], int] = {}
        self.positions: dict[tuple[str, int], int] = {}
        assignment = []
        for _, topic in topics:
            md = self.consumer.list_topics(topic, timeout=10)
            found = md.topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                raise ActionsError(f"topic {topic!r} not found (orchestrator topics create)")
            parts = sorted(found.partitions)
            if customer is not None:
                parts = [DefaultPartitioner()(customer.encode(), parts, parts)]
            for p in parts:
                low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                start = low if customer is not None else max(low, high - scan)
                self.ends[(topic, p)] = high
                self.positions[(topic, p)] = start
                assignment.append(TopicPartition(topic, p, start))
        self.consumer.assign(assignment)

    def _outputs(self, messages: Iterable[Any]) -> Iterator[Output]:
        for msg in messages:
            if msg.error() is not None or msg.value() is None:
                continue
            try:
                record = orjson.loads(msg.value())
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                topic = msg.topic()
                yield Output(self.kinds[topic], topic, msg.partition(), msg.offset(), record)

    def backlog(self, idle_s: float = 10.0) -> list[Output]:
        """Everything up to the ends seen at the start (or until nothing came for ``idle_s``)."""
        from confluent_kafka import TopicPartition

        found: list[Output] = []
        last_progress = time.monotonic()
        while True:
            pending = [tp for tp, end in self.ends.items() if self.positions[tp] < end]
            if not pending:
                return found
            batch = self.consumer.consume(num_messages=1000, timeout=0.5)
            for msg in batch:
                read = (str(msg.topic()), int(msg.partition() or 0))
                self.positions[read] = max(self.positions[read], (msg.offset() or 0) + 1)
            found += self._outputs(batch)
            if batch:
                last_progress = time.monotonic()
                continue
            # records deleted or compacted away at the end: the consumer's position still moves on
            for done in self.consumer.position([TopicPartition(t, p) for t, p in pending]):
                tp = (str(done.topic), int(done.partition))
                self.positions[tp] = max(self.positions[tp], int(done.offset))
            if time.monotonic() - last_progress > idle_s:
                return found

    def more(self, seconds: float) -> list[Output]:
        return list(self._outputs(self.consumer.consume(num_messages=1000, timeout=seconds)))

    def close(self) -> None:
        self.consumer.close()


def actions_command(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    connection_check(settings)  # a refused login or TLS handshake: one clear line, now
    filters = Filters(args.customer, args.journey, args.channel)
    reader = _Reader(settings, _topics(settings, args.only, args.channel), args.customer, args.scan)

    def show(out: Output) -> None:
        if args.json:
            sys.stdout.write(out.to_json(args.show_recipients).decode() + "\n")
        else:
            sys.stdout.write(describe(out, args.show_recipients) + "\n")

    try:
        shown = sorted((o for o in reader.backlog() if matches(o, filters)), key=lambda o: (o.at, o.kind))
        for out in shown[-args.last :] if args.last > 0 else []:
            show(out)
        if not args.json and not shown:
            print("nothing matches" + ("; waiting for new records (Ctrl-C to stop)" if args.follow else ""))
        sys.stdout.flush()
        if args.follow:
            stop = None if args.follow_s is None else time.monotonic() + args.follow_s
            while stop is None or time.monotonic() < stop:
                for out in reader.more(0.5):
                    if matches(out, filters):
                        show(out)
                sys.stdout.flush()
    finally:
        reader.close()
    return 0
