"""``orchestrator produce FILE.jsonl``: publish events from a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orchestrator.cli._common import add_config_option, settings_from
from orchestrator.kafka.produce import BadLine, produce_file
from orchestrator.kafka.security import connection_check

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser("produce", help="publish events from a JSON-lines file to the raw events topic")
    parser.add_argument("file", type=Path, help="one event per line (JSON)")
    parser.add_argument("--topic", default=None, help="target topic (default: the raw events topic)")
    parser.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="send every line as it is, even invalid ones (they then land in the dead-letter topic)",
    )
    add_config_option(parser)
    parser.set_defaults(func=_produce)


def _produce(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    connection_check(settings)  # a refused login or TLS handshake: one clear line, now

    def on_bad(bad: BadLine) -> None:
        print(f"{args.file}:{bad.line}: skipped: {bad.error}", file=sys.stderr)

    report = produce_file(args.file, settings, topic=args.topic, validate=args.validate, on_bad=on_bad)
    topic = args.topic or settings.topics.raw_events
    print(f"produced {report.sent} events to {topic}; {len(report.bad)} bad lines skipped")
    for failure in report.failed:
        print(f"delivery failed: {failure}", file=sys.stderr)
    return 1 if report.failed else 0
