"""HTTP for the providers that are HTTP APIs (Twilio for SMS, FCM for push): one aiohttp session per
provider, and what a failed request means for the action.

**Where a request failed** decides what the connector may do with it (:mod:`orchestrator.connectors.errors`):

- the connection could not be made (refused, DNS, TLS handshake, connect timeout): nothing reached the
  provider — :class:`~orchestrator.connectors.errors.ProviderUnavailable`, retried without using up the
  action's attempts;
- the connection broke, or no answer came within the timeout, **after the request was written**: the
  provider may have taken it — :class:`~orchestrator.connectors.errors.UnknownOutcome`, never sent again
  (``unconfirmed``). A request that changes nothing (a token exchange) says so (``sent_is_unknown=False``)
  and is then retried as an unavailable provider instead;
- an answer came: :class:`HttpAnswer`, which the provider classifies by its status and body.

Base URLs are ``https://``; ``http://`` only on loopback (a test server): the requests carry credentials.
``HTTPS_PROXY`` / ``NO_PROXY`` from the environment are honoured (egress through a proxy).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from orchestrator.connectors.errors import ProviderUnavailable, UnknownOutcome
from orchestrator.exceptions import ConfigError

__all__ = [
    "MAX_ANSWER_BYTES",
    "HttpAnswer",
    "HttpClient",
    "basic_auth",
    "check_base_url",
    "parse_retry_after",
]

MAX_ANSWER_BYTES = 256 * 1024
"""The most of an answer's body read (providers answer with a few hundred bytes of JSON)."""

USER_AGENT = "journey-orchestrator-connector"


def check_base_url(url: str, setting: str) -> str:
    """``url`` without its trailing slash; ConfigError unless it is ``https://host[:port][/path]`` or
    ``http://`` on a loopback host (a test server): credentials never go out unencrypted."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{setting} {url!r}: expected an https:// URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{setting} {url!r}: a base URL has no query or fragment")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError(
            f"{setting} {url!r}: http:// is accepted on loopback only (a test server); use https://"
        )
    return url.strip().rstrip("/")


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` header's value for HTTP basic auth (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` (seconds, or an HTTP date); None when absent or
    unreadable; never negative."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class HttpAnswer:
    """A provider's answer: its status, headers and (the start of) its body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON; None when it is not JSON."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def retry_after(self, now: datetime | None = None) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"), now)

    def text(self, limit: int = 300) -> str:
        """The body as text for a message, on one line and cut at ``limit`` characters."""
        shown = " ".join(self.body.decode("utf-8", "replace").split())
        return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class HttpClient:
    """One session (kept connections) toward one provider; ``name`` names it in messages. Made on the
    first request (the event loop's), closed by :meth:`close`."""

    def __init__(self, name: str, timeout_s: float, *, connections: int = 32) -> None:
        self.name = name
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, ttl_dns_cache=300),
                timeout=self.timeout,
                headers={"User-Agent": USER_AGENT},
                trust_env=True,
            )
        return self._session

    async def post(
        self,
        url: str,
        *,
        data: bytes,
        headers: Mapping[str, str],
        sent_is_unknown: bool = True,
    ) -> HttpAnswer:
        """POST ``data``; the answer, or raises ProviderUnavailable / UnknownOutcome (the module's
        docstring says which)."""
        where = f"{self.name} at {_origin(url)}"
        try:
            async with self._open().post(
                url, data=data, headers=dict(headers), allow_redirects=False
            ) as response:
                body = await _read(response)
                return HttpAnswer(response.status, dict(response.headers), body)
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            raise ProviderUnavailable(f"cannot reach {where}: {_describe(exc)}") from None
        except aiohttp.ServerFingerprintMismatch as exc:
            raise ProviderUnavailable(f"{where}: {_describe(exc)}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not sent_is_unknown:
                raise ProviderUnavailable(f"{where}: {_describe(exc)}") from None
            raise UnknownOutcome(
                f"{where}: {_describe(exc)} after the request was sent: it may have been accepted"
            ) from None

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The body, at most :data:`MAX_ANSWER_BYTES`; what could be read when it breaks off (the status is
    what counts: a 2xx whose body is lost is still accepted)."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < MAX_ANSWER_BYTES:
            chunk = await response.content.read(MAX_ANSWER_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (TimeoutError, aiohttp.ClientError):
        pass
    return b"".join(chunks)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
