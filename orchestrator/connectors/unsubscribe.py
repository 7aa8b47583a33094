"""Unsubscribe links: signed, unforgeable tokens and the HTTP endpoint that turns a click into an event.

**The link.** A marketing email carries ``List-Unsubscribe: <{connector_public_url}/u/{token}>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058), and the same link in its body. The
token is ``u1.<payload>.<signature>``: the payload (base64url JSON) names the customer key, the channel,
the category (or the subscription group) and the action the email came from; the signature is an
HMAC-SHA256 of ``u1.<payload>`` under ``unsubscribe_key`` (a secret only the connectors know). Nobody can
make a link for another customer or change what a link unsubscribes from; the payload is signed, not
encrypted: its reader (the recipient) sees their own customer key and the action id. ``unsubscribe_key``
may name two keys, ``new,old``, while one is rotated: links are signed with the first and accepted
under either (compared in constant time), so the links of emails already sent keep working until the old
key is dropped — keep it for as long as old emails' links must work.

**The endpoint** (the connector's HTTP server, :mod:`orchestrator.connectors.web`):

- ``POST /u/<token>`` with the form body ``List-Unsubscribe=One-Click`` (what a mail client sends for
  RFC 8058's one-click, and what the confirmation page's button sends): publishes the change to the raw
  events topic and answers 200 once the broker acknowledged it (503 if it could not: the client tries
  again);
- ``GET /u/<token>``: a confirmation page with that button. A GET changes nothing: mail scanners and link
  previews open links, and must not unsubscribe anyone;
- a forged, tampered or malformed token: 400 and nothing published; request bodies over 4 KiB: 413.

**The event** (what the customer stage applies, docs/policy.md): a link for a subscription group gives
``subscription.changed`` ``{"group": …, "subscribed": false}``; one for a category gives
``consent.changed`` ``{"channel": "email", "category": "marketing", "granted": false}``. It names the
customer by :func:`customer_identifiers`.
"""

from __future__ import annotations

import html
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web

from orchestrator.connectors import signing
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.contracts.actions import CHANNELS, ChannelAction
from orchestrator.contracts.events import CustomerEvent
from orchestrator.exceptions import ConfigError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_TOKEN_CHARS",
    "MIN_KEY_CHARS",
    "TOKEN_VERSION",
    "UnsubscribeLinks",
    "UnsubscribeScope",
    "customer_identifiers",
    "scope_of",
    "sign_token",
    "unsubscribe_event",
    "unsubscribe_routes",
    "verify_token",
]

log = logging.getLogger("orchestrator.connector")

TOKEN_VERSION: Final = "u1"
MAX_TOKEN_CHARS: Final = 1024
"""A longer token is refused before anything is decoded."""
MAX_BODY_BYTES: Final = 4096
"""The largest request body the endpoint reads (a one-click body is 26 bytes)."""
MIN_KEY_CHARS: Final = 16
_GROUP = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_DOMAIN: Final = b"orchestrator unsubscribe\x1f"
SOURCE: Final = "connector"


@dataclass(frozen=True, slots=True)
class UnsubscribeScope:
    """What one link unsubscribes: a customer from a subscription group, or from a category on a channel."""

    customer_id: str
    channel: str
    category: str = "marketing"
    group: str | None = None
    action_id: str = ""


def scope_of(action: ChannelAction) -> UnsubscribeScope | None:
    """What the link in ``action``'s message unsubscribes from; None for a transactional message (an
    order confirmation, a password reset: nothing to unsubscribe from, no link).

    A message of a subscription group (the action's ``subscription_group``: the group its send step
    named) unsubscribes from that group only; any other marketing message withdraws the customer's
    marketing consent on its channel.
    """
    if action.category != "marketing":
        return None
    group = action.subscription_group
    return UnsubscribeScope(
        customer_id=action.customer_id,
        channel=action.channel,
        category=action.category,
        group=group or None,
        action_id=action.action_id,
    )


def sign_token(scope: UnsubscribeScope, key: str) -> str:
    """The token of ``scope``, signed with ``key`` (:mod:`orchestrator.connectors.signing`)."""
    payload: dict[str, str] = {"c": scope.customer_id, "h": scope.channel, "k": scope.category}
    if scope.group is not None:
        payload["g"] = scope.group
    if scope.action_id:
        payload["a"] = scope.action_id
    return signing.sign(TOKEN_VERSION, payload, key, domain=_DOMAIN)


def verify_token(token: str, keys: Sequence[str]) -> UnsubscribeScope | None:
    """The scope ``token`` was signed for under one of ``keys``; None for anything else (forged, tampered,
    malformed, too long, signed with a key no longer accepted). Every key is compared in constant time."""
    data = signing.verify(token, keys, version=TOKEN_VERSION, domain=_DOMAIN, max_chars=MAX_TOKEN_CHARS)
    if data is None:
        return None
    customer, channel, category = data.get("c"), data.get("h"), data.get("k")
    group, action_id = data.get("g"), data.get("a", "")
    if not isinstance(customer, str) or not customer or channel not in CHANNELS:
        return None
    if category not in ("marketing", "transactional") or not isinstance(action_id, str):
        return None
    if group is not None and not (isinstance(group, str) and _GROUP.match(group)):
        return None
    return UnsubscribeScope(customer, str(channel), str(category), group, action_id)


def customer_identifiers(customer_id: str) -> dict[str, str]:
    """How an event a connector publishes names the action's customer: by its canonical key, which
    claims no identity (``customer_key``: docs/identity.md, "Receipts"), so an anonymous customer keyed
    ``email:ann@x`` still merges at its sign-in."""
    return {"customer_key": customer_id}


def unsubscribe_event(scope: UnsubscribeScope, *, at: datetime, event_id: str, via: str) -> CustomerEvent:
    """The event a used link publishes: ``subscription.changed`` for a group, else ``consent.changed``."""
    if scope.group is not None:
        kind = "subscription.changed"
        properties: dict[str, Any] = {"group": scope.group, "subscribed": False}
    else:
        kind = "consent.changed"
        properties = {"channel": scope.channel, "category": scope.category, "granted": False}
    return CustomerEvent(
        event_id=event_id,
        type=kind,
        identifiers=customer_identifiers(scope.customer_id),
        occurred_at=at,
        source=f"{SOURCE}.{scope.channel}",
        properties={**properties, "via": via},
        action_id=scope.action_id or None,
    )


class UnsubscribeLinks:
    """Makes the unsubscribe links of messages: ``<base_url>/u/<token>``, signed with the first key."""

    def __init__(self, base_url: str, keys: Sequence[str]) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"connector_public_url {base_url!r}: expected the connector's public base URL, like "
                "https://mail.example.com (unsubscribe links point to <it>/u/<token>)"
            )
        if not keys:
            raise ConfigError(
                "unsubscribe_key is not set: unsubscribe links cannot be signed (ORCH_UNSUBSCRIBE_KEY)"
            )
        short = [k for k in keys if len(k) < MIN_KEY_CHARS]
        if short:
            raise ConfigError(f"unsubscribe_key: every key needs at least {MIN_KEY_CHARS} characters")
        self.base_url = base_url.rstrip("/")
        self.keys = tuple(keys)

    def url_for(self, scope: UnsubscribeScope) -> str:
        return f"{self.base_url}/u/{sign_token(scope, self.keys[0])}"

    def url(self, action: ChannelAction) -> str | None:
        """The link of ``action``'s message; None when it gets none (transactional)."""
        scope = scope_of(action)
        return None if scope is None else self.url_for(scope)


Publish = Callable[[CustomerEvent, str], Awaitable[None]]
"""Publishes an event to the raw events topic with a key (the customer key) and returns once the broker
acknowledged it."""

_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width"><title>{html.escape(title)}</title></head>'
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    return web.Response(text=text, status=status, content_type="text/html", headers=_HEADERS)


def _what(scope: UnsubscribeScope) -> str:
    if scope.group is not None:
        return f"the list {html.escape(scope.group)}"
    return f"{html.escape(scope.category)} messages by {html.escape(scope.channel)}"


def unsubscribe_routes(
    keys: Sequence[str],
    publish: Publish,
    metrics: ConnectorMetrics,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[web.RouteDef]:
    """``GET`` and ``POST /u/{token}`` (the module's docstring says what they do)."""
    accepted = tuple(keys)

    def scope_or_none(request: web.Request) -> UnsubscribeScope | None:
        scope = verify_token(request.match_info["token"], accepted)
        if scope is None:
            metrics.unsubscribes.labels("email", "refused").inc()
        return scope

    def refused() -> web.Response:
        return _page("This link is not valid", "<p>Copy the whole link from the email.</p>", status=400)

    async def confirm(request: web.Request) -> web.Response:
        scope = scope_or_none(request)
        if scope is None:
            return refused()
        form = (
            f"<p>Stop receiving {_what(scope)}?</p>"
            '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return _page("Unsubscribe", form)

    async def unsubscribe(request: web.Request) -> web.Response:
        scope = scope_or_none(request)
        if scope is None:
            return refused()
        labels = (scope.channel,)
        form = await request.post()
        if form.get("List-Unsubscribe") != "One-Click":
            metrics.unsubscribes.labels(*labels, "refused").inc()
            return _page(
                "Not an unsubscribe request",
                "<p>Expected the form field List-Unsubscribe=One-Click (RFC 8058).</p>",
                status=400,
            )
        event = unsubscribe_event(
            scope, at=clock(), event_id=f"unsub-{uuid.uuid4().hex}", via="list_unsubscribe"
        )
        try:
            await publish(event, scope.customer_id)
        except Exception as exc:
            metrics.unsubscribes.labels(*labels, "failed").inc()
            log.warning("an unsubscribe could not be published: %s", exc)
            return _page("Please try again", "<p>We could not record it just now.</p>", status=503)
        metrics.unsubscribes.labels(*labels, "done").inc()
        return _page("You are unsubscribed", f"<p>You will no longer receive {_what(scope)}.</p>")

    return [web.get("/u/{token}", confirm), web.post("/u/{token}", unsubscribe)]
