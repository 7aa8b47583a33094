"""The sandbox connector: a fake provider for every channel, closing the feedback loop for demos and tests.

It consumes the three action topics (one consumer group), drops actions whose ``action_id`` it has seen
(bounded memory: the last :data:`REMEMBERED` ids), takes a token of the channel's rate limit, and
publishes ``<channel>.sent`` and ``<channel>.delivered`` events for each action to the raw events topic,
keyed by the customer, carrying ``action_id``, ``campaign`` and ``journey``. They name their customer by
the action's canonical customer key (``identifiers: {"customer_key": ...}``), not as a ``customer_id``:
a receipt resolves to the action's customer without changing the identity graph, so an anonymous
customer keyed ``email:ann@x`` stays anonymous and merges when it signs in (docs/identity.md,
"Receipts"). Optionally it adds scripted engagement: opens and clicks (email: ``opened``/``clicked``;
sms: ``clicked``; push: ``opened``), chosen deterministically from the action id by
``open_rate``/``click_rate`` or named per customer or campaign in a script file.

Everything it produces is deterministic in the action: event ids are derived from the action id
(``sbx-<action_id>-sent``), times from the action's logical ``created_at`` (sent at +0, delivered at +1 s,
opened at +60 s, clicked at +120 s), so a re-run or a redelivered action yields the same events, which
the customer's dedupe window drops.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from orchestrator.config import Settings
from orchestrator.connectors.ratelimit import ChannelLimiter
from orchestrator.contracts.actions import CHANNELS, ChannelAction
from orchestrator.contracts.events import CUSTOMER_KEY, CustomerEvent
from orchestrator.exceptions import ConfigError
from orchestrator.kafka.client_log import client_log
from orchestrator.kafka.security import librdkafka_options

__all__ = ["REMEMBERED", "SOURCE", "SandboxConnector", "SandboxScript", "SeenIds", "engagement_events"]

log = logging.getLogger("orchestrator.connector.sandbox")

REMEMBERED = 100_000
"""Action ids remembered for dropping duplicates (the oldest are forgotten first)."""
SOURCE = "sandbox"
_ENGAGEMENT = {"email": ("opened", "clicked"), "sms": ("clicked",), "push": ("opened",)}
_OFFSETS_S = {"sent": 0, "delivered": 1, "opened": 60, "clicked": 120}


class SeenIds:
    """A bounded set of ids: remembers the last ``limit`` added."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> bool:
        """True when ``key`` is new (and now remembered); False for a duplicate."""
        if key in self._ids:
            self._ids.move_to_end(key)
            return False
        self._ids[key] = None
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


def _fraction(action_id: str, what: str) -> float:
    digest = hashlib.blake2b(f"{action_id}\x1f{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class SandboxScript:
    """Which scripted engagement to add: rates (deterministic by action id) and named customers/campaigns."""

    open_rate: float = 0.0
    click_rate: float = 0.0
    customers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Customer key -> engagement kinds (``opened``, ``clicked``) for every action they get."""
    campaigns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Campaign -> engagement kinds for every action of it."""

    @classmethod
    def from_file(cls, path: Path, *, open_rate: float = 0.0, click_rate: float = 0.0) -> SandboxScript:
        """A JSON script: ``{"open_rate": 0.5, "click_rate": 0.1, "customers": {"cust-ada": ["opened"]},
        "campaigns": {"welcome": ["opened", "clicked"]}}`` (every key optional)."""
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the sandbox script: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a sandbox script is a JSON object")

        def kinds(section: str) -> dict[str, tuple[str, ...]]:
            raw = data.get(section, {})
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}: {section}: expected an object of name -> list of kinds")
            out = {}
            for name, items in raw.items():
                bad = [k for k in items if k not in ("opened", "clicked")]
                if bad:
                    raise ConfigError(f"{path}: {section}.{name}: unknown kind(s) {bad}; use opened, clicked")
                out[str(name)] = tuple(items)
            return out

        return cls(
            open_rate=float(data.get("open_rate", open_rate)),
            click_rate=float(data.get("click_rate", click_rate)),
            customers=kinds("customers"),
            campaigns=kinds("campaigns"),
        )

    def engagement(self, action: ChannelAction) -> list[str]:
        """The engagement kinds this action gets, in time order, limited to what its channel has."""
        wanted = set(self.customers.get(action.customer_id, ()))
        wanted |= set(self.campaigns.get(action.campaign or "", ()))
        if _fraction(action.action_id, "open") < self.open_rate:
            wanted.add("opened")
        if _fraction(action.action_id, "click") < self.click_rate:
            wanted.add("clicked")
        return [k for k in _ENGAGEMENT[action.channel] if k in wanted]


def engagement_events(action: ChannelAction, script: SandboxScript | None = None) -> list[CustomerEvent]:
    """The events a provider would report for ``action``: sent, delivered, then scripted engagement."""
    kinds = ["sent", "delivered", *(script.engagement(action) if script else [])]
    base = action.not_before or action.created_at
    return [
        CustomerEvent(
            event_id=f"sbx-{action.action_id}-{kind}",
            type=f"{action.channel}.{kind}",
            identifiers={CUSTOMER_KEY: action.customer_id},  # names the customer, claims no identity
            occurred_at=base + timedelta(seconds=_OFFSETS_S[kind]),
            source=SOURCE,
            properties={"template_id": action.template_id, "recipient": action.recipient},
            action_id=action.action_id,
            campaign=action.campaign,
            journey=action.journey_id,
        )
        for kind in kinds
    ]


@dataclass
class SandboxStats:
    received: int = 0
    duplicates: int = 0
    invalid: int = 0
    delivered: int = 0
    events: int = 0


class SandboxConnector:
    """Consumes the action topics and produces the provider's events back to the raw events topic."""

    def __init__(
        self,
        settings: Settings,
        *,
        limiter: ChannelLimiter | None = None,
        script: SandboxScript | None = None,
        group_id: str | None = None,
        remembered: int = REMEMBERED,
    ) -> None:
        self.settings = settings
        self.limiter = limiter or ChannelLimiter({})
        self.script = script
        self.group_id = group_id or f"{settings.app_id}-sandbox-connector"
        self.seen = SeenIds(remembered)
        self.stats = SandboxStats()
        self.topics = [settings.topics.action_topic(ch) for ch in CHANNELS]

    def handle(self, raw: bytes | None) -> list[CustomerEvent]:
        """One action message -> the events to publish (none for a duplicate or an invalid message)."""
        self.stats.received += 1
        try:
            action = ChannelAction.model_validate(orjson.loads(raw or b"null"))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            self.stats.invalid += 1
            log.warning("skipping an invalid action: %s", str(exc).splitlines()[0])
            return []
        if not self.seen.add(action.action_id):
            self.stats.duplicates += 1
            return []
        self.limiter.take(action.channel)
        events = engagement_events(action, self.script)
        self.stats.delivered += 1
        self.stats.events += len(events)
        return events

    def run(self, stop: threading.Event | None = None, *, poll_s: float = 0.5) -> SandboxStats:
        """Consume until ``stop`` is set; a batch is published and flushed before its offsets commit."""
        from confluent_kafka import Consumer, Producer

        opts = librdkafka_options(self.settings)
        consumer = Consumer(
            {
                **opts,
                "group.id": self.group_id,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        producer = Producer(
            {**opts, "acks": "all", "enable.idempotence": True, "linger.ms": 5, "logger": client_log()}
        )
        stop = stop or threading.Event()
        raw_topic = self.settings.topics.raw_events
        try:
            consumer.subscribe(self.topics)
            while not stop.is_set():
                batch = consumer.consume(num_messages=500, timeout=poll_s)
                if not batch:
                    continue
                for msg in batch:
                    if msg.error() is not None:
                        log.warning("consumer error: %s", msg.error())
                        continue
                    for event in self.handle(msg.value()):
                        key = event.identifiers.customer_key or ""
                        producer.produce(raw_topic, key=key.encode(), value=event.to_json())
                        producer.poll(0)
                if producer.flush(30):
                    raise ConfigError(f"the sandbox connector could not publish to {raw_topic}")
                try:
                    consumer.commit(asynchronous=False)
                except Exception as exc:  # e.g. nothing to commit when the batch held only errors
                    log.warning("commit failed: %s", exc)
        finally:
            producer.flush(10)
            consumer.close()
        return self.stats

    def describe(self) -> dict[str, Any]:
        return {"group": self.group_id, "topics": self.topics, **self.stats.__dict__}
