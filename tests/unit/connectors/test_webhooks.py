"""The webhooks receiver without Kafka: Twilio's request signature (the values of Twilio's own helper
library tests), and the status callback and push receipt endpoints over real HTTP on loopback (a publisher
that collects the events)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.connectors.metrics import ConnectorMetrics
from orchestrator.connectors.receipts import ReceiptLinks
from orchestrator.connectors.web import ConnectorWeb
from orchestrator.connectors.webhooks import (
    MAX_WEBHOOK_BODY_BYTES,
    twilio_signature,
    twilio_signature_valid,
    webhook_routes,
)
from orchestrator.contracts import ChannelAction, CustomerEvent

KEY = "receipts-key-0123456789"
AUTH, OLD_AUTH = "twilio-auth-token-0123", "twilio-old-token-0123"
BASE = "https://hooks.shop.example"
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

# Twilio's example (twilio-python's tests/unit/test_request_validator.py, the docs' "Validating requests")
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
    ("Caller", "+14158675309"),
]


def test_twilio_signature_is_twilios_documented_algorithm() -> None:
    assert twilio_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    # a parameter given twice: names sorted, then values
    twice = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature(DOC_TOKEN, DOC_URL, twice) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    # the port: Twilio may sign the URL with the scheme's port or without it
    with_443 = DOC_URL.replace(".com", ".com:443")
    assert twilio_signature(DOC_TOKEN, with_443, DOC_PARAMS) == "kvajT1Ptam85bY51eRf/AJRuM3w="
    assert twilio_signature_valid("kvajT1Ptam85bY51eRf/AJRuM3w=", DOC_URL, DOC_PARAMS, [DOC_TOKEN])
    assert twilio_signature_valid("RSOYDt4T1cUTdK1PDd93/VVr8B8=", with_443, DOC_PARAMS, [DOC_TOKEN])
    http_80 = "0ZXoZLH/DfblKGATFgpif+LLRf4="  # http://mycompany.com:80/...
    assert twilio_signature_valid(http_80, DOC_URL.replace("https", "http"), DOC_PARAMS, [DOC_TOKEN])
    http_1234 = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="  # http://mycompany.com:1234/...
    assert twilio_signature_valid(
        http_1234, DOC_URL.replace("https", "http").replace(".com", ".com:1234"), DOC_PARAMS, [DOC_TOKEN]
    )
    # anything changed: refused
    good = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_signature_valid(good, DOC_URL, DOC_PARAMS, ["other", DOC_TOKEN])  # rotation: either token
    assert not twilio_signature_valid(good, DOC_URL, DOC_PARAMS, ["other"])
    assert not twilio_signature_valid(good, DOC_URL + "&baz=3", DOC_PARAMS, [DOC_TOKEN])
    assert not twilio_signature_valid(good, DOC_URL, [*DOC_PARAMS[:-1], ("Caller", "+1")], [DOC_TOKEN])
    assert not twilio_signature_valid(good, DOC_URL, DOC_PARAMS, [])
    assert not twilio_signature_valid("", DOC_URL, DOC_PARAMS, [DOC_TOKEN])


def sms_action(**extra: Any) -> ChannelAction:
    values: dict[str, Any] = {
        "action_id": "act_sms_1",
        "channel": "sms",
        "category": "marketing",
        "customer_id": "phone:+15550100",
        "recipient": "+15550100",
        "journey_id": "welcome",
        "journey_version": 1,
        "step_id": "welcome_sms",
        "template_id": "welcome_sms_v1",
        "campaign": "welcome",
        "created_at": AT,
        **extra,
    }
    return ChannelAction.model_validate(values)


def status_form(status: str, **extra: str) -> list[tuple[str, str]]:
    return [
        ("AccountSid", "AC" + "0" * 32),
        ("From", "+15550199"),
        ("MessageSid", "SM" + "1" * 32),
        ("MessageStatus", status),
        ("SmsSid", "SM" + "1" * 32),
        ("SmsStatus", status),
        ("To", "+15550100"),
        *extra.items(),
    ]


async def test_status_callbacks_publish_delivered_and_failed_once_twilio_and_the_token_are_verified() -> None:
    published: list[tuple[CustomerEvent, str]] = []
    failing = False

    async def publish(event: CustomerEvent, key: str) -> None:
        if failing:
            raise OSError("broker down")
        published.append((event, key))

    metrics = ConnectorMetrics(process_metrics=False)
    routes = webhook_routes(BASE, [KEY], [AUTH, OLD_AUTH], publish, metrics, clock=lambda: AT)
    web = ConnectorWeb("127.0.0.1", 0, metrics, routes=routes, max_body=MAX_WEBHOOK_BODY_BYTES)
    a = sms_action()
    callback = ReceiptLinks(BASE, [KEY]).sms_status_url(a)
    path = urlsplit(callback).path

    async def post(
        path: str, form: list[tuple[str, str]], token: str | None = AUTH, signed_url: str | None = None
    ) -> int:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if token is not None:
            headers["X-Twilio-Signature"] = twilio_signature(token, signed_url or BASE + path, form)
        answer = await client.post(path, data=urlencode(form), headers=headers)
        return answer.status

    async with TestClient(TestServer(web.app)) as client:
        assert await post(path, status_form("delivered")) == 204
        [(event, key)] = published
        assert (event.type, key, event.identifiers.items()) == (
            "sms.delivered",
            "phone:+15550100",
            [("customer_key", "phone:+15550100")],
        )
        assert (event.action_id, event.campaign, event.journey, event.occurred_at) == (
            "act_sms_1",
            "welcome",
            "welcome",
            AT,
        )
        assert event.event_id == "rcpt-act_sms_1-delivered"
        assert event.properties == {
            "provider": "twilio",
            "status": "delivered",
            "message_sid": "SM" + "1" * 32,
        }

        assert await post(path, status_form("undelivered", ErrorCode="30003"), token=OLD_AUTH) == 204
        failed = published[-1][0]
        assert (failed.type, failed.properties["error_code"], failed.properties["status"]) == (
            "sms.failed",
            "30003",
            "undelivered",
        )
        for status in ("queued", "sending", "sent", "accepted", "read"):
            assert await post(path, status_form(status)) == 204  # no receipt: nothing published
        assert len(published) == 2

        # forged: no signature, another token's, a signature over another URL or other fields: 403
        assert await post(path, status_form("delivered"), token=None) == 403
        assert await post(path, status_form("delivered"), token="someone-elses-token") == 403
        assert await post(path, status_form("delivered"), signed_url=BASE + "/twilio/status/x") == 403
        form = status_form("failed")
        headers = {
            "X-Twilio-Signature": twilio_signature(AUTH, BASE + path, form),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        tampered = urlencode([(k, "delivered" if k == "MessageStatus" else v) for k, v in form])
        assert (await client.post(path, data=tampered, headers=headers)).status == 403
        # signed by Twilio, but the token is not ours: 400
        bad = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
        assert await post(bad, status_form("delivered")) == 400
        assert len(published) == 2

        # the action named in the query (Twilio's signature covers it): no campaign, no journey
        query = "/twilio/status?" + urlencode({"action_id": "act_sms_2", "customer_key": "cust-bob"})
        assert await post(query, status_form("delivered")) == 204
        assert (published[-1][1], published[-1][0].action_id, published[-1][0].campaign) == (
            "cust-bob",
            "act_sms_2",
            None,
        )
        assert await post("/twilio/status?action_id=act_3", status_form("delivered")) == 400

        big = status_form("delivered", Body="x" * MAX_WEBHOOK_BODY_BYTES)
        assert await post(path, big) == 413
        failing = True
        assert await post(path, status_form("delivered")) == 503  # Twilio may call again
    requests = "orchestrator_connector_receipt_requests_total"

    def count(outcome: str) -> float | None:
        return metrics.registry.get_sample_value(requests, {"endpoint": "twilio_status", "outcome": outcome})

    assert (count("published"), count("ignored"), count("forbidden"), count("refused"), count("failed")) == (
        3,
        5,
        4,
        2,
        1,
    )


async def test_the_sms_connectors_own_callback_url_is_taken_as_twilio_signs_it() -> None:
    """The SMS connector (connectors/twilio.py) sends twilio_status_callback_url with the action in its
    query: with that setting at {public URL}/twilio/status, the receiver takes Twilio's signed callback."""
    from yarl import URL

    from orchestrator.connectors.twilio import TwilioConfig

    published: list[tuple[CustomerEvent, str]] = []

    async def publish(event: CustomerEvent, key: str) -> None:
        published.append((event, key))

    metrics = ConnectorMetrics(process_metrics=False)
    web = ConnectorWeb("127.0.0.1", 0, metrics, routes=webhook_routes(BASE, [KEY], [AUTH], publish, metrics))
    config = TwilioConfig("AC" + "0" * 32, "AC" + "0" * 32, "pw", status_callback_url=f"{BASE}/twilio/status")
    a = sms_action(customer_id="email:ann@example.com")
    callback = config.status_callback(a)
    assert callback is not None
    form = status_form("delivered")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(AUTH, callback, form),  # Twilio signs the URL it was given
    }
    async with TestClient(TestServer(web.app)) as client:
        local = str(client.make_url("/")).rstrip("/") + callback.removeprefix(BASE)
        answer = await client.session.post(URL(local, encoded=True), data=urlencode(form), headers=headers)
        assert answer.status == 204
    [(event, key)] = published
    assert (event.type, key, event.action_id, event.identifiers.customer_key) == (
        "sms.delivered",
        "email:ann@example.com",
        "act_sms_1",
        "email:ann@example.com",
    )


async def test_push_receipts_from_the_app_and_no_twilio_route_without_its_token() -> None:
    published: list[tuple[CustomerEvent, str]] = []

    async def publish(event: CustomerEvent, key: str) -> None:
        published.append((event, key))

    metrics = ConnectorMetrics(process_metrics=False)
    web = ConnectorWeb("127.0.0.1", 0, metrics, routes=webhook_routes(BASE, [KEY], [], publish, metrics))
    a = sms_action(channel="push", recipient="device-token", customer_id="cust-ada")
    url = ReceiptLinks(BASE, [KEY]).push_receipt_url(a)
    path = urlsplit(url).path
    async with TestClient(TestServer(web.app)) as client:
        assert (await client.post(path, json={"event": "delivered"})).status == 204
        assert (await client.post(path, json={"event": "opened"})).status == 204
        assert [(e.type, k, e.action_id, e.campaign) for e, k in published] == [
            ("push.delivered", "cust-ada", "act_sms_1", "welcome"),
            ("push.opened", "cust-ada", "act_sms_1", "welcome"),
        ]
        for body in ({"event": "clicked"}, {"event": None}, ["opened"]):
            assert (await client.post(path, json=body)).status == 400
        assert (await client.post(path, data=b"not json")).status == 400
        assert (await client.post(path[:-2] + "AA", json={"event": "opened"})).status == 400
        sms = urlsplit(ReceiptLinks(BASE, [KEY]).sms_status_url(sms_action())).path
        assert (
            await client.post(sms.replace("/twilio/status/", "/push/"), json={"event": "opened"})
        ).status == 400
        assert (await client.post(sms, data=urlencode(status_form("delivered")))).status == 404
        assert (await client.get(path)).status == 405
    assert len(published) == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "connector_public_url"),
        ({"ORCH_CONNECTOR_PUBLIC_URL": "https://hooks.example"}, "unsubscribe_key is not set"),
        ({"ORCH_CONNECTOR_PUBLIC_URL": "hooks.example", "ORCH_UNSUBSCRIBE_KEY": "k" * 32}, "public base URL"),
    ],
)
def test_the_receiver_refuses_an_incomplete_configuration_before_it_connects(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.cli import main

    for name in (
        "ORCH_CONNECTOR_PUBLIC_URL",
        "ORCH_UNSUBSCRIBE_KEY",
        "ORCH_CONFIG",
        "ORCH_TWILIO_AUTH_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORCH_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens: it must not get there
    assert main(["connector", "webhooks"]) == 2
    assert message in capsys.readouterr().err
