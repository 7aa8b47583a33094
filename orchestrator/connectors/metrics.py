"""Prometheus metrics of one connector process, on its own registry, served at ``/metrics`` on the
connector's HTTP port (``connector_web_host:connector_web_port``, loopback by default).

Labels stay bounded: ``channel`` is one of email, sms, push; ``reason`` one of the dead-letter reasons of
actions (:data:`~orchestrator.contracts.records.ACTION_DEAD_LETTER_REASONS`); ``kind`` and ``outcome``
come from code. No customer, address or action id is ever a label. docs/metrics.md lists them all.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

from orchestrator.contracts.records import ACTION_DEAD_LETTER_REASONS
from orchestrator.runtime.metrics import exported_names

__all__ = [
    "RECEIPT_ENDPOINTS",
    "RECEIPT_OUTCOMES",
    "RECEIPT_REQUEST_OUTCOMES",
    "RETRY_KINDS",
    "SEND_BUCKETS",
    "UNSUBSCRIBE_OUTCOMES",
    "ConnectorMetrics",
]

P: Final = "orchestrator_connector"
RETRY_KINDS: Final = ("message", "provider")
"""A retry after the provider refused the message for now (``message``: counts toward the action's
attempts) or could not be reached or refused us (``provider``: does not)."""
UNSUBSCRIBE_OUTCOMES: Final = ("done", "refused", "failed")
"""An unsubscribe request: the event published, refused (a forged or tampered link: 400), or failed
(the event could not be published: 503, the client tries again)."""
RECEIPT_OUTCOMES: Final = ("published", "failed")
"""A receipt event: acknowledged by the broker, or not (lost: logged)."""
RECEIPT_ENDPOINTS: Final = ("open", "click", "twilio_status", "push")
"""The receipt endpoints: the email's pixel and links, Twilio's status callbacks, the app's push receipts."""
RECEIPT_REQUEST_OUTCOMES: Final = ("published", "ignored", "refused", "forbidden", "failed")
"""A request to a receipt endpoint: its event published; nothing to publish (a HEAD, a status that is no
receipt); refused (a forged, tampered or malformed token or body: 400); forbidden (a bad provider
signature: 403); failed (the event could not be published)."""
SEND_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DELAY_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)


class ConnectorMetrics:
    """Every metric of a connector process (one or more channels)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        if process_metrics:
            ProcessCollector(registry=r)
        self.sent = Counter(f"{P}_sent", "Actions the provider accepted.", ["channel"], registry=r)
        self.failed = Counter(
            f"{P}_failed", "Actions dead-lettered, by reason.", ["channel", "reason"], registry=r
        )
        self.retries = Counter(
            f"{P}_retries",
            "Provider calls tried again after a refusal for now.",
            ["channel", "kind"],
            registry=r,
        )
        self.duplicates = Counter(
            f"{P}_duplicates",
            "Actions skipped: their mark says sent or dead already.",
            ["channel"],
            registry=r,
        )
        self.send_seconds = Histogram(
            f"{P}_send_seconds",
            "Duration of a provider call that was accepted.",
            ["channel"],
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.delay_seconds = Histogram(
            f"{P}_delay_seconds",
            "From an action's due time (written to its topic, or not_before) to the provider's acceptance.",
            ["channel"],
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.rate_limited_seconds = Counter(
            f"{P}_rate_limited_seconds",
            "Time spent waiting for a token of the channel's rate limit.",
            ["channel"],
            registry=r,
        )
        self.unsubscribes = Counter(
            f"{P}_unsubscribes",
            "Unsubscribe requests (one-click or the page).",
            ["channel", "outcome"],
            registry=r,
        )
        self.receipts = Counter(
            f"{P}_receipts",
            "Receipt events (sent, delivered, opened, clicked, failed) published to the raw topic, or not.",
            ["channel", "type", "outcome"],
            registry=r,
        )
        self.receipt_requests = Counter(
            f"{P}_receipt_requests",
            "Requests to the receipt endpoints (pixel, links, provider callbacks, push receipts).",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.partitions = Gauge(
            f"{P}_partitions",
            "Partitions of the channel's action topic this replica owns.",
            ["channel"],
            registry=r,
        )
        self.waiting = Gauge(
            f"{P}_waiting",
            "Actions read and not done yet (waiting for not_before, a token, a retry or the provider).",
            ["channel"],
            registry=r,
        )
        self.rate_per_second = Gauge(
            f"{P}_rate_per_second",
            "This replica's share of the channel's rate limit (0: no limit).",
            ["channel"],
            registry=r,
        )

    def start_channel(self, channel: str) -> None:
        """Create the channel's series at 0, so that increase() sees each counter's first increment."""
        self.sent.labels(channel)
        self.duplicates.labels(channel)
        self.rate_limited_seconds.labels(channel)
        self.send_seconds.labels(channel)
        self.delay_seconds.labels(channel)
        for reason in ACTION_DEAD_LETTER_REASONS:
            self.failed.labels(channel, reason)
        for kind in RETRY_KINDS:
            self.retries.labels(channel, kind)
        if channel == "email":
            for outcome in UNSUBSCRIBE_OUTCOMES:
                self.unsubscribes.labels(channel, outcome)
            self.start_receipts("email", ("sent", "opened", "clicked"), ("open", "click"))
        for gauge in (self.partitions, self.waiting, self.rate_per_second):
            gauge.labels(channel).set(0)

    def start_receipts(self, channel: str, kinds: tuple[str, ...], endpoints: tuple[str, ...]) -> None:
        """Create the series of a channel's receipts and of the endpoints that take them, at 0."""
        for kind in kinds:
            for outcome in RECEIPT_OUTCOMES:
                self.receipts.labels(channel, kind, outcome)
        for endpoint in endpoints:
            for outcome in RECEIPT_REQUEST_OUTCOMES:
                self.receipt_requests.labels(endpoint, outcome)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def names(self) -> set[str]:
        """Every sample name this connector can export."""
        return exported_names(self.registry)
