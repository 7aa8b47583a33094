"""Signed tokens: what the links a connector hands out carry (unsubscribe links, the email's open pixel
and click redirects, the SMS status callbacks, the push receipts).

A token is ``<version>.<payload>.<signature>``: the payload is base64url JSON (short keys, signed, not
encrypted: its reader sees it), the signature a base64url HMAC-SHA256 of ``<domain><version>.<payload>``
under a secret only the connectors know. The **domain** separates the uses (a token signed for one use
never verifies for another, even under the same key) and the **version** names the kind of token inside a
use (``u1``: unsubscribe; ``o1``, ``c1``, ``s1``, ``p1``: receipts). Signatures may be truncated (at least
128 bits: receipts' links stay short), never below.

**Key rotation**: tokens are signed with the first key and verified under each key given (``new,old``,
compared in constant time), so links already sent keep working until the old key is dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Any, Final

import orjson

__all__ = ["MIN_SIGNATURE_BYTES", "b64", "sign", "unb64", "verify"]

MIN_SIGNATURE_BYTES: Final = 16
"""The shortest signature (128 bits)."""
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")


def b64(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: str, domain: bytes, signed: str, size: int) -> str:
    return b64(hmac.new(key.encode(), domain + signed.encode("ascii"), hashlib.sha256).digest()[:size])


def sign(version: str, payload: dict[str, str], key: str, *, domain: bytes, size: int = 32) -> str:
    """The token of ``payload`` (its keys in the order given), signed with ``key`` for ``domain``."""
    if not MIN_SIGNATURE_BYTES <= size <= 32:
        raise ValueError(f"a signature has {MIN_SIGNATURE_BYTES} to 32 bytes")
    signed = f"{version}.{b64(orjson.dumps(payload))}"
    return f"{signed}.{_signature(key, domain, signed, size)}"


def verify(
    token: str,
    keys: Sequence[str],
    *,
    version: str,
    domain: bytes,
    max_chars: int,
    size: int = 32,
) -> dict[str, Any] | None:
    """The payload ``token`` was signed with under one of ``keys`` for ``domain`` and ``version``; None
    for anything else (forged, tampered, malformed, longer than ``max_chars``, another kind of token,
    signed with a key no longer accepted). Every key is compared in constant time; the payload is decoded
    only once a signature matched."""
    if not keys or len(token) > max_chars:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != version or not all(_B64.match(p) for p in parts[1:]):
        return None
    signed = f"{parts[0]}.{parts[1]}"
    given = parts[2].encode("ascii")
    matches = [
        hmac.compare_digest(_signature(key, domain, signed, size).encode("ascii"), given) for key in keys
    ]
    if not any(matches):
        return None
    try:
        data: Any = orjson.loads(unb64(parts[1]))
    except (binascii.Error, ValueError):
        return None
    return data if isinstance(data, dict) else None
