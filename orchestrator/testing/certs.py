"""Throwaway TLS certificates for tests and the local broker's secured listeners, made with ``openssl``.

:func:`make_certificates` writes into one directory:

- a CA (``ca.pem``) that signs a server certificate for ``127.0.0.1`` and ``localhost`` (both in the
  subject alternative names, so a hostname check passes on either) and a client certificate;
- ``server-keystore.pem``: the server's private key (PKCS#8) followed by its certificate chain, the file
  Kafka reads with ``ssl.keystore.type=PEM``;
- the client's key encrypted with a password (``client-key.pem``), to exercise ``ssl_key_password``;
- a second, unrelated CA (``other-ca.pem``) that signed nothing the broker has: the "untrusted" case.

Nothing here is fit for production: the keys sit unencrypted (but the client's) in the directory and the
certificates expire after ``days``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from orchestrator.exceptions import ToolMissingError

__all__ = ["CertificateSet", "SecureKafka", "make_certificates"]

CLIENT_KEY_PASSWORD = "client-key-secret"


@dataclass(frozen=True)
class CertificateSet:
    """Paths of the certificates :func:`make_certificates` wrote."""

    ca: Path
    """The CA certificate (PEM) that signed the server and client certificates: clients' ssl_cafile."""
    server_cert: Path
    server_key: Path
    server_keystore: Path
    """Server key (PKCS#8, unencrypted) then certificate chain: Kafka's ``ssl.keystore.type=PEM`` file."""
    client_cert: Path
    client_key: Path
    """The client's private key, encrypted with :attr:`client_key_password`."""
    client_key_password: str
    other_ca: Path
    """A CA that signed nothing here: a client trusting only it must refuse the broker."""


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        raise ToolMissingError(
            "'openssl' was not found on PATH: install it (Debian: apt-get install openssl)"
        )
    return path


def _run(*args: str) -> None:
    proc = subprocess.run([_openssl(), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed:\n{proc.stdout}{proc.stderr}")


def _ca(directory: Path, name: str, days: int) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", str(days),
         "-subj", f"/CN=orchestrator test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    return cert, key


def _leaf(
    directory: Path, name: str, ca: tuple[Path, Path], days: int, *, subject: str, extensions: str
) -> tuple[Path, Path]:
    cert, key, csr = directory / f"{name}.pem", directory / f"{name}-key.pem", directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions, encoding="utf-8")
    _run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", subject)  # fmt: skip
    _run("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-set_serial",
         str(int.from_bytes(name.encode(), "big") % 2**62 + 1), "-days", str(days), "-out", str(cert),
         "-extfile", str(ext))  # fmt: skip
    csr.unlink()
    ext.unlink()
    return cert, key


def make_certificates(
    directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 2
) -> CertificateSet:
    """A CA, a server certificate for ``hosts``, a client certificate and an unrelated CA in
    ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca", days)
    other = _ca(directory, "other-ca", days)
    sans = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    server_cert, server_key = _leaf(
        directory, "server", ca, days, subject=f"/CN={hosts[0]}",
        extensions=f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n",
    )  # fmt: skip
    client_cert, plain_key = _leaf(
        directory, "client", ca, days, subject="/CN=orchestrator-test-client",
        extensions="extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n",
    )  # fmt: skip
    client_key = directory / "client-key-encrypted.pem"
    _run("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(plain_key), "-out", str(client_key),
         "-passout", f"pass:{CLIENT_KEY_PASSWORD}")  # fmt: skip
    plain_key.unlink()
    keystore = directory / "server-keystore.pem"
    keystore.write_text(
        server_key.read_text(encoding="ascii") + server_cert.read_text(encoding="ascii")
        + ca[0].read_text(encoding="ascii"),
        encoding="ascii",
    )  # fmt: skip
    for key in (ca[1], other[1], server_key, client_key, keystore):
        key.chmod(0o600)
    return CertificateSet(
        ca=ca[0],
        server_cert=server_cert,
        server_key=server_key,
        server_keystore=keystore,
        client_cert=client_cert,
        client_key=client_key,
        client_key_password=CLIENT_KEY_PASSWORD,
        other_ca=other[0],
    )


@dataclass(frozen=True)
class SecureKafka:
    """What a test needs to reach a broker's secured listeners (the session broker of the test suite)."""

    ssl_bootstrap: str
    """An SSL listener (server certificate for 127.0.0.1 and localhost; a client certificate is requested,
    not required)."""
    sasl_ssl_bootstrap: str
    """A SASL_SSL listener with SCRAM-SHA-256 and SCRAM-SHA-512."""
    certs: CertificateSet
    users: tuple[tuple[str, str], ...]
    """SCRAM users as (name, password), each with both mechanisms."""

    @property
    def user(self) -> str:
        return self.users[0][0]

    @property
    def password(self) -> str:
        return self.users[0][1]
