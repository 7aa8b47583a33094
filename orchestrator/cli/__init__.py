"""The ``orchestrator`` command line: one entry point, one module per subcommand group."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from orchestrator import __version__
from orchestrator.exceptions import OrchestratorError

__all__ = ["build_parser", "main"]

_COMMAND_MODULES = (
    "orchestrator.cli.kafka",
    "orchestrator.cli.topics",
    "orchestrator.cli.produce",
    "orchestrator.cli.worker",
    "orchestrator.cli.validate",
    "orchestrator.cli.template",
    "orchestrator.cli.simulate",
    "orchestrator.cli.diff",
    "orchestrator.cli.graph",
    "orchestrator.cli.inspect",
    "orchestrator.cli.actions",
    "orchestrator.cli.segments",
    "orchestrator.cli.campaigns",
    "orchestrator.cli.deploy",
    "orchestrator.cli.connector",
    "orchestrator.cli.schemas",
    "orchestrator.cli.demo",
    "orchestrator.cli.bench",
    "orchestrator.cli.fit",
    "orchestrator.cli.evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Kafka-native customer-journey orchestrator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors of the orchestrator print as one clear message and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except OrchestratorError as exc:
        print(f"orchestrator {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
