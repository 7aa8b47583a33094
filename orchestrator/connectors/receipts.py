"""Receipts back as events: what happened to an action after its provider took it, on the raw topic.

**Which, and from where** (docs/connectors.md, "Receipts"):

| event | made by |
|---|---|
| ``email.sent`` | the email connector, when the SMTP server accepted the message (:func:`sent_event`) |
| ``email.opened`` | ``GET /o/<token>``: the 1x1 image at the end of the email's HTML part |
| ``email.clicked`` | ``GET /c/<token>``: a link of the HTML part, rewritten; 302 to the link's target |
| ``sms.delivered`` / ``sms.failed`` | ``POST /twilio/status/<token>``: Twilio's status callback (webhooks) |
| ``push.delivered`` / ``push.opened`` | ``POST /push/<token>``: the app, with the URL the push carried |

**The tokens** are signed like unsubscribe links (:mod:`orchestrator.connectors.signing`: HMAC-SHA256
under ``unsubscribe_key``, ``new,old`` while it rotates), under a domain of their own (an unsubscribe
token is never a receipt token, nor the reverse) and a version per kind (``o1`` open, ``c1`` click,
``s1`` SMS status, ``p1`` push: a pixel's token does not open a redirect). The signature is truncated to
128 bits to keep links short. The payload names the action, the customer key, the channel, the campaign
and the journey — and for a click the target URL, so the redirect goes only where the signed link said:
never an open redirect. Signed, not encrypted: the recipient can read them.

**The events** name the customer by the action's key (``identifiers.customer_key``: a receipt changes
nothing in the identity graph, docs/identity.md) and carry ``action_id``, ``campaign`` and ``journey``;
their time is the wall clock when the request (or the SMTP answer) came. **Duplicates**: event ids are
deterministic, so the customer's dedupe (``dedupe_window_hours``) drops a second copy: sent, delivered
and failed once per action; opens and clicks once per action and UTC day (a click: per link), so a mail
client fetching the image at every display counts one open a day.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit

from aiohttp import web

from orchestrator.config import Settings, secret_list
from orchestrator.connectors import signing
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.unsubscribe import MIN_KEY_CHARS, customer_identifiers
from orchestrator.contracts.actions import Channel, ChannelAction
from orchestrator.contracts.events import CustomerEvent
from orchestrator.exceptions import ConfigError

__all__ = [
    "MAX_RECEIPT_TOKEN_CHARS",
    "MAX_TARGET_CHARS",
    "PIXEL_GIF",
    "RECEIPT_PUBLISH_TIMEOUT_S",
    "Publish",
    "ReceiptKind",
    "ReceiptLinks",
    "ReceiptScope",
    "email_receipt_routes",
    "push_receipt_url",
    "receipt_event",
    "receipt_event_id",
    "sent_event",
    "sign_receipt",
    "sms_status_url",
    "trackable",
    "verify_receipt",
]

log = logging.getLogger("orchestrator.connector")

ReceiptKind = Literal["open", "click", "sms_status", "push"]
"""What a receipt token is for: the email's open pixel, one of its links, an SMS status callback, a
push receipt."""

_VERSIONS: Final[dict[str, str]] = {"open": "o1", "click": "c1", "sms_status": "s1", "push": "p1"}
_CHANNELS: Final[dict[str, Channel]] = {
    "open": "email", "click": "email", "sms_status": "sms", "push": "push",
}  # fmt: skip
_PATHS: Final[dict[str, str]] = {"open": "o", "click": "c", "sms_status": "twilio/status", "push": "push"}
_DOMAIN: Final = b"orchestrator receipt\x1f"
_SIGNATURE_BYTES: Final = 16
MAX_RECEIPT_TOKEN_CHARS: Final = 4096
"""A longer token is refused before anything is decoded."""
MAX_TARGET_CHARS: Final = 2048
"""A longer link is left as it is (not tracked): its token would make a URL some clients cut."""
RECEIPT_PUBLISH_TIMEOUT_S: Final = 5.0
"""How long a pixel or a redirect waits for the broker before answering anyway (the receipt is lost)."""
REPEATED: Final = frozenset({"opened", "clicked"})
"""Receipt kinds a customer makes again (counted once per action and UTC day; a click: per link)."""
_URL_SAFE: Final = "!#$%&'()*+,-./:;=?@[]_~"
_CONTROL = re.compile(r"[\x00-\x20\x7f]")

PIXEL_GIF: Final = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
"""A 1x1 transparent GIF (43 bytes): what ``GET /o/<token>`` answers."""


@dataclass(frozen=True, slots=True)
class ReceiptScope:
    """What one receipt token stands for: an action (its id, customer key, channel, campaign, journey),
    the kind of receipt, and for a click the link's target."""

    kind: ReceiptKind
    action_id: str
    customer_id: str
    channel: Channel
    campaign: str | None = None
    journey: str = ""
    url: str | None = None

    @classmethod
    def of(cls, kind: ReceiptKind, action: ChannelAction, url: str | None = None) -> ReceiptScope:
        return cls(
            kind=kind,
            action_id=action.action_id,
            customer_id=action.customer_id,
            channel=_CHANNELS[kind],
            campaign=action.campaign,
            journey=action.journey_id,
            url=url,
        )


def trackable(url: str) -> str | None:
    """The target a click link may redirect to, as it will be sent in ``Location``: an absolute http(s)
    URL with a host, non-ASCII characters percent-encoded; None for anything else (``mailto:``, ``tel:``,
    a relative or an over-long link, control characters or spaces), which is then left as it is."""
    if len(url) > MAX_TARGET_CHARS or _CONTROL.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 host
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    target = quote(url, safe=_URL_SAFE)  # (keeps %-escapes; encodes what is not ASCII)
    return target if len(target) <= MAX_TARGET_CHARS else None


def sign_receipt(scope: ReceiptScope, key: str) -> str:
    """The token of ``scope``, signed with ``key``."""
    payload = {"a": scope.action_id, "c": scope.customer_id, "h": scope.channel, "j": scope.journey}
    if scope.campaign is not None:
        payload["m"] = scope.campaign
    if scope.url is not None:
        payload["u"] = scope.url
    return signing.sign(_VERSIONS[scope.kind], payload, key, domain=_DOMAIN, size=_SIGNATURE_BYTES)


def verify_receipt(token: str, keys: Sequence[str], kind: ReceiptKind) -> ReceiptScope | None:
    """The scope of ``token`` when it is a ``kind`` token signed under one of ``keys``; None for anything
    else (forged, tampered, malformed, of another kind, or signed with a key no longer accepted)."""
    data = signing.verify(
        token,
        keys,
        version=_VERSIONS[kind],
        domain=_DOMAIN,
        max_chars=MAX_RECEIPT_TOKEN_CHARS,
        size=_SIGNATURE_BYTES,
    )
    if data is None:
        return None
    action_id, customer, channel = data.get("a"), data.get("c"), data.get("h")
    journey, campaign, url = data.get("j", ""), data.get("m"), data.get("u")
    if not (isinstance(action_id, str) and action_id and isinstance(customer, str) and customer):
        return None
    if channel != _CHANNELS[kind] or not isinstance(journey, str):
        return None
    if campaign is not None and not isinstance(campaign, str):
        return None
    if kind == "click":
        if not isinstance(url, str) or trackable(url) != url:
            return None
    elif url is not None:
        return None
    return ReceiptScope(kind, action_id, customer, _CHANNELS[kind], campaign, journey, url)


class ReceiptLinks:
    """Makes the receipt links of actions: ``<base_url>/<path>/<token>``, signed with the first key.

    The email connector puts the open and click links in emails; the SMS sender gives Twilio
    :meth:`sms_status_url` as the message's ``StatusCallback``; the push sender puts
    :meth:`push_receipt_url` in the push's data for the app to post its receipts to. ``base_url`` is how
    recipients, providers and apps reach the connectors' public endpoints (``connector_public_url``).
    """

    def __init__(self, base_url: str, keys: Sequence[str]) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"connector_public_url {base_url!r}: expected the connectors' public base URL, like "
                "https://mail.example.com (receipt links point to <it>/o/, /c/, /twilio/status/, /push/)"
            )
        if not keys:
            raise ConfigError(
                "unsubscribe_key is not set: receipt links cannot be signed (ORCH_UNSUBSCRIBE_KEY)"
            )
        if any(len(k) < MIN_KEY_CHARS for k in keys):
            raise ConfigError(f"unsubscribe_key: every key needs at least {MIN_KEY_CHARS} characters")
        self.base_url = base_url.rstrip("/")
        self.keys = tuple(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReceiptLinks:
        return cls(settings.connector_public_url, secret_list(settings.unsubscribe_key))

    def url_for(self, scope: ReceiptScope) -> str:
        return f"{self.base_url}/{_PATHS[scope.kind]}/{sign_receipt(scope, self.keys[0])}"

    def open_url(self, action: ChannelAction) -> str:
        """The source of the email's open pixel."""
        return self.url_for(ReceiptScope.of("open", action))

    def click_url(self, action: ChannelAction, target: str) -> str | None:
        """The tracked link to ``target`` (None: not trackable, or a link to these endpoints: left as is)."""
        url = trackable(target)
        if url is None or self.own(url):
            return None
        return self.url_for(ReceiptScope.of("click", action, url))

    def sms_status_url(self, action: ChannelAction) -> str:
        """The ``StatusCallback`` of ``action``'s SMS: Twilio posts the message's status there."""
        return self.url_for(ReceiptScope.of("sms_status", action))

    def push_receipt_url(self, action: ChannelAction) -> str:
        """Where the app posts ``{"event": "delivered"|"opened"}`` for ``action``'s push."""
        return self.url_for(ReceiptScope.of("push", action))

    def own(self, url: str) -> bool:
        """Whether ``url`` points to these endpoints (an unsubscribe link, a link already tracked)."""
        return url == self.base_url or url.startswith(self.base_url + "/")


def sms_status_url(action: ChannelAction, links: ReceiptLinks) -> str:
    """``links.sms_status_url(action)``: the SMS sender's ``StatusCallback``."""
    return links.sms_status_url(action)


def push_receipt_url(action: ChannelAction, links: ReceiptLinks) -> str:
    """``links.push_receipt_url(action)``: what the push sender puts in the push's data (``receipt_url``)."""
    return links.push_receipt_url(action)


# -- events -----------------------------------------------------------------------------------------
def receipt_event_id(action_id: str, kind: str, at: datetime, url: str | None = None) -> str:
    """``rcpt-<action>-<kind>``; for opens and clicks also the UTC day (and for a click, the link): the
    customer's dedupe then keeps one per action (and day, and link). An action id too long for an event id
    is replaced by its digest."""
    if len(action_id) > 120:
        action_id = hashlib.blake2b(action_id.encode(), digest_size=16).hexdigest()
    event_id = f"rcpt-{action_id}-{kind}"
    if kind in REPEATED:
        event_id += f"-{at.astimezone(UTC):%Y%m%d}"
        if url is not None:
            event_id += f"-{hashlib.blake2b(url.encode(), digest_size=4).hexdigest()}"
    return event_id


def _event(
    action_id: str,
    customer: str,
    channel: Channel,
    campaign: str | None,
    journey: str,
    kind: str,
    at: datetime,
    properties: dict[str, Any],
    url: str | None = None,
) -> CustomerEvent:
    return CustomerEvent(
        event_id=receipt_event_id(action_id, kind, at, url),
        type=f"{channel}.{kind}",
        identifiers=customer_identifiers(customer),  # names the customer, claims no identity
        occurred_at=at,
        source=f"connector.{channel}",
        properties=properties,
        action_id=action_id,
        campaign=campaign,
        journey=journey or None,
    )


def receipt_event(
    scope: ReceiptScope, kind: str, *, at: datetime, properties: dict[str, Any] | None = None
) -> CustomerEvent:
    """The ``<channel>.<kind>`` event of ``scope``'s action, at ``at``."""
    url = scope.url if kind == "clicked" else None
    return _event(
        scope.action_id, scope.customer_id, scope.channel, scope.campaign, scope.journey, kind, at,
        properties or {}, url,
    )  # fmt: skip


def sent_event(action: ChannelAction, at: datetime) -> CustomerEvent:
    """``<channel>.sent``: the provider accepted ``action``'s message (for email: the SMTP server answered
    250 to it — accepted for delivery, not delivered yet)."""
    return _event(
        action.action_id, action.customer_id, action.channel, action.campaign, action.journey_id, "sent",
        at, {"template_id": action.template_id},
    )  # fmt: skip


# -- the email's endpoints --------------------------------------------------------------------------
Publish = Callable[[CustomerEvent, str], Awaitable[None]]
"""Publishes an event to the raw events topic keyed by the customer key; returns once acknowledged."""

_HEADERS: Final = {
    "Cache-Control": "no-store, private",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
}


async def publish_receipt(
    publish: Publish, metrics: ConnectorMetrics, event: CustomerEvent, customer: str
) -> bool:
    """Publishes ``event`` (at most :data:`RECEIPT_PUBLISH_TIMEOUT_S`); False, logged and counted, when it
    could not be."""
    channel, _, kind = event.type.partition(".")
    try:
        await asyncio.wait_for(publish(event, customer), RECEIPT_PUBLISH_TIMEOUT_S)
    except Exception as exc:
        metrics.receipts.labels(channel, kind, "failed").inc()
        log.warning("a %s receipt could not be published: %s", event.type, exc or type(exc).__name__)
        return False
    metrics.receipts.labels(channel, kind, "published").inc()
    return True


def email_receipt_routes(
    keys: Sequence[str],
    publish: Publish,
    metrics: ConnectorMetrics,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[web.RouteDef]:
    """``GET /o/{token}`` (the open pixel) and ``GET /c/{token}`` (a tracked link).

    - a valid pixel publishes ``email.opened`` and answers the 1x1 GIF; a valid link publishes
      ``email.clicked`` (the target in ``properties.url``) and answers 302 to the signed target, with
      ``Referrer-Policy: no-referrer`` (the target never sees the token);
    - a broker that does not acknowledge within :data:`RECEIPT_PUBLISH_TIMEOUT_S`: the image or the
      redirect all the same (the receipt is lost, counted ``failed``: never a broken link);
    - ``HEAD`` (link checkers): the same answer, nothing published;
    - a forged, tampered or malformed token: 400 and nothing published — never an image or a redirect.
    """
    accepted = tuple(keys)

    def refused(endpoint: str) -> web.Response:
        metrics.receipt_requests.labels(endpoint, "refused").inc()
        return web.Response(text="This link is not valid.\n", status=400, headers=_HEADERS)

    async def record(request: web.Request, endpoint: str, scope: ReceiptScope, kind: str) -> None:
        if request.method == "HEAD":
            metrics.receipt_requests.labels(endpoint, "ignored").inc()
            return
        properties = {"url": scope.url} if scope.url is not None else {}
        event = receipt_event(scope, kind, at=clock(), properties=properties)
        done = await publish_receipt(publish, metrics, event, scope.customer_id)
        metrics.receipt_requests.labels(endpoint, "published" if done else "failed").inc()

    async def opened(request: web.Request) -> web.Response:
        scope = verify_receipt(request.match_info["token"], accepted, "open")
        if scope is None:
            return refused("open")
        await record(request, "open", scope, "opened")
        return web.Response(body=PIXEL_GIF, content_type="image/gif", headers=_HEADERS)

    async def clicked(request: web.Request) -> web.Response:
        scope = verify_receipt(request.match_info["token"], accepted, "click")
        if scope is None or scope.url is None:
            return refused("click")
        await record(request, "click", scope, "clicked")
        return web.Response(status=302, headers={**_HEADERS, "Location": scope.url})

    return [web.get("/o/{token}", opened), web.get("/c/{token}", clicked)]
