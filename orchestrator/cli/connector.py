"""``orchestrator connector sandbox|email|sms|push``: run a connector.

- ``sandbox``: a fake provider for every channel (demos and tests): consumes the action topics, drops
  duplicate action ids, applies the policy file's rate limits, and publishes
  ``<channel>.sent``/``<channel>.delivered`` (and scripted opens/clicks) to the raw events topic;
- ``email``: emails over SMTP through the connector runtime (docs/connectors.md): retries, dead letters,
  dedupe marks, the policy's rate limit shared by the replicas, unsubscribe links and their endpoint,
  opens and clicks, metrics;
- ``sms``: SMS through Twilio's Messages API, ``push``: push notifications through FCM HTTP v1, on the
  same runtime (their secrets from the environment or the config file, never options);
- ``webhooks``: the receiver of providers' and apps' receipts (Twilio's status callbacks, the app's push
  receipts), published as events (docs/connectors.md, "Receipts").
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.config import load_settings
from orchestrator.connectors.email import EmailConnector
from orchestrator.connectors.mobile import PushConnector, SmsConnector
from orchestrator.connectors.ratelimit import ChannelLimiter
from orchestrator.connectors.runtime import ConnectorStats, check_connector_topics
from orchestrator.connectors.sandbox import SandboxConnector, SandboxScript
from orchestrator.connectors.webhooks import WebhooksReceiver
from orchestrator.core.policy import RateLimit, load_policy_file
from orchestrator.exceptions import PolicyValidationError
from orchestrator.kafka.security import connection_check

__all__ = ["email_command", "push_command", "register", "sandbox_command", "sms_command", "webhooks_command"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("connector", help="run a connector (sandbox: a fake provider)")
    kinds = parser.add_subparsers(dest="connector", metavar="KIND", required=True)
    sandbox = kinds.add_parser("sandbox", help="fake provider: sent/delivered (and scripted opens/clicks)")
    sandbox.add_argument(
        "--policy", type=Path, default=None, metavar="FILE", help="policy file whose rate_limits apply"
    )
    sandbox.add_argument("--open-rate", type=float, default=0.0, help="share of actions opened (0..1)")
    sandbox.add_argument("--click-rate", type=float, default=0.0, help="share of actions clicked (0..1)")
    sandbox.add_argument(
        "--script",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON: rates and engagement per customer/campaign",
    )
    sandbox.add_argument("--group", default=None, help="consumer group (default <app_id>-sandbox-connector)")
    add_config_option(sandbox)
    sandbox.set_defaults(func=sandbox_command)

    email = kinds.add_parser(
        "email",
        help="emails over SMTP: retries, dead letters, dedupe, rate limits, unsubscribe links",
    )
    email.add_argument(
        "--policy",
        type=Path,
        default=None,
        metavar="FILE",
        help="policy file whose rate_limits.email applies",
    )
    email.add_argument("--smtp-host", default=None, help="SMTP server (ORCH_SMTP_HOST)")
    email.add_argument("--smtp-port", type=int, default=None, help="SMTP port (ORCH_SMTP_PORT; 587, 465)")
    security = email.add_mutually_exclusive_group()
    security.add_argument(
        "--starttls",
        dest="smtp_security",
        action="store_const",
        const="starttls",
        help="STARTTLS (the default)",
    )
    security.add_argument(
        "--tls", dest="smtp_security", action="store_const", const="tls", help="TLS from the start (port 465)"
    )
    security.add_argument(
        "--no-tls",
        dest="smtp_security",
        action="store_const",
        const="none",
        help="no TLS (a local relay only)",
    )
    email.add_argument(
        "--smtp-user",
        default=None,
        help="SMTP AUTH user (ORCH_SMTP_USERNAME); the password: ORCH_SMTP_PASSWORD",
    )
    email.add_argument("--from", dest="email_from", default=None, help="From address (ORCH_EMAIL_FROM)")
    email.add_argument(
        "--public-url",
        default=None,
        help="base URL of this connector's unsubscribe links as recipients reach it "
        "(ORCH_CONNECTOR_PUBLIC_URL); the signing key: ORCH_UNSUBSCRIBE_KEY",
    )
    email.add_argument("--web-host", default=None, help="HTTP bind address (ORCH_CONNECTOR_WEB_HOST)")
    email.add_argument("--web-port", type=int, default=None, help="HTTP port (ORCH_CONNECTOR_WEB_PORT)")
    email.add_argument("--group", default=None, help="consumer group (default <app_id>-connector-email)")
    add_config_option(email)
    email.set_defaults(func=email_command)
    _register_sms(kinds)
    _register_push(kinds)
    _register_webhooks(kinds)


def _common_options(parser: Any, channel: str) -> None:
    parser.add_argument(
        "--policy",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"policy file whose rate_limits.{channel} applies",
    )
    parser.add_argument("--web-host", default=None, help="HTTP bind address (ORCH_CONNECTOR_WEB_HOST)")
    parser.add_argument("--web-port", type=int, default=None, help="HTTP port (ORCH_CONNECTOR_WEB_PORT)")
    parser.add_argument(
        "--group", default=None, help=f"consumer group (default <app_id>-connector-{channel})"
    )
    add_config_option(parser)


def _register_sms(kinds: Any) -> None:
    sms = kinds.add_parser(
        "sms", help="SMS through Twilio: retries, dead letters, dedupe, rate limits, status callbacks"
    )
    sms.add_argument(
        "--account-sid",
        default=None,
        help="Twilio account AC... (ORCH_TWILIO_ACCOUNT_SID); the auth token: ORCH_TWILIO_AUTH_TOKEN, or an "
        "API key: ORCH_TWILIO_API_KEY_SID and ORCH_TWILIO_API_KEY_SECRET",
    )
    sender = sms.add_mutually_exclusive_group()
    sender.add_argument(
        "--from", dest="twilio_from", default=None, help="sender number or id (ORCH_TWILIO_FROM)"
    )
    sender.add_argument(
        "--messaging-service",
        default=None,
        help="Messaging Service MG... instead of --from (ORCH_TWILIO_MESSAGING_SERVICE_SID)",
    )
    sms.add_argument(
        "--status-callback",
        default=None,
        help="URL Twilio posts message statuses to (ORCH_TWILIO_STATUS_CALLBACK_URL)",
    )
    _common_options(sms, "sms")
    sms.set_defaults(func=sms_command)


def _register_push(kinds: Any) -> None:
    push = kinds.add_parser(
        "push", help="push notifications through FCM HTTP v1: retries, dead letters, dedupe, rate limits"
    )
    push.add_argument(
        "--credentials",
        type=Path,
        default=None,
        metavar="FILE",
        help="Google service-account JSON file (ORCH_FCM_CREDENTIALS_FILE)",
    )
    push.add_argument(
        "--project", default=None, help="Firebase project id (ORCH_FCM_PROJECT_ID; default: the file's)"
    )
    _common_options(push, "push")
    push.set_defaults(func=push_command)


def _register_webhooks(kinds: Any) -> None:
    hooks = kinds.add_parser(
        "webhooks", help="receipts from providers and apps: Twilio status callbacks, push receipts"
    )
    hooks.add_argument(
        "--public-url",
        default=None,
        help="base URL Twilio and apps reach this receiver on, as signed (ORCH_CONNECTOR_PUBLIC_URL); the "
        "signing key: ORCH_UNSUBSCRIBE_KEY; Twilio's auth token: ORCH_TWILIO_AUTH_TOKEN",
    )
    hooks.add_argument("--web-host", default=None, help="HTTP bind address (ORCH_CONNECTOR_WEB_HOST)")
    hooks.add_argument("--web-port", type=int, default=None, help="HTTP port (ORCH_CONNECTOR_WEB_PORT)")
    add_config_option(hooks)
    hooks.set_defaults(func=webhooks_command)


def sandbox_command(args: argparse.Namespace) -> int:
    limits = {}
    if args.policy is not None:
        try:
            limits = load_policy_file(args.policy).rate_limits
        except PolicyValidationError as exc:
            for p in exc.problems:
                print(p, file=sys.stderr)
            return 1
    if args.script is not None:
        script = SandboxScript.from_file(args.script, open_rate=args.open_rate, click_rate=args.click_rate)
    else:
        script = SandboxScript(open_rate=args.open_rate, click_rate=args.click_rate)
    settings = settings_from(args)
    connection_check(settings)  # a refused login or TLS handshake: one clear line, now
    connector = SandboxConnector(settings, limiter=ChannelLimiter(limits), script=script, group_id=args.group)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rates = ", ".join(f"{ch} {r.per_second:g}/s" for ch, r in sorted(limits.items())) or "none"
    print(f"sandbox connector: reading {', '.join(connector.topics)}; rate limits: {rates}", flush=True)
    stats = connector.run(stop)
    print(
        f"sandbox connector: {stats.received} actions read, {stats.duplicates} duplicates dropped, "
        f"{stats.invalid} invalid, {stats.events} events published"
    )
    return 0


def _policy_limits(path: Path | None) -> dict[str, RateLimit] | None:
    if path is None:
        return {}
    try:
        return dict(load_policy_file(path).rate_limits)
    except PolicyValidationError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return None


def email_command(args: argparse.Namespace) -> int:
    limits = _policy_limits(args.policy)
    if limits is None:
        return 1
    settings = load_settings(
        args.config,
        bootstrap_servers=args.bootstrap_servers,
        smtp_host=args.smtp_host,
        smtp_port=args.smtp_port,
        smtp_security=args.smtp_security,
        smtp_username=args.smtp_user,
        email_from=args.email_from,
        connector_public_url=args.public_url,
        connector_web_host=args.web_host,
        connector_web_port=args.web_port,
    )
    limit = limits.get("email")
    connector = EmailConnector(settings, limit=limit, group_id=args.group)  # refuses a bad config first
    connection_check(settings)
    check_connector_topics(settings, "email")
    print(
        f"email connector: reading {connector.runtime.topic} as {connector.runtime.group_id}; SMTP "
        f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security}); rate limit "
        f"{f'{limit.per_second:g}/s shared by the replicas' if limit else 'none'}; HTTP on "
        f"http://{settings.connector_web_host}:{settings.connector_web_port}",
        flush=True,
    )

    async def main() -> ConnectorStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await connector.run(stop)

    stats = asyncio.run(main())
    dead = ", ".join(f"{n} {reason}" for reason, n in sorted(stats.dead.items())) or "none"
    print(
        f"email connector: {stats.read} actions read, {stats.sent} sent, {stats.duplicates} duplicates "
        f"skipped, {stats.retries} retries, dead letters: {dead}"
    )
    return 0


def _run_until_signalled(connector: SmsConnector | PushConnector, channel: str) -> int:
    async def main() -> ConnectorStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await connector.run(stop)

    stats = asyncio.run(main())
    dead = ", ".join(f"{n} {reason}" for reason, n in sorted(stats.dead.items())) or "none"
    print(
        f"{channel} connector: {stats.read} actions read, {stats.sent} sent, {stats.duplicates} duplicates "
        f"skipped, {stats.retries} retries, dead letters: {dead}"
    )
    return 0


def _rate(limit: RateLimit | None) -> str:
    return f"{limit.per_second:g}/s shared by the replicas" if limit else "none"


def sms_command(args: argparse.Namespace) -> int:
    limits = _policy_limits(args.policy)
    if limits is None:
        return 1
    settings = load_settings(
        args.config,
        bootstrap_servers=args.bootstrap_servers,
        twilio_account_sid=args.account_sid,
        twilio_from=args.twilio_from,
        twilio_messaging_service_sid=args.messaging_service,
        twilio_status_callback_url=args.status_callback,
        connector_web_host=args.web_host,
        connector_web_port=args.web_port,
    )
    if args.twilio_from:  # an option names one sender: the other one's setting does not apply
        settings = settings.model_copy(update={"twilio_messaging_service_sid": ""})
    elif args.messaging_service:
        settings = settings.model_copy(update={"twilio_from": ""})
    limit = limits.get("sms")
    connector = SmsConnector(settings, limit=limit, group_id=args.group)  # refuses a bad config first
    connection_check(settings)
    check_connector_topics(settings, "sms")
    config = connector.twilio.config
    sender = config.messaging_service_sid or config.sender
    print(
        f"sms connector: reading {connector.runtime.topic} as {connector.runtime.group_id}; Twilio "
        f"{config.base_url} account {config.account_sid} from {sender}; status callbacks "
        f"{'to ' + config.status_callback_url if config.status_callback_url else 'off'}; rate limit "
        f"{_rate(limit)}; HTTP on http://{settings.connector_web_host}:{settings.connector_web_port}",
        flush=True,
    )
    return _run_until_signalled(connector, "sms")


def push_command(args: argparse.Namespace) -> int:
    limits = _policy_limits(args.policy)
    if limits is None:
        return 1
    settings = load_settings(
        args.config,
        bootstrap_servers=args.bootstrap_servers,
        fcm_credentials_file=args.credentials,
        fcm_project_id=args.project,
        connector_web_host=args.web_host,
        connector_web_port=args.web_port,
    )
    limit = limits.get("push")
    connector = PushConnector(settings, limit=limit, group_id=args.group)  # refuses a bad config first
    connection_check(settings)
    check_connector_topics(settings, "push")
    config = connector.fcm.config
    print(
        f"push connector: reading {connector.runtime.topic} as {connector.runtime.group_id}; FCM "
        f"{config.base_url} project {config.project_id} as {config.account.client_email}; rate limit "
        f"{_rate(limit)}; HTTP on http://{settings.connector_web_host}:{settings.connector_web_port}",
        flush=True,
    )
    return _run_until_signalled(connector, "push")


def webhooks_command(args: argparse.Namespace) -> int:
    settings = load_settings(
        args.config,
        bootstrap_servers=args.bootstrap_servers,
        connector_public_url=args.public_url,
        connector_web_host=args.web_host,
        connector_web_port=args.web_port,
    )
    receiver = WebhooksReceiver(settings)  # refuses a bad config first
    connection_check(settings)
    print(
        f"webhooks receiver: {', '.join(receiver.endpoints)} for {settings.connector_public_url} (Twilio "
        f"{'signatures checked' if receiver.twilio else 'off: no twilio_auth_token'}); receipts to "
        f"{settings.topics.raw_events}; HTTP on http://{settings.connector_web_host}:"
        f"{settings.connector_web_port}",
        flush=True,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await receiver.run(stop)

    asyncio.run(main())
    metrics = receiver.metrics.registry
    published = sum(
        metrics.get_sample_value(
            "orchestrator_connector_receipts_total", {"channel": ch, "type": kind, "outcome": "published"}
        )
        or 0
        for ch, kinds in (("sms", ("delivered", "failed")), ("push", ("delivered", "opened")))
        for kind in kinds
    )
    print(f"webhooks receiver: {published:.0f} receipts published")
    return 0
