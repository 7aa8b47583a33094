"""A real SMTP server on loopback for the email connector's tests: aiosmtpd with STARTTLS (required, a
certificate the test made) and AUTH (required, over TLS only), keeping every message it accepted, with
replies scripted per recipient (``451`` for now, ``550`` for good)."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from orchestrator.kafka.local_broker import free_port
from orchestrator.testing.certs import CertificateSet

USER, PASSWORD = "connector", "smtp-secret-password"


@dataclass
class Received:
    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]
    tls: bool
    authenticated: bool


@dataclass
class Mailbox:
    """What the server accepted, and the replies it gives instead (consumed one by one)."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: dict[str, list[str]] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [r.message for r in self.received if address in r.rcpt_tos]

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            scripted = self.rcpt_replies.get(address)
            if scripted:
                reply = scripted.pop(0)
                self.refused.append((address, reply))
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                scripted = self.data_replies.get(rcpt)
                if scripted:
                    reply = scripted.pop(0)
                    self.refused.append((rcpt, reply))
                    return reply
            parsed = message_from_bytes(envelope.content, policy=default_policy)
            assert isinstance(parsed, EmailMessage)
            self.received.append(
                Received(
                    parsed,
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    tls=session.ssl is not None,
                    authenticated=bool(session.authenticated),
                )
            )
        return "250 Message accepted for delivery"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


class SmtpServer:
    """``with SmtpServer(certs) as server:`` — STARTTLS and AUTH required, on 127.0.0.1:``server.port``."""

    def __init__(self, certs: CertificateSet) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.server_cert, certs.server_key)
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(
            self.mailbox,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
            authenticator=_authenticator,
            auth_required=True,
            auth_require_tls=True,
        )

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
