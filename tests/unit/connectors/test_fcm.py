"""The push provider's pure parts (connectors/fcm.py, mobile_render.py): the service-account file, the JWT
assertion (claims, and its RS256 signature verified with the public key), the access token kept until
shortly before it expires (an injected clock), the request, how every answer of FCM is classified, and
the renderings and their limits."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs

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
from orchestrator.connectors.fcm import (
    GRANT_TYPE,
    AccessTokens,
    FcmConfig,
    FcmProvider,
    ServiceAccount,
    classify_answer,
    jwt_assertion,
)
from orchestrator.connectors.httpclient import HttpAnswer, HttpClient
from orchestrator.connectors.mobile_render import MAX_PUSH_BYTES, TemplatePushRenderer, render_push
from orchestrator.contracts import ChannelAction
from orchestrator.core.template import TemplateRegistry, load_template_text
from orchestrator.exceptions import ConfigError
from orchestrator.testing.service_account import ServiceAccountFile, make_service_account, verify_assertion

TOKEN_URI = "http://127.0.0.1:9/token"


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> ServiceAccountFile:
    return make_service_account(tmp_path_factory.mktemp("sa"), TOKEN_URI)


def push(n: int = 1, recipient: str = "dev-token-1:APA91b", **extra: Any) -> ChannelAction:
    return ChannelAction.model_validate(
        {
            "action_id": f"act_{n}",
            "channel": "push",
            "category": "marketing",
            "customer_id": "cust-ada",
            "recipient": recipient,
            "journey_id": "cart",
            "journey_version": 1,
            "step_id": "nudge",
            "template_id": "cart_push_v2",
            "personalization": {"title": "Your cart", "body": "2 items wait", "items": 2},
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            **extra,
        }
    )


# -- the service account and its assertion ----------------------------------------------------------
def test_the_service_account_file_is_read_and_its_project_used(account: ServiceAccountFile) -> None:
    config = FcmConfig.from_settings(Settings(fcm_credentials_file=account.path))
    assert config.account.client_email == account.client_email
    assert config.account.token_uri == TOKEN_URI
    assert config.project_id == "demo-project"
    assert config.send_url == "https://fcm.googleapis.com/v1/projects/demo-project/messages:send"
    assert "PRIVATE" not in repr(config)
    other = FcmConfig.from_settings(Settings(fcm_credentials_file=account.path, fcm_project_id="shop-prod"))
    assert other.send_url.endswith("/v1/projects/shop-prod/messages:send")


def test_a_service_account_file_that_cannot_sign_is_refused(
    tmp_path: Path, account: ServiceAccountFile
) -> None:
    info = orjson.loads(account.path.read_bytes())

    def refused(changed: dict[str, Any] | bytes, message: str) -> None:
        path = tmp_path / "sa.json"
        path.write_bytes(changed if isinstance(changed, bytes) else orjson.dumps(changed))
        with pytest.raises(ConfigError, match=message):
            FcmConfig.from_settings(Settings(fcm_credentials_file=path))

    with pytest.raises(ConfigError, match="fcm_credentials_file is not set"):
        FcmConfig.from_settings(Settings())
    with pytest.raises(ConfigError, match="cannot be read"):
        FcmConfig.from_settings(Settings(fcm_credentials_file=tmp_path / "missing.json"))
    refused(b"{nope", "not JSON")
    refused(info | {"type": "authorized_user"}, 'expected "service_account"')
    refused({k: v for k, v in info.items() if k != "client_email"}, "'client_email' is missing")
    refused(info | {"private_key": "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n"}, "PEM")
    refused(info | {"token_uri": "http://oauth2.example/token"}, "on loopback only")
    refused({k: v for k, v in info.items() if k != "project_id"}, "fcm_project_id is not set")


def test_the_assertion_is_signed_rs256_with_googles_claims(account: ServiceAccountFile) -> None:
    sa = ServiceAccount.from_file(account.path)
    assertion = jwt_assertion(sa, 1_767_225_600.7)
    header, claims = verify_assertion(assertion, account.public_key)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef0123456789abcdef01234567"}
    assert claims == {
        "iss": account.client_email,
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "aud": TOKEN_URI,
        "iat": 1_767_225_600,
        "exp": 1_767_225_600 + 3600,
    }
    head, _, signature = assertion.split(".")
    forged = orjson.dumps(claims | {"scope": "https://www.googleapis.com/auth/cloud-platform"})
    tampered = f"{head}.{base64.urlsafe_b64encode(forged).rstrip(b'=').decode()}.{signature}"
    with pytest.raises(ValueError, match="does not verify"):
        verify_assertion(tampered, account.public_key)
    stranger = make_service_account(Path(account.path.parent / "other"), TOKEN_URI)
    with pytest.raises(ValueError, match="does not verify"):
        verify_assertion(assertion, stranger.public_key)


# -- the access token -------------------------------------------------------------------------------
class TokenServer:
    """Answers token requests as Google's token server (checking each assertion), or as scripted."""

    def __init__(self, account: ServiceAccountFile, clock: list[float]) -> None:
        self.account, self.clock = account, clock
        self.assertions: list[dict[str, Any]] = []
        self.answers: list[HttpAnswer] = []

    async def post(
        self, url: str, *, data: bytes, headers: dict[str, str], sent_is_unknown: bool
    ) -> HttpAnswer:
        assert url == TOKEN_URI
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert sent_is_unknown is False
        form = {k: v[0] for k, v in parse_qs(data.decode(), strict_parsing=True).items()}
        assert form["grant_type"] == GRANT_TYPE
        _, claims = verify_assertion(form["assertion"], self.account.public_key)
        assert claims["iat"] == int(self.clock[0])
        self.assertions.append(claims)
        if self.answers:
            return self.answers.pop(0)
        token = f"ya29.token-{len(self.assertions)}"
        return HttpAnswer(
            200, {}, orjson.dumps({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
        )


async def test_the_token_is_kept_until_shortly_before_it_expires(account: ServiceAccountFile) -> None:
    clock = [1_000_000.0]
    server = TokenServer(account, clock)
    tokens = AccessTokens(
        ServiceAccount.from_file(account.path), cast(HttpClient, server), clock=lambda: clock[0]
    )
    assert await tokens.get() == "ya29.token-1"
    clock[0] += 3599 - 301
    assert await tokens.get() == "ya29.token-1"  # still 301 s to go: kept
    clock[0] += 2
    assert await tokens.get() == "ya29.token-2"  # within 300 s of its expiry: exchanged
    assert tokens.exchanges == 2
    tokens.invalidate("ya29.token-1")  # an old token refused: the current one stays
    assert await tokens.get() == "ya29.token-2"
    tokens.invalidate("ya29.token-2")
    assert await tokens.get() == "ya29.token-3"
    assert [c["iat"] for c in server.assertions] == [1_000_000, 1_003_300, 1_003_300]


async def test_a_refused_token_exchange_makes_the_provider_unavailable(account: ServiceAccountFile) -> None:
    clock = [1_000_000.0]
    server = TokenServer(account, clock)
    server.answers = [
        HttpAnswer(400, {}, b'{"error":"invalid_grant","error_description":"Invalid JWT Signature."}'),
        HttpAnswer(503, {"Retry-After": "4"}, b"down"),
        HttpAnswer(200, {}, b'{"token_type":"Bearer"}'),
    ]
    tokens = AccessTokens(
        ServiceAccount.from_file(account.path), cast(HttpClient, server), clock=lambda: clock[0]
    )
    with pytest.raises(
        ProviderUnavailable, match=r"invalid_grant: Invalid JWT Signature\. — check the service"
    ):
        await tokens.get()
    with pytest.raises(ProviderUnavailable, match="answered 503") as down:
        await tokens.get()
    assert down.value.retry_after == 4.0
    with pytest.raises(ProviderUnavailable, match="no access_token"):
        await tokens.get()
    assert await tokens.get() == "ya29.token-4"
    assert tokens.exchanges == 1


async def test_a_short_lived_token_is_renewed_at_half_its_life(account: ServiceAccountFile) -> None:
    clock = [0.0]
    server = TokenServer(account, clock)
    server.answers = [HttpAnswer(200, {}, b'{"access_token":"short","expires_in":60}')]
    tokens = AccessTokens(
        ServiceAccount.from_file(account.path), cast(HttpClient, server), clock=lambda: clock[0]
    )
    assert await tokens.get() == "short"
    clock[0] = 29.0
    assert await tokens.get() == "short"
    clock[0] = 30.0
    assert await tokens.get() == "ya29.token-2"


# -- the request ------------------------------------------------------------------------------------
def test_the_message_names_the_device_the_notification_and_the_data(account: ServiceAccountFile) -> None:
    provider = FcmProvider(FcmConfig.from_settings(Settings(fcm_credentials_file=account.path)))
    message = provider.render(push())
    assert orjson.loads(message.payload) == {
        "message": {
            "token": "dev-token-1:APA91b",
            "notification": {"title": "Your cart", "body": "2 items wait"},
            "data": {"action_id": "act_1", "items": "2"},
        }
    }
    bare = orjson.loads(provider.render(push(personalization={})).payload)["message"]
    assert bare["notification"] == {"title": "cart_push_v2"}
    for bad in ("", "has space", "x" * 4097, "tab\there"):
        with pytest.raises(RenderError, match="registration token"):
            provider.render(push(recipient=bad or "x").model_copy(update={"recipient": bad}))


def test_with_the_receipts_links_the_data_carries_the_apps_receipt_url(account: ServiceAccountFile) -> None:
    from orchestrator.connectors.receipts import ReceiptLinks

    links = ReceiptLinks("https://hooks.shop.example", ["k" * 32])
    provider = FcmProvider(
        FcmConfig.from_settings(Settings(fcm_credentials_file=account.path)),
        receipt_url=links.push_receipt_url,
    )
    data = orjson.loads(provider.render(push()).payload)["message"]["data"]
    assert data["receipt_url"] == links.push_receipt_url(push())
    assert data["receipt_url"].startswith("https://hooks.shop.example/push/")


# -- the answers ------------------------------------------------------------------------------------
def fcm_answer(status: int, name: str, message: str, code: str | None = None, **headers: str) -> HttpAnswer:
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    if code:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        ]
    return HttpAnswer(
        status, {k.replace("_", "-"): v for k, v in headers.items()}, orjson.dumps({"error": error})
    )


def test_fcm_answers_are_classified() -> None:
    assert classify_answer(HttpAnswer(200, {}, b'{"name":"projects/p/messages/0:1"}')) is None
    invalid = classify_answer(
        fcm_answer(400, "INVALID_ARGUMENT", "The registration token is not valid", "INVALID_ARGUMENT")
    )
    assert isinstance(invalid, PermanentError)
    assert (invalid.reason, str(invalid)) == (
        "rejected",
        "FCM 400 INVALID_ARGUMENT: The registration token is not valid",
    )
    for status in (404, 410):
        gone = classify_answer(
            fcm_answer(status, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        )
        assert isinstance(gone, PermanentError)
        assert gone.reason == "unregistered"
        assert "UNREGISTERED" in str(gone)
    # a 404 that is not about the token: the project or the URL is wrong, not every customer's device
    assert isinstance(classify_answer(HttpAnswer(404, {}, b"<html>Not Found</html>")), ProviderUnavailable)
    mismatch = classify_answer(
        fcm_answer(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")
    )
    assert isinstance(mismatch, PermanentError)
    assert mismatch.reason == "rejected"
    denied = classify_answer(fcm_answer(403, "PERMISSION_DENIED", "Permission denied"))
    assert isinstance(denied, ProviderUnavailable)
    assert isinstance(classify_answer(fcm_answer(401, "UNAUTHENTICATED", "bad token")), ProviderUnavailable)
    quota = classify_answer(fcm_answer(429, "RESOURCE_EXHAUSTED", "quota", "QUOTA_EXCEEDED", Retry_After="9"))
    assert type(quota) is TransientError
    assert quota.retry_after == 9.0
    assert type(classify_answer(fcm_answer(500, "INTERNAL", "oops", "INTERNAL"))) is TransientError
    unavailable = classify_answer(
        fcm_answer(503, "UNAVAILABLE", "overloaded", "UNAVAILABLE", Retry_After="2")
    )
    assert isinstance(unavailable, ProviderUnavailable)
    assert unavailable.retry_after == 2.0
    assert isinstance(classify_answer(HttpAnswer(504, {}, b"")), UnknownOutcome)


# -- rendering ----------------------------------------------------------------------------------------
def test_the_plain_push_and_its_limits() -> None:
    parts = render_push(push(personalization={"title": "Hi", "body": "There", "n": 1, "tags": ["a"]}))
    assert (parts.title, parts.body, parts.data) == ("Hi", "There", {"n": "1", "tags": '["a"]'})
    with pytest.raises(RenderError, match="reserved by FCM"):
        render_push(push(personalization={"google.c.a": "x"}))
    with pytest.raises(RenderError, match="reserved by FCM"):
        render_push(push(personalization={"from": "x"}))
    with pytest.raises(RenderError, match=f"over {MAX_PUSH_BYTES}"):
        render_push(push(personalization={"title": "Hi", "blob": "x" * MAX_PUSH_BYTES}))


PUSH_TEMPLATE = """kind: template
id: cart_push_v2
version: 2
channel: push
variables:
  item_count: {default: 1}
title: Your cart misses you
body: "{{ item_count }} item{{ 's' if item_count != 1 else '' }} waiting for you."
data:
  deep_link: "shop://cart"
  items: "{{ item_count }}"
"""


def test_a_deployed_push_template_renders_title_body_and_data(account: ServiceAccountFile) -> None:
    registry = TemplateRegistry()
    registry.deploy(load_template_text(PUSH_TEMPLATE), 0)
    provider = FcmProvider(
        FcmConfig.from_settings(Settings(fcm_credentials_file=account.path)),
        renderer=TemplatePushRenderer(registry),
    )
    message = provider.render(push(personalization={"item_count": 3}))
    assert message.parts.template == "cart_push_v2 v2"
    assert orjson.loads(message.payload)["message"] == {
        "token": "dev-token-1:APA91b",
        "notification": {"title": "Your cart misses you", "body": "3 items waiting for you."},
        "data": {"action_id": "act_1", "deep_link": "shop://cart", "items": "3"},
    }
    with pytest.raises(RenderError, match="is a push template, the action goes by sms"):
        TemplatePushRenderer(registry)(push().model_copy(update={"channel": "sms"}))
