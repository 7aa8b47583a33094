"""The push provider: Firebase Cloud Messaging's HTTP v1 API, authorised by a Google service account.

**The access token** (:class:`AccessTokens`): the service-account JSON file (``fcm_credentials_file``)
holds a private RSA key. The connector signs a JWT with it (RS256; ``iss`` the account's
``client_email``, ``scope`` ``https://www.googleapis.com/auth/firebase.messaging``, ``aud`` the file's
``token_uri``, ``iat`` now, ``exp`` an hour later) and exchanges it at ``token_uri``
(``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``) for an access token, kept until shortly
before it expires (:data:`TOKEN_MARGIN_S`) and shared by every send. A token exchange that fails (the
server unreachable, the key refused) makes the provider unavailable: nothing was sent, nothing is
dead-lettered, the connector waits.

**The request** (:meth:`FcmProvider.render`, once per action): ``POST
{fcm_base_url}/v1/projects/{project_id}/messages:send`` with ``Authorization: Bearer <token>`` and
``{"message": {"token": <the action's recipient: the device's registration token>, "notification":
{"title", "body"}, "data": {...}}}``; ``data`` holds the template's data values and ``action_id`` (the
app reports an open with it).

**The answer** (:func:`classify_answer`):

- 200 ``{"name": "projects/…/messages/…"}``: accepted (the name is logged with the action id);
- 400 (``INVALID_ARGUMENT``): refused for good, dead letter ``rejected``; 403 ``SENDER_ID_MISMATCH``
  (the token belongs to another Firebase project): the same;
- 404 or 410 ``UNREGISTERED``: the token is stale (the app was removed, or it has a new token): dead
  letter ``unregistered``. A 404 that does not say ``UNREGISTERED`` blames the configuration (a project
  that does not exist) instead;
- 401: the access token is refreshed once and the request sent again; a second 401 (or a
  ``THIRD_PARTY_AUTH_ERROR``: the APNs credentials in the Firebase project) makes the provider
  unavailable, as does a 403 ``PERMISSION_DENIED`` (the account may not send): fix the configuration;
- 429 (``QUOTA_EXCEEDED``) and 500: refused for now, after at least ``Retry-After``; 502, 503: the
  provider unavailable; 504: an unknown outcome;
- connection errors as for every HTTP provider (:mod:`orchestrator.connectors.httpclient`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from orchestrator.config import Settings
from orchestrator.connectors.errors import (
    PermanentError,
    ProviderUnavailable,
    RenderError,
    TransientError,
    UnknownOutcome,
)
from orchestrator.connectors.httpclient import HttpAnswer, HttpClient, check_base_url
from orchestrator.connectors.mobile_render import PushParts, PushRenderer, check_push, render_push
from orchestrator.contracts.actions import Channel, ChannelAction
from orchestrator.exceptions import ConfigError

__all__ = [
    "GRANT_TYPE",
    "SCOPE",
    "TOKEN_MARGIN_S",
    "AccessTokens",
    "FcmConfig",
    "FcmMessage",
    "FcmProvider",
    "ServiceAccount",
    "classify_answer",
    "fcm_error",
    "jwt_assertion",
]

log = logging.getLogger("orchestrator.connector.fcm")

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME_S = 3600
"""The JWT's ``exp - iat``: Google accepts at most an hour."""
TOKEN_MARGIN_S = 300.0
"""An access token is replaced this long before it expires (at most half its lifetime before)."""
MAX_TOKEN_CHARS = 4096
_TOKEN = re.compile(r"^[\x21-\x7e]+$")
"""A registration token: printable ASCII without spaces."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class ServiceAccount:
    """What the connector needs of a Google service-account file."""

    client_email: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    private_key_id: str = ""
    token_uri: str = DEFAULT_TOKEN_URI
    project_id: str = ""

    @classmethod
    def from_file(cls, path: Path) -> ServiceAccount:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"fcm_credentials_file {str(path)!r}: cannot be read: {exc.strerror}") from None
        try:
            info = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ConfigError(f"fcm_credentials_file {str(path)!r}: not JSON") from None
        return cls.from_info(info, f"fcm_credentials_file {str(path)!r}")

    @classmethod
    def from_info(cls, info: Any, where: str = "the service account") -> ServiceAccount:
        if not isinstance(info, Mapping):
            raise ConfigError(f"{where}: expected a JSON object")
        if info.get("type") != "service_account":
            raise ConfigError(f'{where}: "type" is {info.get("type")!r}, expected "service_account"')
        for name in ("client_email", "private_key"):
            if not isinstance(info.get(name), str) or not info[name].strip():
                raise ConfigError(f"{where}: {name!r} is missing")
        try:
            key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigError(f"{where}: 'private_key' is not an unencrypted PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(f"{where}: 'private_key' is not an RSA key (RS256 needs one)")
        token_uri = info.get("token_uri") or DEFAULT_TOKEN_URI
        if not isinstance(token_uri, str):
            raise ConfigError(f"{where}: 'token_uri' is not a URL")
        return cls(
            client_email=info["client_email"].strip(),
            private_key=key,
            private_key_id=str(info.get("private_key_id") or ""),
            token_uri=check_base_url(token_uri, f"{where}: token_uri"),
            project_id=str(info.get("project_id") or ""),
        )


def jwt_assertion(account: ServiceAccount, now: float, *, lifetime_s: int = ASSERTION_LIFETIME_S) -> str:
    """The signed JWT (RS256) the token server exchanges for an access token."""
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    issued = int(now)
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": issued,
        "exp": issued + lifetime_s,
    }
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}".encode()
    signature = account.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64url(signature)}"


class AccessTokens:
    """The access token of a service account: exchanged when there is none or it is about to expire,
    else the one kept; one exchange at a time (the sends waiting for it share its token)."""

    def __init__(
        self,
        account: ServiceAccount,
        http: HttpClient,
        *,
        clock: Callable[[], float] = time.time,
        margin_s: float = TOKEN_MARGIN_S,
    ) -> None:
        self.account = account
        self.http = http
        self.clock = clock
        self.margin_s = margin_s
        self.exchanges = 0
        """Token exchanges that gave a token."""
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """A valid access token; raises ProviderUnavailable when none can be had."""
        async with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                self._token, self._renew_at = await self._exchange()
                self.exchanges += 1
            return self._token

    def invalidate(self, token: str) -> None:
        """``token`` was refused: the next :meth:`get` exchanges again (unless another send did already)."""
        if self._token == token:
            self._token = None

    async def _exchange(self) -> tuple[str, float]:
        issued = self.clock()
        form = urlencode({"grant_type": GRANT_TYPE, "assertion": jwt_assertion(self.account, issued)})
        answer = await self.http.post(
            self.account.token_uri,
            data=form.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            sent_is_unknown=False,  # a token exchange sends nothing: try again
        )
        data = answer.json()
        if answer.status != 200 or not isinstance(data, dict):
            said = answer.text()
            if isinstance(data, dict) and "error" in data:
                said = f"{data.get('error')}: {data.get('error_description') or ''}".strip(": ")
            hint = (
                " — check the service account's key (revoked?) and this host's clock"
                if answer.status in (400, 401, 403)
                else ""
            )
            raise ProviderUnavailable(
                f"the token server {self.account.token_uri} answered {answer.status}: {said}{hint}",
                retry_after=answer.retry_after(),
            )
        token, lifetime = data.get("access_token"), data.get("expires_in", 3600)
        if not isinstance(token, str) or not token:
            raise ProviderUnavailable(f"the token server {self.account.token_uri} gave no access_token")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = 3600
        margin = min(self.margin_s, float(lifetime) / 2)
        return token, issued + float(lifetime) - margin


@dataclass(frozen=True)
class FcmConfig:
    account: ServiceAccount
    project_id: str
    base_url: str = "https://fcm.googleapis.com"
    timeout_s: float = 30.0

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/v1/projects/{quote(self.project_id, safe='')}/messages:send"

    @classmethod
    def from_settings(cls, settings: Settings) -> FcmConfig:
        if settings.fcm_credentials_file is None:
            raise ConfigError(
                "fcm_credentials_file is not set: the Google service-account JSON file "
                "(ORCH_FCM_CREDENTIALS_FILE, --credentials)"
            )
        account = ServiceAccount.from_file(settings.fcm_credentials_file)
        project = settings.fcm_project_id.strip() or account.project_id
        if not project:
            raise ConfigError(
                "fcm_project_id is not set and the credentials file has no project_id (ORCH_FCM_PROJECT_ID)"
            )
        return cls(
            account=account,
            project_id=project,
            base_url=check_base_url(settings.fcm_base_url, "fcm_base_url"),
            timeout_s=settings.fcm_timeout_s,
        )


@dataclass(frozen=True, slots=True)
class FcmMessage:
    """One rendered push: the request's JSON body, and what it says."""

    payload: bytes
    parts: PushParts


def fcm_error(answer: HttpAnswer) -> tuple[str, str]:
    """An FCM error answer's code (the ``FcmError`` detail's ``errorCode``, else the error's ``status``,
    e.g. ``UNREGISTERED``, ``INVALID_ARGUMENT``) and message; ``""`` for what it does not say."""
    data = answer.json()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", answer.text()
    code = ""
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and isinstance(detail.get("errorCode"), str):
            code = detail["errorCode"]
            break
    if not code and isinstance(error.get("status"), str):
        code = error["status"]
    return code, str(error.get("message") or "").strip()


def classify_answer(answer: HttpAnswer) -> Exception | None:
    """None when FCM accepted the message, else the runtime's error for its answer (the module's
    docstring says which). A 401 here is the one after the token's refresh."""
    status = answer.status
    if status == 200:
        return None
    code, message = fcm_error(answer)
    said = f"FCM {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    wait = answer.retry_after()
    if status == 400:
        return PermanentError(said)
    if status == 401:
        return ProviderUnavailable(
            f"{said} — FCM refused the service account's access token (or the Firebase project's APNs "
            "credentials): check fcm_credentials_file and the project"
        )
    if status == 403:
        if code == "SENDER_ID_MISMATCH":
            return PermanentError(f"{said} (the token belongs to another Firebase project)")
        return ProviderUnavailable(
            f"{said} — the service account may not send in this project: give it the Firebase Cloud "
            "Messaging API Admin role, or check fcm_project_id"
        )
    if status == 410 or (status == 404 and code == "UNREGISTERED"):
        return PermanentError(f"{said} (a stale registration token)", reason="unregistered")
    if status == 404:
        return ProviderUnavailable(f"{said} — check fcm_project_id and fcm_base_url")
    if status in (429, 500):
        return TransientError(said, retry_after=wait)
    if status in (502, 503):
        return ProviderUnavailable(said, retry_after=wait)
    if status == 504:
        return UnknownOutcome(f"{said}: a gateway gave up waiting for FCM, which may have accepted it")
    if 400 <= status < 500:
        return PermanentError(said)
    if status >= 500:
        return TransientError(said, retry_after=wait)
    return ProviderUnavailable(f"unexpected answer {said} — check fcm_base_url")


class FcmProvider:
    """Sends push notifications with FCM HTTP v1."""

    channel: Channel = "push"

    def __init__(
        self,
        config: FcmConfig,
        *,
        renderer: PushRenderer = render_push,
        clock: Callable[[], float] = time.time,
        receipt_url: Callable[[ChannelAction], str] | None = None,
    ) -> None:
        self.config = config
        self.receipt_url = receipt_url
        """Where the app posts the push's receipts (``receipt_url`` in its data; None: no receipts)."""
        self.renderer = renderer
        self.http = HttpClient("FCM", config.timeout_s)
        self.tokens = AccessTokens(config.account, self.http, clock=clock)

    def render(self, action: ChannelAction) -> FcmMessage:
        token = action.recipient
        if len(token) > MAX_TOKEN_CHARS or not _TOKEN.match(token):
            raise RenderError("the recipient is not a push registration token (printable, no spaces)")
        rendered = self.renderer(action)
        parts = check_push(
            PushParts(
                rendered.title,
                rendered.body,
                {
                    "action_id": action.action_id,
                    **({"receipt_url": self.receipt_url(action)} if self.receipt_url is not None else {}),
                    **rendered.data,
                },
                template=rendered.template,
            )
        )
        notification = {k: v for k, v in (("title", parts.title), ("body", parts.body)) if v}
        payload = {"message": {"token": token, "notification": notification, "data": parts.data}}
        return FcmMessage(orjson.dumps(payload), parts)

    async def _post(self, message: FcmMessage, token: str) -> HttpAnswer:
        return await self.http.post(
            self.config.send_url,
            data=message.payload,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Accept": "application/json",
                "Authorization": f"Bearer {token}",
            },
        )

    async def send(self, action: ChannelAction, message: FcmMessage) -> None:
        token = await self.tokens.get()
        answer = await self._post(message, token)
        if answer.status == 401 and fcm_error(answer)[0] != "THIRD_PARTY_AUTH_ERROR":
            log.info("FCM refused the access token (401): exchanging it again, once")
            self.tokens.invalidate(token)
            answer = await self._post(message, await self.tokens.get())
        error = classify_answer(answer)
        if error is not None:
            raise error
        data = answer.json()
        name = data.get("name") if isinstance(data, dict) else None
        log.info("push %s accepted by FCM as %s", action.action_id, name or "(no name)")

    async def close(self) -> None:
        await self.http.close()
