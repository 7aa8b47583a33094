"""``orchestrator connector sandbox``: a fake provider for every channel (demos and tests).

Consumes the action topics, drops duplicate action ids, applies the policy file's rate limits, and
publishes ``<channel>.sent``/``<channel>.delivered`` (and scripted opens/clicks) to the raw events topic.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.connectors.ratelimit import ChannelLimiter
from orchestrator.connectors.sandbox import SandboxConnector, SandboxScript
from orchestrator.core.policy import load_policy_file
from orchestrator.exceptions import PolicyValidationError
from orchestrator.kafka.security import connection_check

__all__ = ["register", "sandbox_command"]


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
