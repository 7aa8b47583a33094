"""``orchestrator connector email``: its options, and a configuration it refuses before it connects."""

from __future__ import annotations

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
