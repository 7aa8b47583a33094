"""The SMS and push connectors: the connector runtime on the sms or push action topic with the Twilio or
FCM provider, the deployed templates (read from the journeys topic at the start and every
:data:`~orchestrator.connectors.email.TEMPLATE_REFRESH_S`), and the HTTP server with the metrics
(``orchestrator connector sms`` / ``push``; docs/connectors.md).
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from orchestrator.config import Settings, secret_list
from orchestrator.connectors.email import follow_templates, read_templates
from orchestrator.connectors.fcm import FcmConfig, FcmProvider
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.mobile_render import (
    PushRenderer,
    SmsRenderer,
    TemplatePushRenderer,
    TemplateSmsRenderer,
)
from orchestrator.connectors.receipts import ReceiptLinks, sent_event
from orchestrator.connectors.runtime import ConnectorRuntime, ConnectorStats, Provider
from orchestrator.connectors.twilio import TwilioConfig, TwilioProvider
from orchestrator.connectors.web import ConnectorWeb
from orchestrator.core.policy.model import RateLimit

__all__ = ["PushConnector", "SmsConnector"]


def _receipt_links(settings: Settings) -> ReceiptLinks | None:
    """The receipts' signed links (``orchestrator connector webhooks`` answers them) when the public URL
    and the key are set; None: the messages carry none."""
    if not settings.connector_public_url or not secret_list(settings.unsubscribe_key):
        return None
    return ReceiptLinks.from_settings(settings)


class _TemplatedConnector:
    """A provider on the runtime, the templates it renders with kept up to date, and the HTTP server."""

    def __init__(
        self,
        settings: Settings,
        provider: Provider,
        templates: TemplateSmsRenderer | TemplatePushRenderer | None,
        *,
        limit: RateLimit | None,
        group_id: str | None,
        metrics: ConnectorMetrics | None,
        rng: random.Random | None,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.templates = templates
        """The deployed templates' renderer (None: a renderer was given)."""
        self.metrics = metrics or ConnectorMetrics()
        self.runtime = ConnectorRuntime(
            settings,
            provider,
            limit=limit,
            group_id=group_id,
            metrics=self.metrics,
            rng=rng,
            accepted=lambda action: [sent_event(action, datetime.now(UTC))],  # (sms.sent / push.sent)
        )
        self.web = ConnectorWeb(
            settings.connector_web_host,
            settings.connector_web_port,
            self.metrics,
            ready=lambda: self.runtime.assigned,
        )

    @property
    def stats(self) -> ConnectorStats:
        return self.runtime.stats

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
                await self.web.close()
            finally:
                await self.runtime.close()


class SmsConnector(_TemplatedConnector):
    """Everything ``orchestrator connector sms`` runs: SMS through Twilio; ``await run(stop)``."""

    def __init__(
        self,
        settings: Settings,
        *,
        limit: RateLimit | None = None,
        group_id: str | None = None,
        renderer: SmsRenderer | None = None,
        metrics: ConnectorMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        config = TwilioConfig.from_settings(settings)  # refuses a configuration that cannot send
        templates = None
        if renderer is None:
            renderer = templates = TemplateSmsRenderer()
        links = _receipt_links(settings)
        self.twilio = TwilioProvider(
            config, renderer=renderer, status_url=None if links is None else links.sms_status_url
        )
        super().__init__(
            settings, self.twilio, templates, limit=limit, group_id=group_id, metrics=metrics, rng=rng
        )


class PushConnector(_TemplatedConnector):
    """Everything ``orchestrator connector push`` runs: push notifications through FCM HTTP v1."""

    def __init__(
        self,
        settings: Settings,
        *,
        limit: RateLimit | None = None,
        group_id: str | None = None,
        renderer: PushRenderer | None = None,
        metrics: ConnectorMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        config = FcmConfig.from_settings(settings)  # refuses a configuration that cannot send
        templates = None
        if renderer is None:
            renderer = templates = TemplatePushRenderer()
        links = _receipt_links(settings)
        self.fcm = FcmProvider(
            config, renderer=renderer, receipt_url=None if links is None else links.push_receipt_url
        )
        super().__init__(
            settings, self.fcm, templates, limit=limit, group_id=group_id, metrics=metrics, rng=rng
        )
