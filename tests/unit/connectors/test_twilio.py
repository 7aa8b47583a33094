"""The SMS provider's pure parts (connectors/twilio.py, mobile_render.py): the configuration it refuses,
the request it builds, how every answer of Twilio is classified, the plain and template renderings and
their limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import orjson
import pytest

from orchestrator.config import Settings
from orchestrator.connectors.errors import (
    PermanentError,
    ProviderUnavailable,
    RenderError,
    TransientError,
    UnknownOutcome,
)
from orchestrator.connectors.httpclient import HttpAnswer
from orchestrator.connectors.mobile_render import MAX_SMS_CHARS, TemplateSmsRenderer, render_sms
from orchestrator.connectors.twilio import TwilioConfig, TwilioProvider, classify_answer, e164
from orchestrator.contracts import ChannelAction
from orchestrator.core.template import TemplateRegistry, load_template_text
from orchestrator.exceptions import ConfigError

ACCOUNT = "AC" + "0123456789abcdef" * 2
KEY = "SK" + "fedcba9876543210" * 2
SERVICE = "MG" + "00112233445566778899aabbccddeeff"


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {
        "twilio_account_sid": ACCOUNT,
        "twilio_auth_token": "auth-token-secret",
        "twilio_from": "+15005550006",
    }
    return Settings.model_validate({k: v for k, v in (base | values).items() if v is not None})


def sms(n: int = 1, recipient: str = "+15551230001", **extra: Any) -> ChannelAction:
    return ChannelAction.model_validate(
        {
            "action_id": f"act_{n}",
            "channel": "sms",
            "category": "marketing",
            "customer_id": "cust-ada",
            "recipient": recipient,
            "journey_id": "welcome",
            "journey_version": 1,
            "step_id": "text",
            "template_id": "welcome_sms_v1",
            "personalization": {"first_name": "Ada"},
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            **extra,
        }
    )


# -- configuration --------------------------------------------------------------------------------
def test_the_auth_token_or_an_api_key_authenticates() -> None:
    config = TwilioConfig.from_settings(settings())
    assert (config.username, config.password) == (ACCOUNT, "auth-token-secret")
    assert config.messages_url == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert "auth-token-secret" not in repr(config)
    rotating = TwilioConfig.from_settings(settings(twilio_auth_token="new-token, old-token"))
    assert rotating.password == "new-token"
    keyed = TwilioConfig.from_settings(
        settings(twilio_auth_token=None, twilio_api_key_sid=KEY, twilio_api_key_secret="key-secret")
    )
    assert (keyed.username, keyed.password) == (KEY, "key-secret")
    assert keyed.messages_url.endswith(f"/Accounts/{ACCOUNT}/Messages.json")  # the account's, not the key's


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"twilio_account_sid": ""}, "twilio_account_sid is not set"),
        ({"twilio_account_sid": "AC123"}, "expected AC and 32 hexadecimal digits"),
        ({"twilio_auth_token": None}, "twilio_auth_token is not set"),
        ({"twilio_auth_token": None, "twilio_api_key_sid": KEY}, "go together"),
        ({"twilio_api_key_sid": "AK1", "twilio_api_key_secret": "s"}, "expected SK"),
        ({"twilio_from": ""}, "set one of twilio_from"),
        ({"twilio_messaging_service_sid": SERVICE}, "set one of twilio_from"),
        ({"twilio_from": "", "twilio_messaging_service_sid": "MG1"}, "expected MG"),
        ({"twilio_from": "0612345678"}, "twilio_from '0612345678'"),
        ({"twilio_base_url": "http://api.twilio.com"}, "on loopback only"),
        ({"twilio_base_url": "ftp://x"}, "expected an https:// URL"),
        ({"twilio_status_callback_url": "/receipts/twilio"}, "expected an absolute https:// URL"),
    ],
)
def test_a_configuration_that_cannot_send_is_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TwilioConfig.from_settings(settings(**values))


def test_loopback_http_and_senders() -> None:
    local = TwilioConfig.from_settings(settings(twilio_base_url="http://127.0.0.1:8123/"))
    assert local.messages_url.startswith("http://127.0.0.1:8123/2010-04-01/")
    assert TwilioConfig.from_settings(settings(twilio_from="Shop News")).sender == "Shop News"
    assert TwilioConfig.from_settings(settings(twilio_from="+1 (500) 555-0006")).sender == "+15005550006"


# -- the request ----------------------------------------------------------------------------------
def test_the_form_names_recipient_sender_body_and_the_status_callback_with_the_action() -> None:
    provider = TwilioProvider(
        TwilioConfig.from_settings(
            settings(twilio_status_callback_url="https://hooks.shop.example/twilio/status?src=sms")
        )
    )
    message = provider.render(sms(recipient="+44 20 7946-0018", personalization={"body": "Hi Ada"}))
    form = parse_qsl(message.form.decode(), strict_parsing=True)
    assert [name for name, _ in form] == ["To", "From", "Body", "StatusCallback"]
    fields = dict(form)
    assert fields["To"] == "+442079460018"
    assert fields["From"] == "+15005550006"
    assert fields["Body"] == "Hi Ada"
    callback = urlsplit(fields["StatusCallback"])
    assert callback.netloc == "hooks.shop.example"
    assert callback.path == "/twilio/status"
    assert parse_qs(callback.query) == {"src": ["sms"], "action_id": ["act_1"], "customer_key": ["cust-ada"]}
    service = TwilioProvider(
        TwilioConfig.from_settings(settings(twilio_from="", twilio_messaging_service_sid=SERVICE))
    )
    fields = dict(parse_qsl(service.render(sms()).form.decode()))
    assert fields["MessagingServiceSid"] == SERVICE
    assert "From" not in fields
    assert "StatusCallback" not in fields  # not configured: no callbacks


@pytest.mark.parametrize("recipient", ["0612345678", "+0123456", "ada@example.com", "+1 555", "+1555abc4567"])
def test_a_recipient_that_is_no_e164_number_is_a_render_error(recipient: str) -> None:
    assert e164(recipient) is None
    provider = TwilioProvider(TwilioConfig.from_settings(settings()))
    with pytest.raises(RenderError, match=r"E\.164"):
        provider.render(sms(recipient=recipient))


# -- the answers ----------------------------------------------------------------------------------
def answer(status: int, body: dict[str, Any] | bytes | None = None, **headers: str) -> HttpAnswer:
    data = body if isinstance(body, bytes) else orjson.dumps(body) if body is not None else b""
    return HttpAnswer(status, {k.replace("_", "-"): v for k, v in headers.items()}, data)


def error(code: int, message: str, status: int = 400) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def test_accepted_answers() -> None:
    for status in (200, 201, 202):
        assert classify_answer(answer(status, {"sid": "SM1", "status": "queued"})) is None


def test_a_400_is_refused_for_good_with_twilios_code_and_message() -> None:
    got = classify_answer(answer(400, error(21211, "The 'To' number +1555 is not a valid phone number.")))
    assert isinstance(got, PermanentError)
    assert got.reason == "rejected"
    assert str(got) == (
        "Twilio 400 error 21211: The 'To' number +1555 is not a valid phone number. "
        "(https://www.twilio.com/docs/errors/21211)"
    )
    unreadable = classify_answer(answer(400, b"<html>Bad Request</html>"))
    assert isinstance(unreadable, PermanentError)
    assert "<html>Bad Request</html>" in str(unreadable)


@pytest.mark.parametrize("code", [21212, 21603, 21606])
def test_a_400_that_blames_the_sender_configuration_waits_instead(code: int) -> None:
    got = classify_answer(answer(400, error(code, "From is wrong")))
    assert isinstance(got, ProviderUnavailable)
    assert f"error {code}" in str(got)
    assert "twilio_from" in str(got)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_refused_credentials_or_account_are_the_configuration_not_the_message(status: int) -> None:
    got = classify_answer(answer(status, error(20003, "Authenticate", status)))
    assert isinstance(got, ProviderUnavailable)
    assert "twilio_account_sid" in str(got)


def test_too_many_requests_and_server_errors() -> None:
    throttled = classify_answer(answer(429, error(20429, "Too Many Requests", 429), Retry_After="7"))
    assert type(throttled) is TransientError
    assert throttled.retry_after == 7.0
    failed = classify_answer(answer(500, error(20500, "Internal Server Error", 500)))
    assert type(failed) is TransientError
    for status in (502, 503):
        down = classify_answer(answer(status, b"", Retry_After="3"))
        assert isinstance(down, ProviderUnavailable)
        assert down.retry_after == 3.0
    assert isinstance(classify_answer(answer(504)), UnknownOutcome)  # Twilio may have taken it
    assert isinstance(classify_answer(answer(413, b"too large")), PermanentError)
    assert isinstance(classify_answer(answer(302, b"", Location="https://x")), ProviderUnavailable)


# -- rendering --------------------------------------------------------------------------------------
def test_the_plain_sms() -> None:
    assert render_sms(sms(personalization={"body": "Your code is 1234"})).body == "Your code is 1234"
    lines = render_sms(sms(personalization={"name": "Ada", "items": [1, 2], "a": {"b": 1}})).body
    assert lines == 'a: {"b":1}\nitems: [1,2]\nname: Ada'
    assert render_sms(sms(personalization={})).body == "welcome_sms_v1"
    assert len(render_sms(sms(personalization={"body": "x" * MAX_SMS_CHARS})).body) == MAX_SMS_CHARS
    with pytest.raises(RenderError, match="1601 characters, over 1600"):
        render_sms(sms(personalization={"body": "x" * (MAX_SMS_CHARS + 1)}))


SMS_TEMPLATE = """kind: template
id: welcome_sms_v1
version: 3
channel: sms
variables:
  first_name: {required: true}
  padding: {default: ""}
body: "Hi {{ first_name }}, welcome! {{ padding }}"
"""


def test_a_deployed_template_renders_the_body_and_names_its_version() -> None:
    registry = TemplateRegistry()
    registry.deploy(load_template_text(SMS_TEMPLATE), 0)
    render = TemplateSmsRenderer(registry)
    parts = render(sms())
    assert (parts.body, parts.template) == ("Hi Ada, welcome!", "welcome_sms_v1 v3")
    with pytest.raises(RenderError, match="'first_name'"):
        render(sms(personalization={}))
    with pytest.raises(RenderError, match="no template 'other'"):
        render(sms(template_id="other"))
    with pytest.raises(RenderError, match="1600"):  # the template's own limit: never cut
        render(sms(personalization={"first_name": "Ada", "padding": "x" * 1600}))
    assert TemplateSmsRenderer()(sms()).body == "first_name: Ada"  # none deployed: the plain one


def test_with_the_receipts_links_the_status_callback_is_signed_and_names_campaign_and_journey() -> None:
    from orchestrator.connectors.receipts import ReceiptLinks

    links = ReceiptLinks("https://hooks.shop.example", ["k" * 32])
    provider = TwilioProvider(TwilioConfig.from_settings(settings()), status_url=links.sms_status_url)
    fields = dict(parse_qsl(provider.render(sms()).form.decode()))
    assert fields["StatusCallback"] == links.sms_status_url(sms())
    assert fields["StatusCallback"].startswith("https://hooks.shop.example/twilio/status/")
    # the setting, when given, is the callback (the receiver takes both)
    explicit = TwilioProvider(
        TwilioConfig.from_settings(settings(twilio_status_callback_url="https://h.example/twilio/status")),
        status_url=links.sms_status_url,
    )
    callback = dict(parse_qsl(explicit.render(sms()).form.decode()))["StatusCallback"]
    assert callback.startswith("https://h.example/twilio/status?")
