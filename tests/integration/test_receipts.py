"""Receipts back as events on real parts (issue 23, part 5): the session's broker, a worker process, the
email connector with an aiosmtpd server on loopback, real HTTP requests to the open pixel and a tracked
link, and the webhooks receiver taking Twilio status callbacks and push receipts."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.connectors.email import EmailConnector
from orchestrator.connectors.receipts import PIXEL_GIF, ReceiptLinks
from orchestrator.connectors.webhooks import WebhooksReceiver, twilio_signature
from orchestrator.contracts import ChannelAction, CustomerEvent, parse_event
from orchestrator.kafka.local_broker import free_port
from orchestrator.testing import WorkerProcess, read_topic, wait_until
from tests.integration import test_email_connector as email_tests
from tests.integration.runtime_helpers import ActionReader, deploy, inspect_live, produce
from tests.integration.smtp_server import SmtpServer

pytestmark = pytest.mark.integration

# the email connector's fixtures (a certificate, the SMTP server, its settings) and runner, reused
certs, smtp, email_settings = email_tests.certs, email_tests.smtp, email_tests.email_settings
KEY, running = email_tests.KEY, email_tests.running

WAIT_S = 30
"""How long the journey waits for the open before the SMS."""

JOURNEY = f"""
id: open_or_text
version: 1
name: An email, then a text unless it is opened
entry:
  event: newsletter.joined
re_entry:
  policy: never
steps:
  mail:
    type: send
    channel: email
    category: transactional
    template: spring_email
    campaign: spring
    next: wait_open
  wait_open:
    type: wait
    until_event:
      event: email.opened
      of: mail
    timeout:
      after: {WAIT_S}s
      next: text
    next: opened
  text:
    type: send
    channel: sms
    category: transactional
    template: spring_sms
  opened:
    type: exit
    reason: opened_email
"""
EMAIL = """kind: template
id: spring_email
version: 1
channel: email
subject: "Spring is here"
text: "See the spring sale: https://shop.example/spring"
html: >-
  <html><body><p>See <a href="https://shop.example/spring?utm=mail&amp;x=1">the spring sale</a>
  or <a href="mailto:help@shop.example">write to us</a>.</p></body></html>
"""
SMS = """kind: template
id: spring_sms
version: 1
channel: sms
body: "The spring sale is on: https://shop.example/spring"
"""


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and values.get("src"):
            self.images.append(str(values["src"]))
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))


def _html(message: EmailMessage) -> _Html:
    part = message.get_body(("html",))
    assert part is not None
    parsed = _Html()
    parsed.feed(part.get_content())
    return parsed


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    """A real GET, redirects not followed."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _joined(eid: str, identifiers: dict[str, str], at: datetime) -> bytes:
    return orjson.dumps(
        {
            "event_id": eid,
            "type": "newsletter.joined",
            "identifiers": identifiers,
            "occurred_at": at.isoformat(),
            "source": "test",
        }
    )


def test_a_pixel_fetched_ends_the_wait_for_the_open_and_no_sms_goes_out(
    email_settings: Settings, smtp: SmtpServer, tmp_path: Path, actions: ActionReader
) -> None:
    """The issue's end to end: a journey sends an email and waits for its open, else an SMS. Ann (an
    anonymous customer, known by her email) opens it: her wait ends with the open, no SMS; Bob does not:
    his SMS goes out when the wait times out. Then Ann signs in: one profile, with the open."""
    s = email_settings
    files = []
    for name, text in (("journey.yaml", JOURNEY), ("email.yaml", EMAIL), ("sms.yaml", SMS)):
        (tmp_path / name).write_text(text)
        files.append(tmp_path / name)
    deploy(s, files)
    ann, bob = "email:ann@example.com", "cust-bob"
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    connector = EmailConnector(s)

    def customer(key: str) -> tuple[int, Any]:
        status, body = worker.get_json(f"/customers/{key}/")
        return status, body

    def opens(key: str) -> int:
        status, body = customer(key)
        return int(body["profile"].get("engagement", {}).get("email.opened", [0])[0]) if status == 200 else 0

    try:
        worker.wait_ready()
        with running(connector):
            now = datetime.now(UTC)
            produce(
                s,
                [
                    _joined("j-ann", {"email": "ann@example.com", "phone": "+15550101"}, now),
                    _joined(
                        "j-bob", {"customer_id": bob, "email": "bob@example.com", "phone": "+15550102"}, now
                    ),
                ],
            )
            wait_until(
                lambda: smtp.mailbox.to("ann@example.com") and smtp.mailbox.to("bob@example.com"),
                timeout=60,
                what="both emails at the SMTP server",
            )
            mail = smtp.mailbox.to("ann@example.com")[0]
            page = _html(mail)
            [pixel] = page.images
            assert pixel.startswith(f"{s.connector_public_url}/o/o1.")
            tracked, mailto = page.links
            assert tracked.startswith(f"{s.connector_public_url}/c/c1.")
            assert mailto == "mailto:help@shop.example"
            plain = mail.get_body(("plain",))
            assert plain is not None
            assert "https://shop.example/spring" in plain.get_content()  # the text part: the real link

            status, headers, body = _get(pixel)  # the mail client shows the image
            assert (status, headers["Content-Type"], body) == (200, "image/gif", PIXEL_GIF)
            status, headers, _ = _get(tracked)  # the reader clicks
            assert (status, headers["Location"]) == (302, "https://shop.example/spring?utm=mail&x=1")
            assert _get(pixel[:-3] + "AAA")[0] == 400  # tampered: nothing

            wait_until(lambda: opens(ann) == 1, timeout=60, what="the open on Ann's profile")
            wait_until(lambda: customer(ann)[1]["instances"] == [], timeout=30, what="Ann's wait to end")
            wait_until(
                lambda: (actions.poll(), any(r["channel"] == "sms" for r in actions.records))[1],
                timeout=WAIT_S + 60,
                what="Bob's SMS after the timeout",
            )
            actions.settle(3.0)
            # Ann signs in: the receipts named her by key and claimed nothing, so she merges: one profile
            produce(s, [_joined("s-ann", {"customer_id": "cust-ann", "email": "ann@example.com"}, now)])
            wait_until(lambda: opens("cust-ann") == 1, timeout=60, what="the merge into the known customer")
            inspected = inspect_live(s, worker, ann)
    finally:
        worker.stop()

    sent = sorted((r["customer_id"], r["channel"]) for r in actions.records)
    assert sent == sorted([(ann, "email"), (bob, "email"), (bob, "sms")]), (
        "Ann opened her email: no SMS for her"
    )
    [finished] = [f for f in inspected["finished"] if f["journey"] == "open_or_text"]
    assert (finished["outcome"], finished["reason"]) == ("exited", "opened_email")
    assert inspected["customer_key"] == "cust-ann"
    assert ann in inspected["aliases"]
    assert "customer_key" not in inspected["identities"]
    engagement = inspected["profile"]["engagement"]
    assert (engagement["email"]["sent"], engagement["email"]["opened"], engagement["email"]["clicked"]) == (
        1,
        1,
        1,
    )
    assert inspected["profile"]["engagement"]["campaigns"]["spring"].keys() >= {
        "last_opened_ms",
        "last_clicked_ms",
    }

    events = [parse_event(r.value or b"") for r in read_topic(s.bootstrap_servers, s.topics.raw_events)]
    receipts = sorted((e.type, e.identifiers.customer_key) for e in events if e.source == "connector.email")
    assert receipts == [
        ("email.clicked", ann),
        ("email.opened", ann),
        ("email.sent", bob),
        ("email.sent", ann),
    ]
    clicked = next(e for e in events if e.type == "email.clicked")
    assert clicked.properties == {"url": "https://shop.example/spring?utm=mail&x=1"}
    assert (clicked.campaign, clicked.journey) == ("spring", "open_or_text")


# -- the webhooks receiver ---------------------------------------------------------------------------------
AUTH = "twilio-auth-token-for-tests"


@contextmanager
def _receiving(receiver: WebhooksReceiver) -> Iterator[WebhooksReceiver]:
    """The receiver on its own event loop in a thread; stopped on exit."""
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await receiver.run(box["stop"])

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    ready.wait(30)
    try:
        wait_until(lambda: _status(receiver, "/readyz") == 200 or "error" in box, timeout=30, what="ready")
        yield receiver
    finally:
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        assert not thread.is_alive()
        if "error" in box:
            raise box["error"]


def _status(receiver: WebhooksReceiver, path: str) -> int:
    s = receiver.settings
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{s.connector_web_port}{path}", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_signed_twilio_callbacks_and_push_receipts_reach_the_raw_topic_and_forgeries_nothing(
    settings: Settings,
) -> None:
    port = free_port()
    public = "https://hooks.shop.example"  # what Twilio calls (a proxy in front): what it signs
    s = Settings.model_validate(
        settings.model_dump()
        | {
            "connector_web_port": port,
            "connector_public_url": public,
            "unsubscribe_key": KEY,
            "twilio_auth_token": AUTH,
        }
    )
    base = {
        "channel": "sms", "category": "marketing", "recipient": "+15550101", "journey_id": "welcome",
        "journey_version": 1, "step_id": "text", "template_id": "t", "campaign": "spring",
        "created_at": datetime.now(UTC),
    }  # fmt: skip
    sms = ChannelAction.model_validate(
        {**base, "action_id": "act_sms", "customer_id": "email:ann@example.com"}
    )
    push = sms.model_copy(update={"action_id": "act_push", "channel": "push", "customer_id": "cust-bob"})
    links = ReceiptLinks(public, [KEY])
    callback = links.sms_status_url(sms)
    local = f"http://127.0.0.1:{port}"

    def twilio(status: str, token: str = AUTH, url: str = callback) -> int:
        form = [
            ("AccountSid", "AC" + "0" * 32), ("ErrorCode", "30005" if status == "undelivered" else ""),
            ("From", "+15550199"), ("MessageSid", "SM" + "2" * 32), ("MessageStatus", status),
            ("To", "+15550101"),
        ]  # fmt: skip
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(token, url, form),
        }
        return _post(callback.replace(public, local), urlencode(form).encode(), headers)

    receiver = WebhooksReceiver(s)
    with _receiving(receiver):
        assert twilio("sent") == 204  # no receipt
        assert twilio("delivered", token="a-forger-without-the-token") == 403
        assert twilio("delivered", url=links.sms_status_url(push)) == 403  # signed for another URL
        assert twilio("delivered") == 204
        assert twilio("undelivered") == 204
        receipt = links.push_receipt_url(push).replace(public, local)
        json = {"Content-Type": "application/json"}
        assert _post(receipt, b'{"event": "opened"}', json) == 204
        assert _post(receipt[:-3] + "AAA", b'{"event": "opened"}', json) == 400
        assert _status(receiver, "/metrics") == 200
    records = read_topic(s.bootstrap_servers, s.topics.raw_events, expect=3)
    events: list[CustomerEvent] = [parse_event(r.value or b"") for r in records]
    got = sorted(
        (e.type, r.key, e.identifiers.customer_key, e.action_id) for r, e in zip(records, events, strict=True)
    )
    assert got == [
        ("push.opened", b"cust-bob", "cust-bob", "act_push"),
        ("sms.delivered", b"email:ann@example.com", "email:ann@example.com", "act_sms"),
        ("sms.failed", b"email:ann@example.com", "email:ann@example.com", "act_sms"),
    ]
    failed = next(e for e in events if e.type == "sms.failed")
    assert failed.properties["error_code"] == "30005"
    assert all(e.campaign == "spring" and e.journey == "welcome" for e in events)
