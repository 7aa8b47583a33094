"""The connector runtime: reads one channel's action topic and hands each action to a provider, once.

One runtime per channel, any number of replicas (docs/connectors.md):

- **its own consumer group** per channel, ``<app_id>-connector-<channel>``, manual commits;
- **order per partition**: one task per assigned partition hands its actions to the provider one at a
  time, in offset order; partitions never wait for each other;
- **not_before**: an action due later is set aside (in memory) and sent when due, while the records after
  it go on; more than ``connector_max_waiting`` actions read and not done in a partition pause its fetch;
- **retries**: exponential backoff with full jitter (:class:`~orchestrator.connectors.retry.RetryPolicy`);
  refusals for now count toward ``connector_max_attempts``, an unreachable provider does not
  (:mod:`orchestrator.connectors.errors`);
- **dead letters**: an invalid action, a message that cannot be rendered, a refusal for good, attempts
  exhausted, an unknown outcome: a :class:`~orchestrator.contracts.records.DeadLetter` on the dead-letter
  topic, naming topic, partition, offset, action id and the reason;
- **rate limits** across replicas: this replica's share of the channel's limit
  (:func:`~orchestrator.connectors.ratelimit.replica_share`), recomputed at each rebalance;
- **dedupe that survives a restart**: the marks ``sending`` (before the provider call, acknowledged by the
  broker) and ``sent`` (after) on the marks topic (:mod:`orchestrator.connectors.marks`), read back for a
  partition before its first action is handled;
- **commits** only up to the first action of a partition that is not done (accepted, dead-lettered or
  skipped): an action waiting for its time, a token or a retry holds the partition's commit back.

The provider (:class:`Provider`) renders an action's message and sends it; the runtime knows nothing of
SMTP or HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiokafka import ConsumerRebalanceListener
from pydantic import ValidationError

from orchestrator.config import Settings
from orchestrator.connectors.errors import (
    PermanentError,
    ProviderUnavailable,
    RenderError,
    TransientError,
    UnknownOutcome,
)
from orchestrator.connectors.marks import MarkState, PartitionMarks, load_marks, marks_key, next_step
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.ratelimit import TokenBucket, replica_share
from orchestrator.connectors.retry import RetryPolicy
from orchestrator.contracts.actions import Channel, ChannelAction
from orchestrator.contracts.events import CustomerEvent, describe_error
from orchestrator.contracts.records import DeadLetter, DeadLetterReason
from orchestrator.core.policy.model import RateLimit
from orchestrator.exceptions import TopicLayoutError
from orchestrator.kafka.security import aiokafka_options

__all__ = [
    "ConnectorRuntime",
    "ConnectorStats",
    "Provider",
    "SharedLimiter",
    "check_connector_topics",
    "group_id_of",
]

log = logging.getLogger("orchestrator.connector")

_STOP_GRACE_S = 30.0
"""How long a partition that is given up (a rebalance, a stop) may take to finish its provider call."""


class Provider(Protocol):
    """What sends one channel's messages: the runtime calls ``render`` once per action, then ``send``
    (again for each retry) until it returns (accepted) or raises (:mod:`orchestrator.connectors.errors`)."""

    @property
    def channel(self) -> Channel: ...

    def render(self, action: ChannelAction) -> Any:
        """The message of ``action``; raises :class:`RenderError` when it cannot be made."""
        ...

    async def send(self, action: ChannelAction, message: Any) -> None:
        """Returns once the provider accepted ``message``."""
        ...

    async def close(self) -> None: ...


def check_connector_topics(settings: Settings, channel: str, timeout: float = 10.0) -> None:
    """Refuse to start when the channel's action topic or the marks topic is missing, or when their
    partition counts differ (the marks of action partition p live on marks partition p)."""
    from orchestrator.kafka.topics import describe_topics

    action, marks = settings.topics.action_topic(channel), settings.topics.connector_marks
    found = describe_topics(settings, [action, marks], timeout)
    missing = [name for name in (action, marks) if name not in found]
    if missing:
        raise TopicLayoutError(f"topic(s) {', '.join(missing)} missing (run: orchestrator topics create)")
    if found[action] != found[marks]:
        raise TopicLayoutError(
            f"topic {marks!r} has {found[marks]} partitions but {action!r} has {found[action]}: the marks "
            "topic must have the action topics' partition count (docs/connectors.md)"
        )


def group_id_of(settings: Settings, channel: str) -> str:
    """The consumer group of a channel's connectors."""
    return f"{settings.app_id}-connector-{channel}"


@dataclass
class ConnectorStats:
    """What one runtime did (tests and the end-of-run line read them; Prometheus has the same)."""

    read: int = 0
    sent: int = 0
    duplicates: int = 0
    retries: int = 0
    dead: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    """Provider calls, accepted or not."""


class _Stopped(Exception):
    """The partition is being given up: leave the action not done (it is read again by its next owner)."""


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or raise :class:`_Stopped` as soon as ``stopping`` is set."""
    if stopping.is_set():
        raise _Stopped
    if seconds <= 0:
        return
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return
    raise _Stopped


class SharedLimiter:
    """One replica's token bucket for its channel, shared by its partitions, resized at each rebalance."""

    def __init__(self, limit: RateLimit | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self.share: RateLimit | None = None
        self._bucket: TokenBucket | None = None

    def resize(self, assigned: int, total: int) -> RateLimit | None:
        self.share = replica_share(self.limit, assigned, total)
        self._bucket = (
            None
            if self.share is None
            else TokenBucket(self.share.per_second, self.share.burst, clock=self._clock)
        )
        return self.share

    async def take(self, stopping: asyncio.Event) -> float:
        """Take a token, waiting for it (interrupted by ``stopping``); the seconds waited."""
        waited = 0.0
        while self._bucket is not None:
            wait = self._bucket.try_take()
            if wait == 0.0:
                break
            await _sleep_unless(stopping, wait)
            waited += wait
        return waited


class _Partition:
    """One assigned partition of the action topic: its records in offset order, the actions set aside
    until their ``not_before``, its marks, and the offsets not done yet."""

    def __init__(self, runtime: ConnectorRuntime, partition: int, cached: PartitionMarks | None) -> None:
        self.rt = runtime
        self.partition = partition
        self.queue: deque[Any] = deque()
        self.parked: list[tuple[float, int, Any, ChannelAction]] = []
        self.open: OrderedDict[int, bool] = OrderedDict()  # offset -> done, in offset order
        self.next_offset: int | None = None
        self.committed: int | None = None
        self.marks: PartitionMarks | None = None
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.task = asyncio.create_task(self._run(cached), name=f"connector-{runtime.channel}-{partition}")

    # -- fed by the fetch loop ----------------------------------------------------------------------
    def feed(self, records: Iterable[Any]) -> None:
        for record in records:
            if self.next_offset is not None and record.offset < self.next_offset:
                continue  # already here (a fetch after a seek may repeat records)
            self.queue.append(record)
            self.open[record.offset] = False
            self.next_offset = record.offset + 1
        self.wake.set()

    def waiting(self) -> int:
        return len(self.open)

    def position(self) -> int | None:
        """The offset to commit: the first one not done, else the one after the last read."""
        for offset in self.open:
            return offset
        return self.next_offset

    def _done(self, offset: int) -> None:
        if offset in self.open:
            self.open[offset] = True
        while self.open:
            first = next(iter(self.open))
            if not self.open[first]:
                break
            self.open.popitem(last=False)

    async def stop(self, grace: float) -> None:
        """Finish the provider call in flight (at most ``grace`` seconds), then stop."""
        self.stopping.set()
        self.wake.set()
        if self.task.done():
            return
        try:
            await asyncio.wait_for(self.task, grace)
        except TimeoutError:
            log.warning(
                "%s[%d]: a provider call did not finish within %.0f s of the stop: cancelled (its action "
                "stays marked sending: its next owner dead-letters it unconfirmed)",
                self.rt.topic,
                self.partition,
                grace,
            )

    # -- the partition's task -----------------------------------------------------------------------
    async def _run(self, cached: PartitionMarks | None) -> None:
        rt = self.rt
        try:
            self.marks = await load_marks(
                rt.kafka_options, rt.marks_topic, self.partition, kept=rt.settings.connector_marks_kept,
                cached=cached,
            )  # fmt: skip
            rt.marks_cache[self.partition] = self.marks
            while not self.stopping.is_set():
                item = self._next_due()
                if item is None:
                    self.wake.clear()
                    timeout = self.parked[0][0] - rt.clock() if self.parked else None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), timeout)
                    continue
                record, action = item
                await self._handle(record, action)
                self._done(record.offset)
        except _Stopped:
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken broker connection, a bug: stop the connector, loudly
            log.exception("%s[%d]: the connector stops", rt.topic, self.partition)
            rt.fail(exc)

    def _next_due(self) -> tuple[Any, ChannelAction | None] | None:
        now = self.rt.clock()
        if self.parked and self.parked[0][0] <= now:
            _, _, record, action = heapq.heappop(self.parked)
            return record, action
        while self.queue:
            record = self.queue.popleft()
            try:
                action = ChannelAction.model_validate(orjson.loads(record.value or b"null"))
            except (orjson.JSONDecodeError, ValidationError):
                return record, None
            if action.not_before is not None and action.not_before.timestamp() > now:
                heapq.heappush(self.parked, (action.not_before.timestamp(), record.offset, record, action))
                continue
            return record, action
        return None

    async def _handle(self, record: Any, action: ChannelAction | None) -> None:
        rt = self.rt
        rt.stats.read += 1
        if action is None:
            await self._dead(record, None, "invalid_action", self._invalid(record), 0)
            return
        assert self.marks is not None
        key = marks_key(rt.channel, action.customer_id)
        step = next_step(self.marks.state(key, action.action_id))
        if step == "skip":
            rt.stats.duplicates += 1
            rt.metrics.duplicates.labels(rt.channel).inc()
            return
        if step == "unconfirmed":
            await self._dead(
                record, action, "unconfirmed",
                "marked sending without a confirmation: the connector stopped between the mark and the "
                "provider's answer, so it may have been sent; not sent again (docs/connectors.md)", 0,
            )  # fmt: skip
            return
        try:
            message = rt.provider.render(action)
        except Exception as exc:  # RenderError, or a renderer's bug: never a half-rendered message
            kind = "" if isinstance(exc, RenderError) else f"{type(exc).__name__}: "
            await self._dead(record, action, "render_failed", f"{kind}{exc}", 0)
            return
        await self._deliver(record, action, key, message)

    async def _deliver(self, record: Any, action: ChannelAction, key: bytes, message: Any) -> None:
        rt = self.rt
        refused = 0  # refusals for now of this message (the provider being down does not count)
        failures = 0  # every failed call: the backoff's exponent
        calls = 0
        while True:
            waited = await rt.limiter.take(self.stopping)
            if waited:
                rt.metrics.rate_limited_seconds.labels(rt.channel).inc(waited)
            await self._mark(key, action, "sending")
            calls += 1
            rt.stats.attempts += 1
            started = time.monotonic()
            try:
                await asyncio.wait_for(
                    rt.provider.send(action, message), rt.settings.connector_send_timeout_s
                )
            except TransientError as exc:
                await self._mark(key, action, "retrying")
                failures += 1
                down = isinstance(exc, ProviderUnavailable)
                if not down:
                    refused += 1
                    if rt.retry.exhausted(refused):
                        await self._dead(
                            record, action, "retries_exhausted",
                            f"refused for now {refused} times; the last: {exc}", calls,
                        )  # fmt: skip
                        return
                delay = rt.retry.delay(failures, rt.rng, exc.retry_after)
                rt.stats.retries += 1
                rt.metrics.retries.labels(rt.channel, "provider" if down else "message").inc()
                why = (
                    "provider unavailable" if down else f"refused for now ({refused}/{rt.retry.max_attempts})"
                )
                log.warning(
                    "%s[%d]@%d %s: %s: %s; trying again in %.1f s",
                    rt.topic, self.partition, record.offset, action.action_id, why, exc, delay,
                )  # fmt: skip
                await _sleep_unless(self.stopping, delay)
                continue
            except PermanentError as exc:
                await self._dead(record, action, exc.reason, str(exc), calls)
                return
            except TimeoutError:
                await self._dead(
                    record, action, "unconfirmed",
                    f"no answer from the provider within {rt.settings.connector_send_timeout_s:g} s "
                    "(connector_send_timeout_s): it may have been sent; not sent again", calls,
                )  # fmt: skip
                return
            except UnknownOutcome as exc:
                await self._dead(record, action, "unconfirmed", f"{exc}; not sent again", calls)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the provider's own failure: where it stopped is unknown
                log.exception("%s[%d]@%d: the provider failed", rt.topic, self.partition, record.offset)
                await self._dead(
                    record, action, "unconfirmed",
                    f"the provider failed ({type(exc).__name__}: {exc}); it may have been sent", calls,
                )  # fmt: skip
                return
            rt.metrics.send_seconds.labels(rt.channel).observe(time.monotonic() - started)
            receipts = rt.accepted(action) if rt.accepted is not None else ()
            await asyncio.gather(self._mark(key, action, "sent"), *(rt.receipt(e, action) for e in receipts))
            due = max(record.timestamp / 1000.0, action.not_before.timestamp() if action.not_before else 0.0)
            rt.metrics.delay_seconds.labels(rt.channel).observe(max(0.0, rt.clock() - due))
            rt.metrics.sent.labels(rt.channel).inc()
            rt.stats.sent += 1
            return

    async def _mark(self, key: bytes, action: ChannelAction, state: MarkState) -> None:
        assert self.marks is not None
        value = self.marks.with_mark(key, action.action_id, state)
        meta = await self.rt.producer.send_and_wait(
            self.rt.marks_topic, value, key=key, partition=self.partition
        )
        self.marks.written(key, value, meta.offset)

    def _invalid(self, record: Any) -> str:
        try:
            ChannelAction.model_validate(orjson.loads(record.value or b"null"))
        except orjson.JSONDecodeError as exc:
            return f"not JSON: {exc}"
        except ValidationError as exc:
            return f"not a valid action: {describe_error(exc)}"
        return "not a valid action"

    async def _dead(
        self, record: Any, action: ChannelAction | None, reason: DeadLetterReason, error: str, calls: int
    ) -> None:
        """The dead letter first (acknowledged), then the mark ``dead``: a crash in between gives a
        second dead letter, never a lost one."""
        rt = self.rt
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        action_id = action.action_id if action is not None else None
        letter = DeadLetter.of(
            reason=reason,
            error=f"{where} {action_id or '(no action id)'}: {error}",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            at=datetime.now(UTC),
            action_id=action_id,
            attempts=calls,
        )
        await rt.producer.send_and_wait(
            rt.settings.topics.dead_letter, letter.to_json(), key=DeadLetter.key_of(record.key)
        )
        if action is not None:
            await self._mark(marks_key(rt.channel, action.customer_id), action, "dead")
        rt.stats.dead[reason] = rt.stats.dead.get(reason, 0) + 1
        rt.metrics.failed.labels(rt.channel, reason).inc()
        log.warning("dead letter %s: %s", reason, letter.error)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consumer group's rebalance callbacks."""

    def __init__(self, runtime: ConnectorRuntime) -> None:
        self.rt = runtime

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.rt._revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.rt._assigned(assigned)


class ConnectorRuntime:
    """One channel's connector: ``await start()``, ``await run(stop)`` until ``stop`` is set, then
    ``await close()`` (or ``async with``: start and close)."""

    def __init__(
        self,
        settings: Settings,
        provider: Provider,
        *,
        limit: RateLimit | None = None,
        group_id: str | None = None,
        metrics: ConnectorMetrics | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        accepted: Callable[[ChannelAction], Sequence[CustomerEvent]] | None = None,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.accepted = accepted
        """The receipts of an action the provider accepted (``email.sent``): published to the raw topic,
        keyed by the customer, while its mark ``sent`` is written (docs/connectors.md, "Receipts")."""
        self.channel: Channel = provider.channel
        self.topic = settings.topics.action_topic(self.channel)
        self.marks_topic = settings.topics.connector_marks
        self.group_id = group_id or group_id_of(settings, self.channel)
        self.metrics = metrics or ConnectorMetrics(process_metrics=False)
        self.metrics.start_channel(self.channel)
        self.retry = RetryPolicy(
            settings.connector_max_attempts, settings.connector_backoff_s, settings.connector_backoff_max_s
        )
        self.limiter = SharedLimiter(limit)
        self.rng = rng or random.Random()
        self.clock = clock
        self.stats = ConnectorStats()
        self.kafka_options = aiokafka_options(settings)
        self.partitions: dict[int, _Partition] = {}
        self.marks_cache: dict[int, PartitionMarks] = {}
        self.assigned = False
        self._error: BaseException | None = None
        self._failed = asyncio.Event()
        self._consumer: Any = None
        self._producer: Any = None

    # -- lifecycle ------------------------------------------------------------------------------------
    async def __aenter__(self) -> ConnectorRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        self._producer = AIOKafkaProducer(**self.kafka_options, acks="all", enable_idempotence=True)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            **self.kafka_options,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.settings.session_timeout_s * 1000),
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
        )
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Listener(self))

    @property
    def producer(self) -> Any:
        """The runtime's Kafka producer (idempotent, acks=all): marks, dead letters, and what the
        connector's HTTP endpoints publish."""
        if self._producer is None:
            raise RuntimeError("the connector runtime is not started")
        return self._producer

    async def receipt(self, event: CustomerEvent, action: ChannelAction) -> None:
        """Publishes one receipt of ``action``; a failure is logged and counted, never the action's: it was
        sent (the receipt is lost)."""
        kind = event.type.partition(".")[2]
        try:
            await self.producer.send_and_wait(
                self.settings.topics.raw_events, event.to_json(), key=action.customer_id.encode()
            )
        except Exception as exc:
            self.metrics.receipts.labels(self.channel, kind, "failed").inc()
            log.warning("the %s receipt of %s could not be published: %s", event.type, action.action_id, exc)
            return
        self.metrics.receipts.labels(self.channel, kind, "published").inc()

    def fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._failed.set()

    async def run(self, stop: asyncio.Event) -> ConnectorStats:
        """Fetch and hand records to the partitions until ``stop`` is set; raises what stopped a partition."""
        consumer = self._consumer
        paused: set[Any] = set()
        limit = self.settings.connector_max_waiting
        commit_every = self.settings.commit_interval_s
        last_commit = time.monotonic()
        while not stop.is_set() and not self._failed.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=1000)
            for tp, records in batch.items():
                part = self.partitions.get(tp.partition)
                if part is None:
                    continue  # given up since the fetch: its next owner reads them from the commit
                part.feed(records)
                if part.waiting() >= limit and tp not in paused:
                    consumer.pause(tp)
                    paused.add(tp)
            for tp in list(paused):
                part = self.partitions.get(tp.partition)
                if part is None or part.waiting() < max(1, limit // 2):
                    if part is not None:
                        consumer.resume(tp)
                    paused.discard(tp)
            self.metrics.waiting.labels(self.channel).set(sum(p.waiting() for p in self.partitions.values()))
            if time.monotonic() - last_commit >= commit_every:
                await self.commit()
                last_commit = time.monotonic()
        if self._error is not None:
            raise self._error
        return self.stats

    async def close(self) -> None:
        """Finish the provider calls in flight, commit, and close the clients and the provider (also after
        a start that failed half-way)."""
        try:
            if self._consumer is not None:
                parts = list(self.partitions.values())
                await asyncio.gather(*(p.stop(_STOP_GRACE_S) for p in parts))
                if parts:
                    await self.commit()
                self.partitions.clear()
                await self._consumer.stop()
        finally:
            try:
                if self._producer is not None:
                    await self._producer.stop()
            finally:
                self._consumer = self._producer = None
                await self.provider.close()

    # -- offsets --------------------------------------------------------------------------------------
    def positions(self) -> dict[int, int]:
        """The offset each partition would commit (the first action not done)."""
        out = {}
        for number, part in self.partitions.items():
            pos = part.position()
            if pos is not None:
                out[number] = pos
        return out

    async def commit(self, parts: Iterable[_Partition] | None = None) -> None:
        from aiokafka import TopicPartition
        from aiokafka.errors import KafkaError

        todo = {}
        chosen = list(self.partitions.values()) if parts is None else list(parts)
        for part in chosen:
            pos = part.position()
            if pos is not None and pos != part.committed:
                todo[part] = pos
        if not todo:
            return
        try:
            await self._consumer.commit(
                {TopicPartition(self.topic, p.partition): pos for p, pos in todo.items()}
            )
        except KafkaError as exc:  # a rebalance in progress: the positions are committed at the revoke
            log.warning("%s: commit failed: %s", self.topic, exc)
            return
        for part, pos in todo.items():
            part.committed = pos

    # -- rebalances ------------------------------------------------------------------------------------
    async def _revoked(self, revoked: Any) -> None:
        gone = [self.partitions[tp.partition] for tp in revoked if tp.partition in self.partitions]
        await asyncio.gather(*(p.stop(_STOP_GRACE_S) for p in gone))
        await self.commit(gone)
        for part in gone:
            self.partitions.pop(part.partition, None)
        self._resize()

    async def _assigned(self, assigned: Any) -> None:
        numbers = {tp.partition for tp in assigned}
        for number in [n for n in self.marks_cache if n not in numbers]:
            del self.marks_cache[number]  # another replica owns it now: its copy here goes stale
        for tp in assigned:
            if tp.partition not in self.partitions:
                cached = self.marks_cache.get(tp.partition)
                self.partitions[tp.partition] = _Partition(self, tp.partition, cached)
        self.assigned = True
        share = self._resize()
        log.info(
            "%s: partitions %s of %d, rate %s",
            self.topic,
            sorted(self.partitions),
            self._total_partitions(),
            f"{share.per_second:g}/s (burst {share.burst})" if share else "unlimited",
        )

    def _total_partitions(self) -> int:
        found = self._consumer.partitions_for_topic(self.topic) if self._consumer is not None else None
        return len(found) if found else max(self.settings.partitions, 1)

    def _resize(self) -> RateLimit | None:
        share = self.limiter.resize(len(self.partitions), self._total_partitions())
        self.metrics.partitions.labels(self.channel).set(len(self.partitions))
        self.metrics.rate_per_second.labels(self.channel).set(share.per_second if share else 0)
        return share
