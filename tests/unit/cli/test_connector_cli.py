"""``orchestrator connector email``: its options, and a configuration it refuses before it connects."""

from __future__ import annotations

import os

import pytest

from orchestrator.cli import build_parser, main


def test_email_options_override_the_settings() -> None:
    args = build_parser().parse_args(
        [
            "connector",
            "email",
            "--smtp-host",
            "smtp.example",
            "--smtp-port",
            "465",
            "--tls",
            "--from",
            "a@b.example",
        ]
    )
    assert (args.smtp_host, args.smtp_port, args.smtp_security, args.email_from) == (
        "smtp.example",
        465,
        "tls",
        "a@b.example",
    )
    assert build_parser().parse_args(["connector", "email"]).smtp_security is None  # the setting's default
    with pytest.raises(SystemExit):
        build_parser().parse_args(["connector", "email", "--tls", "--starttls"])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "email_from is not set"),
        ({"ORCH_EMAIL_FROM": "news@shop.example"}, "connector_public_url is not set"),
        (
            {"ORCH_EMAIL_FROM": "news@shop.example", "ORCH_CONNECTOR_PUBLIC_URL": "https://mail.example"},
            "unsubscribe_key is not set",
        ),
        (
            {
                "ORCH_EMAIL_FROM": "not an address",
                "ORCH_CONNECTOR_PUBLIC_URL": "https://mail.example",
                "ORCH_UNSUBSCRIBE_KEY": "k" * 32,
            },
            "email_from 'not an address'",
        ),
    ],
)
def test_email_refuses_an_incomplete_configuration_before_it_connects(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("ORCH_EMAIL_FROM", "ORCH_CONNECTOR_PUBLIC_URL", "ORCH_UNSUBSCRIBE_KEY", "ORCH_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORCH_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens: it must not get there
    assert main(["connector", "email"]) == 2
    assert message in capsys.readouterr().err


def test_sms_and_push_options_override_the_settings() -> None:
    args = build_parser().parse_args(
        [
            "connector",
            "sms",
            "--account-sid",
            "AC1",
            "--messaging-service",
            "MG1",
            "--status-callback",
            "https://h",
        ]
    )
    assert (args.account_sid, args.twilio_from, args.messaging_service, args.status_callback) == (
        "AC1",
        None,
        "MG1",
        "https://h",
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["connector", "sms", "--from", "+15005550006", "--messaging-service", "MG1"]
        )
    args = build_parser().parse_args(["connector", "push", "--credentials", "sa.json", "--project", "p"])
    assert (str(args.credentials), args.project) == ("sa.json", "p")


ACCOUNT = "AC" + "0" * 32


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["sms"], {}, "twilio_account_sid is not set"),
        (["sms", "--account-sid", ACCOUNT], {}, "twilio_auth_token is not set"),
        (["sms", "--account-sid", ACCOUNT], {"ORCH_TWILIO_AUTH_TOKEN": "t"}, "set one of twilio_from"),
        (
            ["sms", "--account-sid", ACCOUNT, "--from", "+15005550006"],
            {"ORCH_TWILIO_AUTH_TOKEN": "t", "ORCH_TWILIO_BASE_URL": "http://api.twilio.com"},
            "on loopback only",
        ),
        (["push"], {}, "fcm_credentials_file is not set"),
        (["push", "--credentials", "/nonexistent/sa.json"], {}, "cannot be read"),
    ],
)
def test_sms_and_push_refuse_an_incomplete_configuration_before_they_connect(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [n for n in os.environ if n.startswith(("ORCH_TWILIO_", "ORCH_FCM_"))]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("ORCH_CONFIG", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORCH_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens: it must not get there
    assert main(["connector", *argv]) == 2
    assert message in capsys.readouterr().err
