"""The Faust application: topics, tables and agents of one worker.

Thin by design: every decision is made by plain functions (:mod:`.ingest`, :mod:`.customers`, the
pure core); the agents here only move bytes between Kafka and those functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT

from orchestrator.config import Settings
from orchestrator.contracts import ResolvedEvent
from orchestrator.runtime.customers import apply_resolved, decode_record
from orchestrator.runtime.ingest import route_raw

__all__ = ["WorkerApp", "build_app"]

log = logging.getLogger("orchestrator.worker")

CUSTOMERS_TABLE = "customers"


@dataclass
class WorkerApp:
    app: faust.App
    settings: Settings
    customers: Any

    @property
    def changelog_topics(self) -> list[str]:
        return [f"{self.settings.app_id}-{CUSTOMERS_TABLE}-changelog"]


def _broker_credentials(settings: Settings) -> Any:
    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
        )
    return None


def build_app(settings: Settings) -> WorkerApp:
    """A Faust app wired to ``settings``; nothing connects until it runs."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{s.strip()}" for s in settings.bootstrap_servers.split(",")],
        broker_credentials=_broker_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
    )
    t = settings.topics
    raw_topic = app.topic(t.raw_events, key_type=bytes, value_type=bytes)
    resolved_topic = app.topic(t.resolved_events, key_type=bytes, value_type=bytes)
    dead_letter_topic = app.topic(t.dead_letter, key_type=bytes, value_type=bytes)
    customers = app.Table(CUSTOMERS_TABLE, key_type=str, value_type=bytes, partitions=settings.partitions)
    out_topics = {t.resolved_events: resolved_topic, t.dead_letter: dead_letter_topic}
    dedupe_ms = settings.dedupe_window_hours * 3600 * 1000

    @app.agent(raw_topic)
    async def resolve(stream: Any) -> None:
        event: EventT[Any]
        async for event in stream.events():
            msg = event.message
            routed = route_raw(
                msg.value,
                msg.key,
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                topics=t,
                at=datetime.now(UTC),
            )
            if routed.reason != "resolved":
                log.warning(
                    "dead-lettered %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, routed.reason
                )
            await out_topics[routed.topic].send(key=routed.key, value=routed.value)

    @app.agent(resolved_topic)
    async def apply_events(stream: Any) -> None:
        async for value in stream:
            resolved = ResolvedEvent.model_validate_json(value)
            ckey = resolved.customer_key
            applied = apply_resolved(customers.get(ckey), resolved, dedupe_ms)
            if applied.duplicate:
                log.info("duplicate event_id %s for a customer ignored", resolved.event.event_id)
                continue
            customers[ckey] = applied.record

    @app.page("/customers/{customer_key}/")
    async def customer_view(web: Any, request: Any, customer_key: str) -> Any:
        raw = customers.get(customer_key)
        if raw is None:
            return web.json({"error": f"no customer {customer_key!r} on this worker"}, status=404)
        return web.json(decode_record(raw, customer_key))

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        ready = recovered and not app.rebalancing and not app.in_recovery
        body = {"ready": ready, "recovered": recovered, "rebalancing": bool(app.rebalancing)}
        return web.json(body, status=200 if ready else 503)

    return WorkerApp(app=app, settings=settings, customers=customers)
