"""The email provider: SMTP submission with aiosmtplib (TLS or STARTTLS, AUTH), MIME text + HTML.

**The message** (:func:`build_message`): ``multipart/alternative`` with a text and an HTML part (from the
renderer, :mod:`orchestrator.connectors.render`), ``From`` = ``email_from``, ``To`` = the action's
``recipient`` (the address the engine put on the action: the profile's email address), ``Message-ID``
``<action id@sender's domain>`` (the same id for the same action: a receiving system that dedupes on it,
and a bounce that quotes it, lead back to the action), ``X-Orchestrator-Action`` the action id, and for a
marketing email ``List-Unsubscribe: <https://…/u/<token>>`` with ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` (RFC 8058; the relay's DKIM signature must cover both, as large mailbox
providers require for bulk mail).

**Errors** (:func:`classify_response` and :meth:`SmtpProvider.send`), by the SMTP phase they happen in:

- connecting, TLS, EHLO, AUTH: the provider is unavailable (the action's attempts are not used up);
  a 421 anywhere too (the server is closing the channel);
- ``MAIL``, ``RCPT``, ``DATA``: a 4xx reply is a refusal for now, a 5xx one a refusal for good;
- a lost connection or a timeout while the message itself is being sent or its reply awaited: the
  message may have been accepted — an unknown outcome, never retried; before that, the provider is
  unavailable (nothing was sent).

Connections are kept and reused (at most ``smtp_connections`` at a time); a reused connection the server
closed while it was idle is replaced once, before ``MAIL``: nothing was sent on it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Literal

import aiosmtplib

from orchestrator.config import Settings
from orchestrator.connectors.errors import (
    PermanentError,
    ProviderUnavailable,
    RenderError,
    TransientError,
    UnknownOutcome,
)
from orchestrator.connectors.receipts import ReceiptLinks
from orchestrator.connectors.render import EmailMessageParts, EmailRenderer, render_email, with_tracking
from orchestrator.connectors.unsubscribe import UnsubscribeLinks
from orchestrator.contracts.actions import Channel, ChannelAction
from orchestrator.exceptions import ConfigError

__all__ = ["Phase", "SmtpConfig", "SmtpProvider", "build_message", "classify_response", "parse_sender"]

log = logging.getLogger("orchestrator.connector.smtp")

Phase = Literal["connect", "mail", "rcpt", "data"]


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    timeout_s: float = 30.0
    connections: int = 4

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.email_from,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=password,
            cafile=settings.smtp_cafile,
            timeout_s=settings.smtp_timeout_s,
            connections=settings.smtp_connections,
        )


def parse_sender(sender: str) -> Address:
    """``email_from`` as an address (``Shop <news@shop.example>`` or ``news@shop.example``)."""
    scratch = EmailMessage()
    try:
        scratch["From"] = sender
        addresses = scratch["From"].addresses
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"email_from {sender!r}: not an email address: {exc}") from None
    if len(addresses) != 1 or not addresses[0].domain or not addresses[0].username:
        raise ConfigError(f"email_from {sender!r}: expected one address like 'Shop <news@shop.example>'")
    address: Address = addresses[0]
    return address


def _recipient(value: str) -> Address:
    if not value.isascii():
        raise RenderError("the recipient has non-ASCII characters (SMTPUTF8 and IDNA are not supported yet)")
    try:
        address = Address(addr_spec=value.strip())
    except Exception as exc:  # the email package raises several kinds: all mean "not an address"
        raise RenderError(f"the recipient is not an email address: {exc}") from None
    if not address.domain:
        raise RenderError("the recipient is not an email address: no domain")
    return address


def build_message(
    action: ChannelAction,
    parts: EmailMessageParts,
    *,
    sender: Address,
    unsubscribe_url: str | None,
    now: datetime,
) -> EmailMessage:
    """The MIME message of ``action`` (the module's docstring lists its headers)."""
    msg = EmailMessage()
    try:
        msg["From"] = sender
        msg["To"] = _recipient(action.recipient)
        msg["Subject"] = parts.subject
        msg["Date"] = format_datetime(now)
        msg["Message-ID"] = f"<{action.action_id}@{sender.domain}>"
        msg["X-Orchestrator-Action"] = action.action_id
        if parts.template is not None:
            msg["X-Orchestrator-Template"] = parts.template
        if unsubscribe_url is not None:
            msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(parts.text)
        msg.add_alternative(parts.html, subtype="html")
    except RenderError:
        raise
    except (ValueError, TypeError) as exc:  # a header with a line break, an action id that is no id
        raise RenderError(f"the message cannot be built: {exc}") from None
    return msg


def classify_response(code: int, message: str, phase: Phase) -> Exception:
    """The runtime's error for an SMTP reply ``code`` in ``phase`` (the module's docstring says which)."""
    text = f"SMTP {code} at {phase.upper() if phase != 'connect' else 'connect'}: {message}".strip()
    if code == 421 or phase == "connect":
        return ProviderUnavailable(text)
    if 400 <= code < 500:
        return TransientError(text)
    if 500 <= code < 600:
        return PermanentError(text)
    return ProviderUnavailable(f"unexpected reply: {text}")


class _Stale(Exception):
    """A kept connection the server closed while it was idle (found at MAIL: nothing was sent on it)."""


class SmtpProvider:
    """Sends emails over SMTP; ``links`` makes their unsubscribe links (None: no links, e.g. a transactional
    only sender), ``tracking`` their open pixel and click links (None: neither)."""

    channel: Channel = "email"

    def __init__(
        self,
        config: SmtpConfig,
        links: UnsubscribeLinks | None,
        *,
        renderer: EmailRenderer = render_email,
        tracking: ReceiptLinks | None = None,
    ) -> None:
        self.config = config
        self.links = links
        self.renderer = renderer
        self.tracking = tracking
        self.sender = parse_sender(config.sender)
        self._tls = self._tls_context()
        self._slots = asyncio.Semaphore(config.connections)
        self._idle: list[aiosmtplib.SMTP] = []

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.security == "none":
            return None
        try:
            return ssl.create_default_context(cafile=self.config.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"smtp_cafile {self.config.cafile!r}: not a PEM CA bundle: {exc}") from None

    # -- rendering ------------------------------------------------------------------------------------
    def render(self, action: ChannelAction) -> bytes:
        """The message's bytes, as they go on the wire (rendered once; the same bytes on every retry)."""
        url = self.links.url(action) if self.links is not None else None
        parts = self.renderer(action, url)
        if self.tracking is not None:
            parts = with_tracking(parts, action, self.tracking, url)
        msg = build_message(action, parts, sender=self.sender, unsubscribe_url=url, now=datetime.now(UTC))
        try:
            return msg.as_bytes(policy=SMTP_POLICY)
        except (ValueError, TypeError, UnicodeError) as exc:
            raise RenderError(f"the message cannot be serialized: {exc}") from None

    # -- sending --------------------------------------------------------------------------------------
    async def send(self, action: ChannelAction, message: bytes) -> None:
        recipient = _recipient(action.recipient).addr_spec
        async with self._slots:
            smtp, reused = await self._connection()
            try:
                try:
                    await self._transaction(smtp, recipient, message, reused=reused)
                except _Stale:
                    smtp.close()  # the server closed it while it was idle: nothing was sent on it
                    smtp = await self._connect()
                    await self._transaction(smtp, recipient, message, reused=False)
            except BaseException:
                smtp.close()
                raise
            self._idle.append(smtp)

    async def _connection(self) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle:
            smtp = self._idle.pop()
            if smtp.is_connected:
                return smtp, True
        return await self._connect(), False

    async def _connect(self) -> aiosmtplib.SMTP:
        c = self.config
        smtp = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.security == "tls",
            start_tls=c.security == "starttls",
            tls_context=self._tls,
            timeout=c.timeout_s,
        )
        try:
            await smtp.connect()
            if c.username:
                await smtp.login(c.username, c.password or "")
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            raise classify_response(exc.code, exc.message, "connect") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            raise ProviderUnavailable(f"cannot reach {c.host}:{c.port}: {exc}") from None
        return smtp

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, recipient: str, message: bytes, *, reused: bool
    ) -> None:
        phase: Phase = "mail"
        try:
            await smtp.mail(self.sender.addr_spec)
            phase = "rcpt"
            await smtp.rcpt(recipient)
            phase = "data"
            await smtp.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            raise classify_response(exc.code, exc.message, phase) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if (
                phase == "mail"
                and reused
                and isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError)
            ):
                raise _Stale from None
            if phase == "data":
                where = f"{self.config.host}:{self.config.port}"
                raise UnknownOutcome(
                    f"the connection to {where} failed during DATA ({exc}): the server may have accepted it"
                ) from None
            raise ProviderUnavailable(
                f"{self.config.host}:{self.config.port} at {phase.upper()}: {exc}"
            ) from None

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()
