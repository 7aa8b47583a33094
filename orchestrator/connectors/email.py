"""The email connector: the connector runtime on the email action topic, the SMTP provider, and the HTTP
server with the unsubscribe endpoint, the open pixel and click redirects, and the metrics (``orchestrator
connector email``; docs/connectors.md). It reports ``email.sent`` when the SMTP server accepted a message,
``email.opened`` and ``email.clicked`` from its endpoints (:mod:`orchestrator.connectors.receipts`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from typing import Protocol

from orchestrator.config import Settings, secret_list
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.receipts import ReceiptLinks, email_receipt_routes, sent_event
from orchestrator.connectors.render import EmailRenderer, TemplateEmailRenderer
from orchestrator.connectors.runtime import ConnectorRuntime, ConnectorStats
from orchestrator.connectors.smtp import SmtpConfig, SmtpProvider
from orchestrator.connectors.unsubscribe import UnsubscribeLinks, unsubscribe_routes
from orchestrator.connectors.web import ConnectorWeb
from orchestrator.contracts.events import CustomerEvent
from orchestrator.core.deployments import DeploymentBook
from orchestrator.core.journey import JourneyRegistry
from orchestrator.core.policy.model import RateLimit
from orchestrator.core.template import TemplateRegistry
from orchestrator.exceptions import ConfigError

__all__ = ["TEMPLATE_REFRESH_S", "EmailConnector", "deployed_templates", "follow_templates", "read_templates"]

log = logging.getLogger("orchestrator.connector")

TEMPLATE_REFRESH_S = 30.0
"""How often the connector reads the templates deployed on the journeys topic again."""


def deployed_templates(settings: Settings) -> TemplateRegistry:
    """The templates deployed on the journeys topic, as the workers read them (blocking: a thread)."""
    from orchestrator.kafka.deploy import read_deployment_records

    book = DeploymentBook(JourneyRegistry(history_window_ms=settings.history_window_days * 86_400_000))
    for key, value, where in read_deployment_records(settings):
        book.apply(key, value, where=where)
    return book.templates


class TemplateHolder(Protocol):
    """A renderer on the deployed templates (:class:`TemplateEmailRenderer`, the SMS and push ones)."""

    registry: TemplateRegistry


async def read_templates(holder: TemplateHolder, settings: Settings) -> None:
    """The deployed templates, read again into ``holder`` (a failure keeps the ones read before, and says
    so)."""
    loop = asyncio.get_running_loop()
    try:
        holder.registry = await loop.run_in_executor(None, deployed_templates, settings)
    except Exception as exc:
        log.warning("reading the deployed templates failed (the ones read before stay): %s", exc)


async def follow_templates(holder: TemplateHolder, settings: Settings, stop: asyncio.Event) -> None:
    """Read the deployed templates again every :data:`TEMPLATE_REFRESH_S` until ``stop``."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=TEMPLATE_REFRESH_S)
        except TimeoutError:
            await read_templates(holder, settings)


class EmailConnector:
    """Everything ``orchestrator connector email`` runs; ``await run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        *,
        limit: RateLimit | None = None,
        group_id: str | None = None,
        renderer: EmailRenderer | None = None,
        metrics: ConnectorMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not settings.email_from:
            raise ConfigError("email_from is not set: the From address of emails (ORCH_EMAIL_FROM, --from)")
        if not settings.connector_public_url:
            raise ConfigError(
                "connector_public_url is not set: the base URL the unsubscribe links of emails point to "
                "(ORCH_CONNECTOR_PUBLIC_URL, --public-url)"
            )
        keys = secret_list(settings.unsubscribe_key)
        self.settings = settings
        self.links = UnsubscribeLinks(settings.connector_public_url, keys)
        self.metrics = metrics or ConnectorMetrics()
        self.templates: TemplateEmailRenderer | None = None
        """The deployed templates' renderer (None: a renderer was given)."""
        if renderer is None:
            renderer = self.templates = TemplateEmailRenderer()
        self.receipt_links = ReceiptLinks(settings.connector_public_url, keys)
        self.provider = SmtpProvider(
            SmtpConfig.from_settings(settings),
            self.links,
            renderer=renderer,
            tracking=self.receipt_links if settings.email_tracking else None,
        )
        self.runtime = ConnectorRuntime(
            settings,
            self.provider,
            limit=limit,
            group_id=group_id,
            metrics=self.metrics,
            rng=rng,
            accepted=lambda action: [sent_event(action, datetime.now(UTC))],
        )
        self.web = ConnectorWeb(
            settings.connector_web_host,
            settings.connector_web_port,
            self.metrics,
            ready=lambda: self.runtime.assigned,
            routes=[
                *unsubscribe_routes(keys, self._publish, self.metrics),
                # (served with tracking off too: the emails already sent keep their images and links)
                *email_receipt_routes(keys, self._publish, self.metrics),
            ],
        )

    @property
    def stats(self) -> ConnectorStats:
        return self.runtime.stats

    async def _publish(self, event: CustomerEvent, key: str) -> None:
        """An unsubscribe or a receipt to the raw events topic, keyed by the customer, acknowledged by the
        broker."""
        await asyncio.wait_for(
            self.runtime.producer.send_and_wait(
                self.settings.topics.raw_events, event.to_json(), key=key.encode()
            ),
            timeout=30,
        )

    async def run(self, stop: asyncio.Event) -> ConnectorStats:
        follow: asyncio.Task[None] | None = None
        try:
            await self.runtime.start()  # (fails at once when Kafka cannot be reached)
            if self.templates is not None:
                await read_templates(self.templates, self.settings)  # (before the first action)
                follow = asyncio.create_task(follow_templates(self.templates, self.settings, stop))
            await self.web.start()
            return await self.runtime.run(stop)
        finally:
            if follow is not None:
                follow.cancel()
            try:
                await self.web.close()  # first: an unsubscribe in flight still has the producer
            finally:
                await self.runtime.close()
