"""The email connector: the connector runtime on the email action topic, the SMTP provider, and the HTTP
server with the unsubscribe endpoint and the metrics (``orchestrator connector email``; docs/connectors.md).
"""

from __future__ import annotations

import asyncio
import random

from orchestrator.config import Settings, secret_list
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.render import EmailRenderer, render_email
from orchestrator.connectors.runtime import ConnectorRuntime, ConnectorStats
from orchestrator.connectors.smtp import SmtpConfig, SmtpProvider
from orchestrator.connectors.unsubscribe import UnsubscribeLinks, unsubscribe_routes
from orchestrator.connectors.web import ConnectorWeb
from orchestrator.contracts.events import CustomerEvent
from orchestrator.core.policy.model import RateLimit
from orchestrator.exceptions import ConfigError

__all__ = ["EmailConnector"]


class EmailConnector:
    """Everything ``orchestrator connector email`` runs; ``await run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        *,
        limit: RateLimit | None = None,
        group_id: str | None = None,
        renderer: EmailRenderer = render_email,
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
        self.provider = SmtpProvider(SmtpConfig.from_settings(settings), self.links, renderer=renderer)
        self.runtime = ConnectorRuntime(
            settings, self.provider, limit=limit, group_id=group_id, metrics=self.metrics, rng=rng
        )
        self.web = ConnectorWeb(
            settings.connector_web_host,
            settings.connector_web_port,
            self.metrics,
            ready=lambda: self.runtime.assigned,
            routes=unsubscribe_routes(keys, self._publish, self.metrics),
        )

    @property
    def stats(self) -> ConnectorStats:
        return self.runtime.stats

    async def _publish(self, event: CustomerEvent, key: str) -> None:
        """An unsubscribe to the raw events topic, keyed by the customer, acknowledged by the broker."""
        await asyncio.wait_for(
            self.runtime.producer.send_and_wait(
                self.settings.topics.raw_events, event.to_json(), key=key.encode()
            ),
            timeout=30,
        )

    async def run(self, stop: asyncio.Event) -> ConnectorStats:
        try:
            await self.runtime.start()
            await self.web.start()
            return await self.runtime.run(stop)
        finally:
            try:
                await self.web.close()  # first: an unsubscribe in flight still has the producer
            finally:
                await self.runtime.close()
