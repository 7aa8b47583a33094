"""Throwaway Google service accounts for tests of the push connector: a fresh RSA key in a service-account
JSON file (the shape Google's console downloads) whose ``token_uri`` points at a local token server, and
the check such a server makes of a JWT assertion (RS256 signature, then claims). Nothing here is fit for
production: the key sits unencrypted in the file."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["ServiceAccountFile", "make_service_account", "verify_assertion"]


@dataclass(frozen=True)
class ServiceAccountFile:
    path: Path
    client_email: str
    project_id: str
    token_uri: str
    public_key: rsa.RSAPublicKey


def make_service_account(
    folder: Path, token_uri: str, *, project_id: str = "demo-project", name: str = "service-account.json"
) -> ServiceAccountFile:
    """A service-account file in ``folder`` with a new 2048-bit RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    email = f"orchestrator@{project_id}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2))
    path.chmod(0o600)
    return ServiceAccountFile(path, email, project_id, token_uri, key.public_key())


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_assertion(assertion: str, public_key: rsa.RSAPublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of ``assertion`` once its RS256 signature checks out under ``public_key``;
    ValueError (saying why) otherwise. The claims are the caller's to check."""
    pieces = assertion.split(".")
    if len(pieces) != 3:
        raise ValueError("not a JWT: expected three dot-separated parts")
    try:
        header, claims, signature = (
            orjson.loads(_b64(pieces[0])),
            orjson.loads(_b64(pieces[1])),
            _b64(pieces[2]),
        )
    except (binascii.Error, orjson.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"not a JWT: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a JWT: header and claims must be objects")
    if header.get("alg") != "RS256":
        raise ValueError(f"alg {header.get('alg')!r}, expected RS256")
    try:
        public_key.verify(signature, f"{pieces[0]}.{pieces[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ValueError("the signature does not verify") from None
    return header, claims
