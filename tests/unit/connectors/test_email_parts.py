"""The email connector's pure parts: rendering, the MIME message and its headers, SMTP error classes,
unsubscribe tokens (sign, verify, tamper, rotation) and the unsubscribe endpoint over real HTTP on
loopback (its publisher collects the events instead of Kafka)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaConnectionError

from orchestrator.config import load_settings
from orchestrator.connectors.email import EmailConnector
from orchestrator.connectors.errors import (
    PermanentError,
    ProviderUnavailable,
    RenderError,
    TransientError,
)
from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.render import EmailMessageParts, render_email
from orchestrator.connectors.smtp import (
    SmtpConfig,
    SmtpProvider,
    build_message,
    classify_response,
    parse_sender,
)
from orchestrator.connectors.unsubscribe import (
    MAX_TOKEN_CHARS,
    UnsubscribeLinks,
    UnsubscribeScope,
    scope_of,
    sign_token,
    unsubscribe_event,
    unsubscribe_routes,
    verify_token,
)
from orchestrator.connectors.web import ConnectorWeb
from orchestrator.contracts import ChannelAction, CustomerEvent
from orchestrator.exceptions import ConfigError
from orchestrator.kafka.local_broker import free_port

KEY, OLD = "current-key-0123456789", "previous-key-0123456789"
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def action(**extra: Any) -> ChannelAction:
    values: dict[str, Any] = {
        "action_id": "act_0123abcd",
        "channel": "email",
        "category": "marketing",
        "customer_id": "cust-ada",
        "recipient": "ada@example.com",
        "journey_id": "welcome",
        "journey_version": 1,
        "step_id": "hello",
        "template_id": "welcome_1",
        "personalization": {"first_name": "Ada", "cart": {"items": 2}, "subject": "Hi <Ada>"},
        "created_at": AT,
        **extra,
    }
    return ChannelAction.model_validate(values)


# -- rendering ---------------------------------------------------------------------------------------
def test_default_rendering_is_plain_and_escaped() -> None:
    parts = render_email(action(), "https://mail.example/u/t")
    assert parts.subject == "Hi <Ada>"
    assert parts.text == 'cart: {"items":2}\nfirst_name: Ada\n\nUnsubscribe: https://mail.example/u/t\n'
    assert "<h1>Hi &lt;Ada&gt;</h1>" in parts.html
    assert "<dt>cart</dt><dd>{&quot;items&quot;:2}</dd>" in parts.html
    assert '<a href="https://mail.example/u/t">Unsubscribe</a>' in parts.html
    plain = render_email(action(personalization={}), None)
    assert (plain.subject, plain.text) == ("welcome_1", "\n")
    assert "Unsubscribe" not in plain.html


@pytest.mark.parametrize(
    ("personalization", "message"),
    [
        ({"subject": "Hi\r\nBcc: x@y"}, "line break"),
        ({"subject": "x" * 1000}, "over 998"),
    ],
)
def test_rendering_refuses_a_broken_subject(personalization: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_email(action(personalization=personalization), None)


# -- the MIME message --------------------------------------------------------------------------------
def test_the_message_has_both_parts_and_the_headers() -> None:
    url = "https://mail.example/u/u1.x.y"
    msg = build_message(
        action(), render_email(action(), url), sender=parse_sender("Shop <news@shop.example>"),
        unsubscribe_url=url, now=AT,
    )  # fmt: skip
    parsed = email.message_from_bytes(msg.as_bytes(policy=email.policy.SMTP), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["From"] == "Shop <news@shop.example>"
    assert parsed["To"] == "ada@example.com"
    assert parsed["Subject"] == "Hi <Ada>"
    assert parsed["Date"] == "Sun, 01 Mar 2026 09:30:00 +0000"
    assert parsed["Message-ID"] == "<act_0123abcd@shop.example>"
    assert parsed["X-Orchestrator-Action"] == "act_0123abcd"
    assert parsed["List-Unsubscribe"] == f"<{url}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    bare = build_message(
        action(category="transactional"), EmailMessageParts("s", "t", "<p>t</p>"),
        sender=parse_sender("news@shop.example"), unsubscribe_url=None, now=AT,
    )  # fmt: skip
    assert bare["List-Unsubscribe"] is None
    assert bare["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize(
    ("recipient", "message"),
    [
        ("not an address", "not an email address"),
        ("ann@", "not an email address"),
        ("ann@example.com\r\nBcc: eve@example.com", "not an email address"),
        ("änn@example.com", "non-ASCII"),
    ],
)
def test_a_bad_recipient_is_a_render_error(recipient: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        build_message(
            action(recipient=recipient), EmailMessageParts("s", "t", "h"),
            sender=parse_sender("news@shop.example"), unsubscribe_url=None, now=AT,
        )  # fmt: skip


@pytest.mark.parametrize("sender", ["", "not an address", "a@b.example, c@d.example"])
def test_a_bad_sender_is_a_config_error(sender: str) -> None:
    with pytest.raises(ConfigError, match="email_from"):
        parse_sender(sender)


def test_the_provider_renders_bytes_with_its_links_and_refuses_a_broken_renderer() -> None:
    links = UnsubscribeLinks("https://mail.example/", [KEY])
    config = SmtpConfig(host="127.0.0.1", port=2525, sender="news@shop.example", security="none")
    provider = SmtpProvider(config, links)
    raw = provider.render(action())
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    token = str(parsed["List-Unsubscribe"])[1:-1].removeprefix("https://mail.example/u/")
    expected = UnsubscribeScope("cust-ada", "email", "marketing", None, "act_0123abcd")
    assert verify_token(token, [KEY]) == expected
    assert b"\r\n" in raw
    assert "secret" not in repr(SmtpConfig("h", 1, "a@b.c", password="secret"))

    def broken(a: ChannelAction, url: str | None) -> EmailMessageParts:
        return EmailMessageParts("x\ny", "t", "h")

    with pytest.raises(RenderError, match="cannot be built"):
        SmtpProvider(config, links, renderer=broken).render(action())


def test_smtp_config_from_settings_keeps_the_password_secret() -> None:
    settings = load_settings(
        environ={"ORCH_SMTP_PASSWORD": "pw-1", "ORCH_SMTP_SECURITY": "tls", "ORCH_SMTP_PORT": "465"}
    )
    config = SmtpConfig.from_settings(settings)
    assert (config.password, config.security, config.port) == ("pw-1", "tls", 465)
    assert "pw-1" not in repr(config)
    assert "pw-1" not in repr(settings)


# -- SMTP errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "phase", "kind"),
    [
        (451, "data", TransientError),
        (450, "rcpt", TransientError),
        (452, "mail", TransientError),
        (550, "rcpt", PermanentError),
        (554, "data", PermanentError),
        (552, "mail", PermanentError),
        (421, "rcpt", ProviderUnavailable),
        (535, "connect", ProviderUnavailable),  # a refused login: the connector's, not the message's
        (454, "connect", ProviderUnavailable),
        (250, "data", ProviderUnavailable),
    ],
)
def test_smtp_replies_are_classified_by_code_and_phase(code: int, phase: str, kind: type[Exception]) -> None:
    error = classify_response(code, "words", phase)  # type: ignore[arg-type]
    assert type(error) is kind
    assert str(code) in str(error)
    assert "words" in str(error)


# -- tokens ------------------------------------------------------------------------------------------
def test_tokens_round_trip_and_carry_what_the_link_unsubscribes() -> None:
    group = UnsubscribeScope("cust-ada", "email", "marketing", "product_news", "act_1")
    assert verify_token(sign_token(group, KEY), [KEY]) == group
    category = UnsubscribeScope("email:ann@example.com", "email", action_id="")
    assert verify_token(sign_token(category, KEY), [KEY]) == category
    assert sign_token(group, KEY) == sign_token(group, KEY)  # deterministic: one link per action


def test_tokens_keep_their_bytes_links_already_sent_keep_working() -> None:
    """Pinned: the links of emails already sent must verify after any change to the code that signs them."""
    key = "k" * 16
    assert sign_token(UnsubscribeScope("email:ann@x", "email", action_id="act_1"), key) == (
        "u1.eyJjIjoiZW1haWw6YW5uQHgiLCJoIjoiZW1haWwiLCJrIjoibWFya2V0aW5nIiwiYSI6ImFjdF8xIn0."
        "VzYv5HobIeRHAPqpOBKowxm0xhLoOsnckya7-vmrTzs"
    )
    assert sign_token(UnsubscribeScope("c1", "email", group="news", action_id="act_2"), key) == (
        "u1.eyJjIjoiYzEiLCJoIjoiZW1haWwiLCJrIjoibWFya2V0aW5nIiwiZyI6Im5ld3MiLCJhIjoiYWN0XzIifQ."
        "-L6NFj6_dtMJYsECMiWIOLrIbSr5CvB2AhHQHyN-Dkw"
    )


def test_forged_tampered_and_malformed_tokens_are_refused() -> None:
    token = sign_token(UnsubscribeScope("cust-ada", "email", action_id="act_1"), KEY)
    version, payload, signature = token.split(".")
    other = sign_token(UnsubscribeScope("cust-eve", "email", action_id="act_1"), KEY).split(".")[1]
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in [
        f"{version}.{other}.{signature}",  # another customer under this signature
        f"{version}.{payload}.{flipped}",
        f"{version}.{payload}.{signature}A",
        f"{version}.{payload}",
        f"u2.{payload}.{signature}",
        f"{version}.{payload}.{signature}!",
        f"{version}.{payload}=.{signature}",
        sign_token(UnsubscribeScope("cust-ada", "email"), "someone-elses-key-0123"),
        "",
        "u1..",
        "x" * (MAX_TOKEN_CHARS + 1),
    ]:
        assert verify_token(bad, [KEY]) is None, bad
    assert verify_token(token, []) is None


def test_a_signed_payload_with_bad_fields_is_still_refused() -> None:
    from orchestrator.connectors import signing
    from orchestrator.connectors import unsubscribe as u

    def forge(payload: bytes) -> str:
        signed = f"u1.{signing.b64(payload)}"
        return f"{signed}.{signing._signature(KEY, u._DOMAIN, signed, 32)}"

    assert verify_token(forge(b'{"c": "c1", "h": "email", "k": "marketing"}'), [KEY]) is not None
    for payload in [
        b"[1, 2]",
        b"not json",
        b'{"c": "", "h": "email", "k": "marketing"}',
        b'{"c": "c1", "h": "fax", "k": "marketing"}',
        b'{"c": "c1", "h": "email", "k": "spam"}',
        b'{"c": "c1", "h": "email", "k": "marketing", "g": "Not A Group"}',
        b'{"c": "c1", "h": "email", "k": "marketing", "a": 7}',
    ]:
        assert verify_token(forge(payload), [KEY]) is None, payload


def test_key_rotation_signs_with_the_new_key_and_accepts_the_old_one() -> None:
    scope = UnsubscribeScope("cust-ada", "email", action_id="act_1")
    old_link = sign_token(scope, OLD)
    links = UnsubscribeLinks("https://mail.example", [KEY, OLD])
    new_link = links.url_for(scope).rsplit("/", 1)[1]
    assert verify_token(new_link, [KEY]) == scope
    assert verify_token(old_link, links.keys) == scope
    assert verify_token(old_link, [KEY]) is None  # once the old key is dropped, its links stop working


@pytest.mark.parametrize(
    ("url", "keys", "message"),
    [
        ("mail.example", [KEY], "public base URL"),
        ("https://mail.example/?a=1", [KEY], "public base URL"),
        ("https://mail.example", [], "not set"),
        ("https://mail.example", ["short"], "at least 16"),
    ],
)
def test_links_need_a_base_url_and_a_long_key(url: str, keys: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        UnsubscribeLinks(url, keys)


def test_transactional_messages_get_no_link_and_marketing_ones_unsubscribe_the_category() -> None:
    assert scope_of(action(category="transactional")) is None
    links = UnsubscribeLinks("https://mail.example/", [KEY])
    assert links.url(action(category="transactional")) is None
    url = links.url(action())
    assert url is not None
    assert url.startswith("https://mail.example/u/u1.")
    assert scope_of(action()) == UnsubscribeScope("cust-ada", "email", "marketing", None, "act_0123abcd")
    # a message of a subscription group: its link leaves that group only
    grouped = scope_of(action(subscription_group="product_news"))
    assert grouped == UnsubscribeScope("cust-ada", "email", "marketing", "product_news", "act_0123abcd")


def test_the_events_a_link_publishes() -> None:
    consent = unsubscribe_event(
        UnsubscribeScope("cust-ada", "email", action_id="act_1"), at=AT, event_id="e1", via="list_unsubscribe"
    )
    assert (consent.type, consent.action_id) == ("consent.changed", "act_1")
    assert consent.source == "connector.email"
    assert consent.properties == {
        "channel": "email",
        "category": "marketing",
        "granted": False,
        "via": "list_unsubscribe",
    }
    assert consent.identifiers.customer_key == "cust-ada"
    grouped = unsubscribe_event(
        UnsubscribeScope("cust-ada", "email", group="product_news"), at=AT, event_id="e2", via="x"
    )
    assert grouped.type == "subscription.changed"
    assert grouped.properties == {"group": "product_news", "subscribed": False, "via": "x"}
    assert grouped.action_id is None


# -- the endpoint, over HTTP ---------------------------------------------------------------------------
async def test_the_endpoint_confirms_on_get_changes_on_post_and_refuses_forgeries() -> None:
    published: list[tuple[CustomerEvent, str]] = []

    async def publish(event: CustomerEvent, key: str) -> None:
        published.append((event, key))

    metrics = ConnectorMetrics(process_metrics=False)
    metrics.start_channel("email")

    web = ConnectorWeb("127.0.0.1", 0, metrics, routes=unsubscribe_routes([KEY, OLD], publish, metrics))
    token = sign_token(UnsubscribeScope("cust-ada", "email", action_id="act_1"), OLD)
    async with TestClient(TestServer(web.app)) as client:
        page = await client.get(f"/u/{token}")
        assert page.status == 200
        assert "Stop receiving marketing messages by email?" in await page.text()
        assert page.headers["Cache-Control"] == "no-store"
        assert not published  # a GET (a link scanner) changes nothing

        done = await client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert done.status == 200
        assert "You are unsubscribed" in await done.text()
        [(event, key)] = published
        assert (event.type, key, event.identifiers.customer_key) == (
            "consent.changed",
            "cust-ada",
            "cust-ada",
        )

        for bad in (token[:-2] + "xx", "u1.e30.AAAA"):
            assert (await client.post(f"/u/{bad}", data={"List-Unsubscribe": "One-Click"})).status == 400
            assert (await client.get(f"/u/{bad}")).status == 400
        assert (await client.post(f"/u/{token}", data={"List-Unsubscribe": "Yes"})).status == 400
        big = {"List-Unsubscribe": "One-Click", "padding": "x" * 10_000}
        assert (await client.post(f"/u/{token}", data=big)).status == 413
        assert (await client.post(f"/u/{token}", data=b"List-Unsubscribe=One-Click")).status == 400  # no form
        assert len(published) == 1

        async def failing(event: CustomerEvent, key: str) -> None:
            raise OSError("broker down")

        metrics_page = await (await client.get("/metrics")).text()
        name = "orchestrator_connector_unsubscribes_total"
        assert f'{name}{{channel="email",outcome="done"}} 1.0' in metrics_page
        assert f'{name}{{channel="email",outcome="refused"}} 6.0' in metrics_page
        assert (await client.get("/healthz")).status == 200

    web2 = ConnectorWeb("127.0.0.1", 0, metrics, routes=unsubscribe_routes([KEY], failing, metrics))
    async with TestClient(TestServer(web2.app)) as client:
        token = sign_token(UnsubscribeScope("cust-ada", "email"), KEY)
        again = await client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert again.status == 503  # the client tries again
    assert (
        metrics.registry.get_sample_value(
            "orchestrator_connector_unsubscribes_total", {"channel": "email", "outcome": "failed"}
        )
        == 1
    )


async def test_a_connector_that_cannot_reach_kafka_fails_at_once_and_closes_what_it_opened() -> None:
    settings = load_settings(
        environ={
            "ORCH_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens there
            "ORCH_EMAIL_FROM": "news@shop.example",
            "ORCH_CONNECTOR_PUBLIC_URL": "https://mail.example",
            "ORCH_UNSUBSCRIBE_KEY": KEY,
            "ORCH_CONNECTOR_WEB_PORT": str(free_port()),
        }
    )
    connector = EmailConnector(settings)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(connector.run(asyncio.Event()), 30)
    assert connector.runtime._producer is None
    assert connector.web._runner is None
