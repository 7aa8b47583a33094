"""The webhooks receiver (``orchestrator connector webhooks``): providers' and apps' receipts, as events.

An aiohttp server (``connector_web_host:connector_web_port``, loopback by default: put a TLS reverse proxy
in front that forwards ``/twilio/`` and ``/push/``) with a Kafka producer; every receipt goes to the raw
events topic keyed by the action's customer key (:mod:`orchestrator.connectors.receipts`):

- ``POST /twilio/status/<token>`` — Twilio's status callback for an SMS whose ``StatusCallback`` was
  :meth:`~orchestrator.connectors.receipts.ReceiptLinks.sms_status_url` (the signed token names the action,
  the customer key, the campaign and the journey: Twilio's callback has no field of ours). Verified twice:
  ``X-Twilio-Signature`` (:func:`twilio_signature`, Twilio's documented algorithm, under
  ``twilio_auth_token``) — a missing or bad one is 403 and nothing is published — then the token (400).
  ``MessageStatus`` ``delivered`` publishes ``sms.delivered``; ``undelivered`` and ``failed`` publish
  ``sms.failed`` with Twilio's ``ErrorCode``; the other statuses (``queued``, ``sending``, ``sent``, ...)
  are no receipt: 204, nothing published. ``POST /twilio/status?action_id=…&customer_key=…`` (a callback
  URL naming the action in its query instead of a token) is taken too: Twilio's signature covers the
  query, so it cannot be forged either, but such receipts carry no campaign or journey;
- ``POST /push/<token>`` with ``{"event": "delivered"}`` or ``{"event": "opened"}`` — the app, with the URL
  :meth:`~orchestrator.connectors.receipts.ReceiptLinks.push_receipt_url` the push carried in its data:
  ``push.delivered`` / ``push.opened``. The signed token is the only credential: whoever holds the push
  can report on it, nobody can report on another.

Answers: 204 once the broker acknowledged the event (503 when it could not: Twilio and the app may try
again); request bodies over :data:`MAX_WEBHOOK_BODY_BYTES` 413; no access log (paths name customers).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import orjson
from aiohttp import web

from orchestrator.config import Settings, secret_list
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.receipts import (
    Publish,
    ReceiptLinks,
    ReceiptScope,
    publish_receipt,
    receipt_event,
    verify_receipt,
)
from orchestrator.connectors.web import ConnectorWeb
from orchestrator.contracts.events import CustomerEvent
from orchestrator.kafka.security import aiokafka_options

__all__ = [
    "MAX_WEBHOOK_BODY_BYTES",
    "TWILIO_RECEIPTS",
    "WebhooksReceiver",
    "twilio_signature",
    "twilio_signature_valid",
    "webhook_routes",
]

log = logging.getLogger("orchestrator.connector")

MAX_WEBHOOK_BODY_BYTES: Final = 16 * 1024
"""The largest request body the receiver reads (a Twilio status callback is under 2 KiB)."""
TWILIO_RECEIPTS: Final = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}
"""Twilio's ``MessageStatus`` -> the receipt it is (``sms.<kind>``); any other status is none."""
PUSH_RECEIPTS: Final = ("delivered", "opened")
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``X-Twilio-Signature`` of a request: the full URL (scheme to query string), then each POST
    parameter's name and value, sorted by name (and value), with no delimiters; HMAC-SHA1 of that under
    the auth token, base64 (Twilio's "Validating requests", as its libraries compute it)."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """``url`` as given, without its port and with the scheme's default port: Twilio signs the URL as it
    called it, and its libraries accept either form of the port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    variants = [url, urlunsplit(parts._replace(netloc=prefix + host))]
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{parts.port or default}")))
    return list(dict.fromkeys(variants))


def twilio_signature_valid(
    signature: str, url: str, params: Sequence[tuple[str, str]], auth_tokens: Sequence[str]
) -> bool:
    """Whether ``signature`` is Twilio's for ``url`` and ``params`` under one of ``auth_tokens`` (the
    current and, while rotating, the previous one); compared in constant time."""
    if not signature or not auth_tokens:
        return False
    given = signature.encode()
    found = False
    for token in auth_tokens:
        for candidate in _port_variants(url):
            found |= hmac.compare_digest(twilio_signature(token, candidate, params).encode(), given)
    return found


_HEADERS: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _answer(status: int, text: str = "") -> web.Response:
    if status == 204:
        return web.Response(status=204, headers=_HEADERS)
    return web.Response(status=status, text=text + "\n", headers=_HEADERS)


def webhook_routes(
    public_url: str,
    keys: Sequence[str],
    twilio_tokens: Sequence[str],
    publish: Publish,
    metrics: ConnectorMetrics,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[web.RouteDef]:
    """The receiver's routes (the module's docstring says what each does); Twilio's only with
    ``twilio_tokens``. ``public_url`` is how Twilio reaches this server: the URL it signs is
    ``public_url`` followed by the request's path and query as received."""
    base = public_url.rstrip("/")
    accepted, tokens = tuple(keys), tuple(twilio_tokens)

    async def deliver(
        endpoint: str, scope: ReceiptScope, kind: str, properties: dict[str, Any]
    ) -> web.Response:
        event = receipt_event(scope, kind, at=clock(), properties=properties)
        if await publish_receipt(publish, metrics, event, scope.customer_id):
            metrics.receipt_requests.labels(endpoint, "published").inc()
            return _answer(204)
        metrics.receipt_requests.labels(endpoint, "failed").inc()
        return _answer(503, "Not recorded: try again.")

    def refused(endpoint: str, why: str) -> web.Response:
        metrics.receipt_requests.labels(endpoint, "refused").inc()
        return _answer(400, why)

    async def twilio_status(request: web.Request) -> web.Response:
        endpoint = "twilio_status"
        form = await request.post()
        params = [(str(k), v) for k, v in form.items() if isinstance(v, str)]
        if len(params) != len(form):
            return refused(endpoint, "Expected a form of text fields.")
        url = base + request.raw_path
        if not twilio_signature_valid(request.headers.get("X-Twilio-Signature", ""), url, params, tokens):
            metrics.receipt_requests.labels(endpoint, "forbidden").inc()
            return _answer(403, "Bad signature.")
        token = request.match_info.get("token")
        if token is not None:
            scope = verify_receipt(token, accepted, "sms_status")
        else:  # the action named in the query: covered by Twilio's signature
            action_id, customer = request.query.get("action_id", ""), request.query.get("customer_key", "")
            scope = ReceiptScope("sms_status", action_id, customer, "sms") if action_id and customer else None
        if scope is None:
            return refused(endpoint, "This callback URL is not valid.")
        status = str(form.get("MessageStatus") or form.get("SmsStatus") or "")
        kind = TWILIO_RECEIPTS.get(status)
        if kind is None:
            metrics.receipt_requests.labels(endpoint, "ignored").inc()
            return _answer(204)
        properties: dict[str, Any] = {"provider": "twilio", "status": status}
        for name, field in (("MessageSid", "message_sid"), ("ErrorCode", "error_code")):
            value = form.get(name)
            if isinstance(value, str) and value:
                properties[field] = value
        return await deliver(endpoint, scope, kind, properties)

    async def push(request: web.Request) -> web.Response:
        endpoint = "push"
        scope = verify_receipt(request.match_info["token"], accepted, "push")
        if scope is None:
            return refused(endpoint, "This receipt URL is not valid.")
        try:
            body: Any = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return refused(endpoint, 'Expected JSON: {"event": "delivered"} or {"event": "opened"}.')
        kind = body.get("event") if isinstance(body, dict) else None
        if kind not in PUSH_RECEIPTS:
            return refused(endpoint, 'Expected {"event": "delivered"} or {"event": "opened"}.')
        return await deliver(endpoint, scope, str(kind), {})

    routes = [web.post("/push/{token}", push)]
    if tokens:
        routes += [
            web.post("/twilio/status/{token}", twilio_status),
            web.post("/twilio/status", twilio_status),
        ]
    return routes


class WebhooksReceiver:
    """Everything ``orchestrator connector webhooks`` runs; ``await run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: ConnectorMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        keys = secret_list(settings.unsubscribe_key)
        ReceiptLinks(settings.connector_public_url, keys)  # refuses a missing base URL or key, now
        self.settings = settings
        self.twilio = bool(secret_list(settings.twilio_auth_token))
        self.metrics = metrics or ConnectorMetrics()
        self.metrics.start_receipts("sms", ("delivered", "failed"), ("twilio_status",) if self.twilio else ())
        self.metrics.start_receipts("push", PUSH_RECEIPTS, ("push",))
        self._producer: Any = None
        self.web = ConnectorWeb(
            settings.connector_web_host,
            settings.connector_web_port,
            self.metrics,
            ready=lambda: self._producer is not None,
            routes=webhook_routes(
                settings.connector_public_url,
                keys,
                secret_list(settings.twilio_auth_token),
                self._publish,
                self.metrics,
                clock=clock,
            ),
            max_body=MAX_WEBHOOK_BODY_BYTES,
        )

    @property
    def endpoints(self) -> list[str]:
        return (["/twilio/status/"] if self.twilio else []) + ["/push/"]

    async def _publish(self, event: CustomerEvent, key: str) -> None:
        if self._producer is None:
            raise RuntimeError("the receiver is stopping")
        await self._producer.send_and_wait(self.settings.topics.raw_events, event.to_json(), key=key.encode())

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(**aiokafka_options(self.settings), acks="all", enable_idempotence=True)
        try:
            await producer.start()  # (fails at once when Kafka cannot be reached)
            self._producer = producer
            await self.web.start()
            await stop.wait()
        finally:
            try:
                await self.web.close()  # first: a request in flight still has the producer
            finally:
                self._producer = None
                await producer.stop()
