"""The SMS provider: Twilio's Messages API over HTTPS.

**The request** (:meth:`TwilioProvider.render`, once per action; the same bytes on every retry):
``POST {twilio_base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth (the account
SID and its auth token, or an API key SID and its secret), form-encoded:

- ``To``: the action's ``recipient``, an E.164 number (``+`` and the country code; spaces, dashes, dots
  and parentheses are dropped); anything else is a render error, never a guess at a country;
- ``From`` (``twilio_from``) or ``MessagingServiceSid`` (``twilio_messaging_service_sid``);
- ``Body``: the rendered text (:mod:`orchestrator.connectors.mobile_render`), at most 1,600 characters;
- ``StatusCallback`` (when ``twilio_status_callback_url`` is set): that URL with the query parameters
  ``action_id`` and ``customer_key`` added, so that the receiver of Twilio's status callbacks knows the
  action and the customer of each one (Twilio signs the whole URL: they cannot be forged).

**The answer** (:func:`classify_answer`):

- 200, 201, 202: accepted; Twilio's message ``sid`` (``SM…``) is logged with the action id;
- 400: refused for good — dead letter ``rejected`` with Twilio's error ``code`` and ``message`` — unless
  the code blames our sender configuration (21212 invalid From, 21603 From missing, 21606 From not
  allowed for this account or destination): that would refuse every message, so it counts as the
  provider being unavailable, like 401 and 403 (credentials refused) and 404 (no such account): the
  connector waits, without using up attempts, until the configuration is fixed; nothing is dead-lettered;
- 429: refused for now, retried after at least ``Retry-After``; 500: refused for now; 502 and 503: the
  provider unavailable (honouring ``Retry-After``); 504: an unknown outcome (a gateway gave up waiting
  for Twilio, which may have taken it);
- the connection refused or the connect timing out: unavailable; the connection lost or no answer within
  ``twilio_timeout_s`` after the request went out: an unknown outcome (``unconfirmed``, not sent again).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from orchestrator.config import Settings, secret_list
from orchestrator.connectors.errors import (
    PermanentError,
    ProviderUnavailable,
    RenderError,
    TransientError,
    UnknownOutcome,
)
from orchestrator.connectors.httpclient import HttpAnswer, HttpClient, basic_auth, check_base_url
from orchestrator.connectors.mobile_render import SmsRenderer, render_sms
from orchestrator.contracts.actions import Channel, ChannelAction
from orchestrator.exceptions import ConfigError

__all__ = [
    "CONFIG_ERROR_CODES",
    "TwilioConfig",
    "TwilioMessage",
    "TwilioProvider",
    "classify_answer",
    "e164",
]

log = logging.getLogger("orchestrator.connector.twilio")

CONFIG_ERROR_CODES = {
    21212: "invalid From number",
    21603: "From is required",
    21606: "the From number cannot send to this destination or belongs to another account",
}
"""Twilio 400 error codes that blame the sender configuration, not the message."""

_SID = {prefix: re.compile(rf"^{prefix}[0-9a-fA-F]{{32}}$") for prefix in ("AC", "SK", "MG")}
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s\-.()]")
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
FORM = "application/x-www-form-urlencoded"


def e164(value: str) -> str | None:
    """``value`` as an E.164 number (separators dropped), or None when it is not one."""
    number = _SEPARATORS.sub("", value)
    return number if _E164.match(number) else None


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    username: str
    """The account SID, or an API key SID."""
    password: str = field(repr=False)
    sender: str = ""
    messaging_service_sid: str = ""
    status_callback_url: str = ""
    base_url: str = "https://api.twilio.com"
    timeout_s: float = 30.0

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{quote(self.account_sid, safe='')}/Messages.json"

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioConfig:
        """The configuration, or ConfigError naming the setting that is missing or wrong."""
        sid = settings.twilio_account_sid.strip()
        if not sid:
            raise ConfigError("twilio_account_sid is not set: the Twilio account (ORCH_TWILIO_ACCOUNT_SID)")
        if not _SID["AC"].match(sid):
            raise ConfigError(f"twilio_account_sid {sid!r}: expected AC and 32 hexadecimal digits")
        key_sid = (settings.twilio_api_key_sid or "").strip()
        key_secret = settings.twilio_api_key_secret
        token = settings.twilio_auth_token
        if key_sid or key_secret is not None:
            if not key_sid or key_secret is None or not key_secret.get_secret_value():
                raise ConfigError(
                    "twilio_api_key_sid and twilio_api_key_secret go together (ORCH_TWILIO_API_KEY_SID, "
                    "ORCH_TWILIO_API_KEY_SECRET)"
                )
            if not _SID["SK"].match(key_sid):
                raise ConfigError(f"twilio_api_key_sid {key_sid!r}: expected SK and 32 hexadecimal digits")
            username, password = key_sid, key_secret.get_secret_value()
        elif secret_list(token):
            username, password = sid, secret_list(token)[0]  # "new,old" while rotating: the new one
        else:
            raise ConfigError(
                "twilio_auth_token is not set (ORCH_TWILIO_AUTH_TOKEN), nor an API key "
                "(ORCH_TWILIO_API_KEY_SID and ORCH_TWILIO_API_KEY_SECRET)"
            )
        sender, service = settings.twilio_from.strip(), settings.twilio_messaging_service_sid.strip()
        if bool(sender) == bool(service):
            raise ConfigError(
                "set one of twilio_from (a Twilio number or sender id: ORCH_TWILIO_FROM) and "
                "twilio_messaging_service_sid (ORCH_TWILIO_MESSAGING_SERVICE_SID)"
            )
        if sender and not (e164(sender) or _SENDER_ID.match(sender)):
            raise ConfigError(
                f"twilio_from {sender!r}: expected a number in E.164 (+15017122661) or an alphanumeric "
                "sender id (at most 11 letters, digits and spaces)"
            )
        if service and not _SID["MG"].match(service):
            raise ConfigError(
                f"twilio_messaging_service_sid {service!r}: expected MG and 32 hexadecimal digits"
            )
        callback = settings.twilio_status_callback_url.strip()
        if callback:
            parts = urlsplit(callback)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
                raise ConfigError(
                    f"twilio_status_callback_url {callback!r}: expected an absolute https:// URL"
                )
        return cls(
            account_sid=sid,
            username=username,
            password=password,
            sender=(e164(sender) or sender) if sender else "",
            messaging_service_sid=service,
            status_callback_url=callback,
            base_url=check_base_url(settings.twilio_base_url, "twilio_base_url"),
            timeout_s=settings.twilio_timeout_s,
        )

    def status_callback(self, action: ChannelAction) -> str | None:
        """The ``StatusCallback`` of ``action``: the setting's URL naming the action and its customer."""
        if not self.status_callback_url:
            return None
        parts = urlsplit(self.status_callback_url)
        query = [
            *parse_qsl(parts.query, keep_blank_values=True),
            ("action_id", action.action_id),
            ("customer_key", action.customer_id),
        ]
        return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True, slots=True)
class TwilioMessage:
    """One rendered SMS: the request's form body, and what it says."""

    form: bytes
    to: str
    body: str
    template: str | None = None


def _error_of(answer: HttpAnswer) -> tuple[int | None, str]:
    """Twilio's error ``code`` and ``message`` (and ``more_info``), from its JSON error body."""
    data = answer.json()
    if not isinstance(data, dict):
        return None, answer.text() or "(no body)"
    code = data.get("code")
    message = str(data.get("message") or "").strip() or answer.text()
    info = data.get("more_info")
    if isinstance(info, str) and info:
        message = f"{message} ({info})"
    return (code if isinstance(code, int) and not isinstance(code, bool) else None), message


def classify_answer(answer: HttpAnswer) -> Exception | None:
    """None when Twilio accepted the message, else the runtime's error for its answer (the module's
    docstring says which)."""
    status = answer.status
    if status in (200, 201, 202):
        return None
    code, message = _error_of(answer)
    said = f"Twilio {status}" + (f" error {code}" if code is not None else "") + f": {message}"
    wait = answer.retry_after()
    if status == 400:
        if code in CONFIG_ERROR_CODES:
            return ProviderUnavailable(f"{said} — {CONFIG_ERROR_CODES[code]}: check twilio_from / "
                                       "twilio_messaging_service_sid")  # fmt: skip
        return PermanentError(said)
    if status in (401, 403):
        return ProviderUnavailable(
            f"{said} — Twilio refused our credentials: check twilio_account_sid and the auth token or API key"
        )
    if status == 404:
        return ProviderUnavailable(f"{said} — check twilio_account_sid and twilio_base_url")
    if status == 429:
        return TransientError(said, retry_after=wait)
    if status == 500:
        return TransientError(said, retry_after=wait)
    if status in (502, 503):
        return ProviderUnavailable(said, retry_after=wait)
    if status == 504:
        return UnknownOutcome(f"{said}: a gateway gave up waiting for Twilio, which may have accepted it")
    if 400 <= status < 500:
        return PermanentError(said)
    if status >= 500:
        return TransientError(said, retry_after=wait)
    return ProviderUnavailable(f"unexpected answer {said} — check twilio_base_url")


class TwilioProvider:
    """Sends SMS with Twilio's Messages API."""

    channel: Channel = "sms"

    def __init__(
        self,
        config: TwilioConfig,
        *,
        renderer: SmsRenderer = render_sms,
        status_url: Callable[[ChannelAction], str] | None = None,
    ) -> None:
        self.config = config
        self.renderer = renderer
        self.status_url = status_url
        """The signed ``StatusCallback`` of an action (the receipts' links: it names the campaign and
        journey too), used when ``twilio_status_callback_url`` is not set."""
        self.http = HttpClient("Twilio", config.timeout_s)
        self._auth = basic_auth(config.username, config.password)

    def render(self, action: ChannelAction) -> TwilioMessage:
        to = e164(action.recipient)
        if to is None:
            raise RenderError(
                "the recipient is not a phone number in E.164 (+ and the country code, e.g. +15017122661)"
            )
        parts = self.renderer(action)
        fields: list[tuple[str, str]] = [("To", to)]
        if self.config.messaging_service_sid:
            fields.append(("MessagingServiceSid", self.config.messaging_service_sid))
        else:
            fields.append(("From", self.config.sender))
        fields.append(("Body", parts.body))
        callback = self.config.status_callback(action)
        if callback is None and self.status_url is not None:
            callback = self.status_url(action)
        if callback is not None:
            fields.append(("StatusCallback", callback))
        return TwilioMessage(urlencode(fields).encode(), to, parts.body, parts.template)

    async def send(self, action: ChannelAction, message: TwilioMessage) -> None:
        answer = await self.http.post(
            self.config.messages_url,
            data=message.form,
            headers={"Content-Type": FORM, "Accept": "application/json", "Authorization": self._auth},
        )
        error = classify_answer(answer)
        if error is not None:
            raise error
        data: Any = answer.json()
        sid = data.get("sid") if isinstance(data, dict) else None
        status = data.get("status") if isinstance(data, dict) else None
        log.info("sms %s accepted by Twilio as %s (%s)", action.action_id, sid or "(no sid)", status or "?")

    async def close(self) -> None:
        await self.http.close()
