"""The worker's page in a browser: a login cookie in place of the bearer header (docs/security.md).

A browser cannot send ``Authorization: Bearer`` by itself, so ``POST /ui/login`` takes the API token in
a form and, when it is one of the worker's tokens, sets the cookie :data:`COOKIE_NAME`. The cookie never
carries the token: its value is ``v1.<expires>.<mac>``, where ``mac`` is the HMAC-SHA256 of
``orch_ui|<expires>`` keyed with the token, so that

- it is only worth anything on the pages under :data:`UI_PREFIX` (the middleware accepts it nowhere
  else; the JSON API still wants the header);
- it ends at ``expires`` (:data:`SESSION_SECONDS` after the login), and as soon as the token it was made
  with is no longer configured (rotating ``api_token`` from ``new,old`` to ``new`` logs out whoever
  logged in with ``old``);
- it is compared in constant time against each configured token's MAC, like the header.

The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui`` and ``Secure`` when the request came over
https.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp.web import StreamResponse

__all__ = [
    "COOKIE_NAME",
    "LOGIN_PATH",
    "SESSION_SECONDS",
    "UI_PREFIX",
    "clear_login_cookie",
    "cookie_valid",
    "is_ui_path",
    "make_cookie",
    "set_login_cookie",
    "ui_authorized",
]

COOKIE_NAME = "orch_ui"
UI_PREFIX = "/ui"
"""The pages a login cookie is good for (and the cookie's Path)."""
LOGIN_PATH = "/ui/login"
SESSION_SECONDS = 12 * 3600
"""How long a login lasts."""
_LABEL = b"orch_ui|"
_VERSION = "v1"


def is_ui_path(path: str) -> bool:
    """True for ``/ui`` and the paths under ``/ui/`` (not ``/uix``)."""
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def _mac(token: str, expires: int) -> str:
    return hmac.new(token.encode(), _LABEL + str(expires).encode(), hashlib.sha256).hexdigest()


def make_cookie(token: str, now: float | None = None, lifetime: int = SESSION_SECONDS) -> str:
    """The cookie's value for a login with ``token``, valid ``lifetime`` seconds from ``now``."""
    expires = int(time.time() if now is None else now) + lifetime
    return f"{_VERSION}.{expires}.{_mac(token, expires)}"


def cookie_valid(value: str | None, tokens: tuple[str, ...], now: float | None = None) -> bool:
    """True when ``value`` was made by :func:`make_cookie` with one of ``tokens`` and has not expired;
    never without a token."""
    if not value or not tokens:
        return False
    version, _, rest = value.partition(".")
    expires_text, _, mac = rest.partition(".")
    if version != _VERSION or not expires_text.isdigit() or len(expires_text) > 12 or not mac:
        return False
    expires = int(expires_text)
    if expires <= (time.time() if now is None else now):
        return False
    presented = mac.encode()
    matches = [hmac.compare_digest(presented, _mac(t, expires).encode()) for t in tokens]
    return any(matches)


def ui_authorized(path: str, cookie: str | None, tokens: tuple[str, ...], now: float | None = None) -> bool:
    """True when the login cookie lets this request in: a valid cookie, on a page under ``/ui``."""
    return is_ui_path(path) and cookie_valid(cookie, tokens, now)


def set_login_cookie(response: StreamResponse, token: str, *, secure: bool, now: float | None = None) -> None:
    """Put the login cookie for ``token`` on ``response``: HttpOnly, SameSite=Strict, Path=/ui, Secure
    when the login came over https."""
    response.set_cookie(
        COOKIE_NAME,
        make_cookie(token, now),
        path=UI_PREFIX,
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=SESSION_SECONDS,
    )


def clear_login_cookie(response: StreamResponse) -> None:
    response.del_cookie(COOKIE_NAME, path=UI_PREFIX)
