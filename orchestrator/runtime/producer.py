"""A Faust producer whose ``flush`` waits until every buffered message is on the broker.

Input offsets are committed only after ``producer.flush()`` (the worker's own commits,
:mod:`.offsets`, and Faust's), so that what a record produced is durable before the record counts as
processed. Table writes (the changelogs of our state) do not
go to the Kafka client at once: they wait in Faust's ``ProducerBuffer``, drained by a background
task. And ``ProducerBuffer.flush`` is not a flush: it waits at most 100 ms for the next message to
go out and returns when none did (faust-streaming 0.15.3, ``flush_atmost``), and it does not see
the message its task is handing over. On a busy event loop, or while the client waits for a full
batch to drain, it returns with changelog records still in the buffer; the offsets are committed,
and a kill -9 then loses state whose input is never read again (measured: 30 records of 20 kB
buffered with the loop busy 30 ms per turn, ``flush()`` returned with 23 still buffered).

:class:`DurableProducer` keeps every message given to ``send_soon`` (the buffered path) until the
broker has acknowledged it, and its ``flush`` awaits all of them after Faust's own flush. A send
that fails, or one not acknowledged within :data:`FLUSH_TIMEOUT_S`, makes ``flush`` raise
:class:`~orchestrator.exceptions.DeliveryError`, so the offsets are not committed and the worker
stops (the input is read again after the restart).
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.types import FutureMessage, ProducerT

from orchestrator.exceptions import DeliveryError

__all__ = ["FLUSH_TIMEOUT_S", "DurableApp", "DurableProducer"]

FLUSH_TIMEOUT_S = 120.0
"""How long ``flush`` waits for the broker to acknowledge what is buffered before it gives up."""


class DurableProducer(AIOKafkaProducer):
    """Faust's aiokafka producer with a ``flush`` that leaves nothing unacknowledged."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._unacked: set[FutureMessage] = set()
        self._failed: str | None = None

    def send_soon(self, fut: FutureMessage) -> None:
        self._unacked.add(fut)
        fut.add_done_callback(self._settled)
        super().send_soon(fut)

    def _settled(self, fut: Any) -> None:
        self._unacked.discard(fut)
        if self._failed is None:
            if fut.cancelled():
                self._failed = "a buffered message (table changelog record) was cancelled"
            elif fut.exception() is not None:
                topic = fut.message.channel.get_topic_name()
                self._failed = f"a buffered message to {topic!r} failed: {fut.exception()!r}"

    @property
    def unacknowledged(self) -> int:
        """Messages given to ``send_soon`` that the broker has not acknowledged yet."""
        return len(self._unacked)

    async def flush(self) -> None:
        await super().flush()
        pending = list(self._unacked)
        if pending:
            _, waiting = await asyncio.wait(pending, timeout=FLUSH_TIMEOUT_S)
            if waiting:
                raise DeliveryError(
                    f"{len(waiting)} buffered messages (table changelog records) not acknowledged by "
                    f"the broker within {FLUSH_TIMEOUT_S:.0f} s; not committing offsets"
                )
        if self._failed is not None:
            raise DeliveryError(f"{self._failed}; not committing offsets")


class DurableApp(faust.App):
    """A Faust app whose producer is a :class:`DurableProducer`."""

    def _new_producer(self) -> ProducerT:
        producer: ProducerT = DurableProducer(self.transport, loop=self.loop, beacon=self.beacon)
        return producer
